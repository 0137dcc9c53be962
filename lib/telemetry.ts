/**
 * OpenTelemetry, the Deno way: with `OTEL_DENO=true` Deno exports its automatic HTTP spans and
 * metrics, and whatever this module adds through `npm:@opentelemetry/api`, over OTLP (without it,
 * every call here is a no-op). Added:
 *
 * - a `collator.webhook` span inside each webhook's HTTP span, with `thinkific.topic`,
 *   `thinkific.event_id`, `collator.outcome` and `collator.attempts`;
 * - `collator.webhooks`: a counter by `thinkific.topic` and `collator.outcome`;
 * - `collator.pair_skew_ms`: a histogram of |progress time − lesson time| of each new record;
 * - `collator.record_wait_ms`: a histogram of the time from the first delivery of a pair's first
 *   event to its record;
 * - `collator.unmatched` and `collator.outbox.pending`: observable gauges, read from counters and
 *   a capped count at most once per {@linkcode BACKLOG_REFRESH_MS}.
 *
 * Only topics, event ids, outcomes and numbers: never an email, a name or a body.
 *
 * `@opentelemetry/api` is loaded only when a provider is registered at start-up (Deno registers
 * its own under `OTEL_DENO=true`): without one every call of the API is a no-op, and loading it
 * would cost 2–3 MiB of memory for nothing. {@linkcode telemetryReady} resolves once it is loaded;
 * the service awaits it before it serves.
 *
 * @example
 * ```ts
 * await telemetryReady();
 * app.use(webhookTelemetry((c) => c.get("log")));
 * observeBacklog(kv); // once, at start-up
 * ```
 * @module
 */
import type {
  Attributes,
  Counter,
  Histogram,
  Meter,
  Span,
  Tracer,
  TracerProvider,
} from "@opentelemetry/api";
import type { Context, MiddlewareHandler } from "hono";
import type { Outcome } from "./collator.ts";
import { backlog } from "./store/stats.ts";

const NAME = "thinkific-collator";

/** Where `@opentelemetry/api` 1.x keeps the registered providers (`Symbol.for`, shared). */
const REGISTRY = Symbol.for("opentelemetry.js.api.1");

/** The API and this module's instruments, once loaded. */
interface Otel {
  api: typeof import("@opentelemetry/api");
  tracer: Tracer;
  meter: Meter;
  webhooks: Counter;
  pairSkew: Histogram;
  recordWait: Histogram;
  /** The tracer provider of the API while none is registered. */
  noTracing: TracerProvider;
}

function instruments(api: Otel["api"]): Otel {
  const meter = api.metrics.getMeter(NAME);
  return {
    api,
    tracer: api.trace.getTracer(NAME),
    meter,
    webhooks: meter.createCounter("collator.webhooks", {
      description: "Webhook deliveries, by topic and outcome",
      unit: "{webhook}",
    }),
    pairSkew: meter.createHistogram("collator.pair_skew_ms", {
      description: "|progress created_at − lesson created_at| of each new record",
      unit: "ms",
    }),
    recordWait: meter.createHistogram("collator.record_wait_ms", {
      description: "Time from the first delivery of a pair's first event to its record",
      unit: "ms",
    }),
    noTracing: new api.ProxyTracerProvider().getDelegate(),
  };
}

/** The API and instruments: `null` while not loaded, and always without a provider. */
let otel: Otel | null = null;

const loaded: Promise<void> = REGISTRY in globalThis
  ? import("@opentelemetry/api").then((api) => {
    otel = instruments(api);
  })
  : Promise.resolve();

/**
 * Resolves once `@opentelemetry/api` is loaded, if a provider was registered when this module
 * loaded (else at once). Spans and counts begin then.
 */
export function telemetryReady(): Promise<void> {
  return loaded;
}

/** What the webhook route knows about a delivery when it answers (its log fields). */
export interface WebhookFields {
  topic?: string;
  event_id?: string;
  outcome?: string;
}

/** Whether spans are recorded: a tracer provider is registered (Deno's, under `OTEL_DENO=true`). */
function tracing({ api, noTracing }: Otel): boolean {
  const provider = api.trace.getTracerProvider();
  return !(provider instanceof api.ProxyTracerProvider) || provider.getDelegate() !== noTracing;
}

