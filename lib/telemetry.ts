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
 * @example
 * ```ts
 * app.use(webhookTelemetry((c) => c.get("log")));
 * observeBacklog(kv); // once, at start-up
 * ```
 * @module
 */
import {
  type Attributes,
  metrics,
  ProxyTracerProvider,
  type Span,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { Context, MiddlewareHandler } from "hono";
import type { Outcome } from "./collator.ts";
import { backlog } from "./store/stats.ts";

const NAME = "thinkific-collator";
const tracer = trace.getTracer(NAME);
const meter = metrics.getMeter(NAME);

const webhooks = meter.createCounter("collator.webhooks", {
  description: "Webhook deliveries, by topic and outcome",
  unit: "{webhook}",
});
const pairSkew = meter.createHistogram("collator.pair_skew_ms", {
  description: "|progress created_at − lesson created_at| of each new record",
  unit: "ms",
});
const recordWait = meter.createHistogram("collator.record_wait_ms", {
  description: "Time from the first delivery of a pair's first event to its record",
  unit: "ms",
});

/** What the webhook route knows about a delivery when it answers (its log fields). */
export interface WebhookFields {
  topic?: string;
  event_id?: string;
  outcome?: string;
}

/** The tracer provider of `@opentelemetry/api` while none is registered (no `OTEL_DENO`). */
const NO_TRACING = new ProxyTracerProvider().getDelegate();

/** Whether spans are recorded: a tracer provider is registered (Deno's, under `OTEL_DENO=true`). */
function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NO_TRACING;
}

/**
 * A middleware wrapping each webhook in a `collator.webhook` span (a child of Deno's HTTP span)
 * and counting it by topic and outcome. `fieldsOf` reads the route's fields after it answered.
 * Without a tracer provider it makes no span at all (the API's no-op one costs a few percent of a
 * webhook's CPU under load), and only counts.
 */
export function webhookTelemetry<C extends Context>(
  fieldsOf: (c: C) => WebhookFields,
): MiddlewareHandler {
  const finish = (c: Context, span: Span | null) => {
    const fields = fieldsOf(c as C);
    const status = c.res.status;
    const outcome = fields.outcome ?? (status >= 500 ? "error" : "rejected");
    const attributes: Attributes = {
      "thinkific.topic": fields.topic ?? "unknown",
      "collator.outcome": outcome,
    };
    webhooks.add(1, attributes);
    if (!span) return;
    span.setAttributes(attributes);
    if (fields.event_id) span.setAttribute("thinkific.event_id", fields.event_id);
    span.setAttribute("http.response.status_code", status);
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  };
  return async (c, next) => {
    if (!tracing()) {
      try {
        return await next();
      } finally {
        finish(c, null);
      }
    }
    return await tracer.startActiveSpan("collator.webhook", async (span) => {
      try {
        await next();
      } finally {
        finish(c, span);
      }
    });
  };
}

/**
 * Adds what the collator decided to the current webhook span, and a new record's skew and wait to
 * the histograms.
 */
export function observeOutcome(outcome: Outcome) {
  const span = trace.getActiveSpan();
  const attempts = "attempts" in outcome
    ? outcome.attempts
    : outcome.status === "collated"
    ? outcome.deliveries
    : undefined;
  if (attempts !== undefined) span?.setAttribute("collator.attempts", attempts);
  if (outcome.status !== "collated" || !outcome.fresh) return;
  const { record, firstDeliveredAt } = outcome;
  pairSkew.record(Math.abs(record.skew_ms));
  if (firstDeliveredAt !== undefined) {
    recordWait.record(Math.max(0, Date.parse(record.collated_at) - firstDeliveredAt));
  }
}

/** How often the backlog gauges re-read the database, at most. */
export const BACKLOG_REFRESH_MS = 10_000;

/**
 * Registers the `collator.unmatched` and `collator.outbox.pending` gauges. Each collection reports
 * the last values read and, when they are older than {@linkcode BACKLOG_REFRESH_MS}, reads them
 * again in the background (so collection never waits on the database).
 */
export function observeBacklog(kv: Deno.Kv, refreshMs = BACKLOG_REFRESH_MS) {
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
    meter.createObservableGauge(name, { description, unit }).addCallback((r) => {
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