/**
 * A middleware wrapping each webhook in a `collator.webhook` span (a child of Deno's HTTP span)
 * and counting it by topic and outcome. `fieldsOf` reads the route's fields after it answered.
 * Without a tracer provider it makes no span at all (the API's no-op one costs a few percent of a
 * webhook's CPU under load), and only counts; without any provider, neither.
 */
export function webhookTelemetry<C extends Context>(
  fieldsOf: (c: C) => WebhookFields,
): MiddlewareHandler {
  const finish = (o: Otel, c: Context, span: Span | null) => {
    const fields = fieldsOf(c as C);
    const status = c.res.status;
    const outcome = fields.outcome ?? (status >= 500 ? "error" : "rejected");
    const attributes: Attributes = {
      "thinkific.topic": fields.topic ?? "unknown",
      "collator.outcome": outcome,
    };
    o.webhooks.add(1, attributes);
    if (!span) return;
    span.setAttributes(attributes);
    if (fields.event_id) span.setAttribute("thinkific.event_id", fields.event_id);
    span.setAttribute("http.response.status_code", status);
    if (status >= 500) span.setStatus({ code: o.api.SpanStatusCode.ERROR });
    span.end();
  };
  return async (c, next) => {
    const o = otel;
    if (!o) return await next();
    if (!tracing(o)) {
      try {
        return await next();
      } finally {
        finish(o, c, null);
      }
    }
    return await o.tracer.startActiveSpan("collator.webhook", async (span) => {
      try {
        await next();
      } finally {
        finish(o, c, span);
      }
    });
  };
}

/**
 * Adds what the collator decided to the current webhook span, and a new record's skew and wait to
 * the histograms.
 */
export function observeOutcome(outcome: Outcome) {
  if (!otel) return;
  const span = otel.api.trace.getActiveSpan();
  const attempts = "attempts" in outcome
    ? outcome.attempts
    : outcome.status === "collated"
    ? outcome.deliveries
    : undefined;
  if (attempts !== undefined) span?.setAttribute("collator.attempts", attempts);
  if (outcome.status !== "collated" || !outcome.fresh) return;
  const { record, firstDeliveredAt } = outcome;
  otel.pairSkew.record(Math.abs(record.skew_ms));
  if (firstDeliveredAt !== undefined) {
    otel.recordWait.record(Math.max(0, Date.parse(record.collated_at) - firstDeliveredAt));
  }
}

/** How often the backlog gauges re-read the database, at most. */
export const BACKLOG_REFRESH_MS = 10_000;

/**
 * Registers the `collator.unmatched` and `collator.outbox.pending` gauges. Each collection reports
 * the last values read and, when they are older than {@linkcode BACKLOG_REFRESH_MS}, reads them
 * again in the background (so collection never waits on the database). Call it once
 * {@linkcode telemetryReady} has resolved; without a provider it does nothing.
 */
export function observeBacklog(kv: Deno.Kv, refreshMs = BACKLOG_REFRESH_MS) {
  const o = otel;
  if (!o) return;
  const latest = { unmatched: 0, outboxPending: 0 };
  let readAt = -Infinity;
  let reading = false;
  const refresh = () => {
    if (reading || performance.now() - readAt < refreshMs) return;
    reading = true;
    backlog(kv).then((b) => {
      Object.assign(latest, b);
      readAt = performance.now();
    }).catch(() => {/* the next collection tries again */}).finally(() => reading = false);
  };
  const gauge = (name: string, description: string, unit: string, read: () => number) =>
    o.meter.createObservableGauge(name, { description, unit }).addCallback((r) => {
      refresh();
      r.observe(read());
    });
  gauge(
    "collator.unmatched",
    "Events listed in /api/unmatched now (gave up waiting, or alone past the horizon)",
    "{event}",
    () => latest.unmatched,
  );
  gauge(
    "collator.outbox.pending",
    "Outbox entries waiting to be forwarded (counted up to 10,000)",
    "{entry}",
    () => latest.outboxPending,
  );
  refresh();
}
