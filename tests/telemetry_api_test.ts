/**
 * What `lib/telemetry.ts` hands OpenTelemetry, in process: a recording meter, tracer and context
 * manager are registered before the module loads, so each counter increment, histogram value,
 * gauge reading and span attribute an operator graphs or filters on is checked by name and value.
 * (The real export over OTLP from `deno task start` is in `tests/telemetry_test.ts`.)
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type Attributes,
  type AttributeValue,
  type Context,
  context,
  metrics,
  type ObservableCallback,
  ROOT_CONTEXT,
  type SpanStatus,
  trace,
} from "@opentelemetry/api";
import { assert, assertEquals } from "./_assert.ts";
import type { Outcome } from "../lib/collator.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";

interface Instrument {
  kind: "counter" | "histogram" | "gauge";
  name: string;
  description?: string;
  unit?: string;
  /** Values added or recorded, with their attributes. */
  points: { value: number; attributes?: Attributes }[];
  callbacks: ObservableCallback[];
}

interface RecordedSpan {
  name: string;
  attributes: Record<string, AttributeValue>;
  status?: SpanStatus;
  ended: boolean;
}

const scopes: string[] = [];
const instruments: Instrument[] = [];
const spans: RecordedSpan[] = [];

function instrument(kind: Instrument["kind"], name: string, options?: Record<string, string>) {
  const made: Instrument = { kind, name, ...options, points: [], callbacks: [] };
  instruments.push(made);
  const point = (value: number, attributes?: Attributes) => made.points.push({ value, attributes });
  return {
    add: point,
    record: point,
    addCallback: (cb: ObservableCallback) => made.callbacks.push(cb),
    removeCallback() {},
  };
}

metrics.setGlobalMeterProvider({
  getMeter(name) {
    scopes.push(`meter ${name}`);
    return {
      createCounter: (n: string, o?: Record<string, string>) => instrument("counter", n, o),
      createHistogram: (n: string, o?: Record<string, string>) => instrument("histogram", n, o),
      createObservableGauge: (n: string, o?: Record<string, string>) => instrument("gauge", n, o),
    } as unknown as ReturnType<typeof metrics.getMeter>;
  },
});

function recordingSpan(name: string) {
  const s: RecordedSpan = { name, attributes: {}, ended: false };
  spans.push(s);
  const span = {
    setAttribute(key: string, value: AttributeValue) {
      s.attributes[key] = value;
      return span;
    },
    setAttributes(attributes: Attributes) {
      Object.assign(s.attributes, attributes);
      return span;
    },
    setStatus(status: SpanStatus) {
      s.status = status;
      return span;
    },
    end() {
      s.ended = true;
    },
    isRecording: () => true,
    spanContext: () => ({ traceId: "1".repeat(32), spanId: "1".repeat(16), traceFlags: 1 }),
  };
  return span as unknown as ReturnType<ReturnType<typeof trace.getTracer>["startSpan"]>;
}

trace.setGlobalTracerProvider({
  getTracer(name) {
    scopes.push(`tracer ${name}`);
    return {
      startSpan: recordingSpan,
      startActiveSpan(name: string, fn: (span: unknown) => unknown) {
        const span = recordingSpan(name);
        return context.with(trace.setSpan(context.active(), span), fn, undefined, span);
      },
    } as unknown as ReturnType<typeof trace.getTracer>;
  },
});

/** The active span follows async work, as Deno's own context manager does under OTEL_DENO. */
const store = new AsyncLocalStorage<Context>();
context.setGlobalContextManager({
  active: () => store.getStore() ?? ROOT_CONTEXT,
  with: (ctx, fn, thisArg, ...args) => store.run(ctx, () => fn.call(thisArg, ...args)),
  bind: (_ctx, target) => target,
  enable() {
    return this;
  },
  disable() {
    return this;
  },
});

// Loaded after the providers above are registered: the module creates its instruments on load.
const { BACKLOG_REFRESH_MS, observeBacklog, observeOutcome, telemetryReady, webhookTelemetry } =
  await import("../lib/telemetry.ts");
await telemetryReady(); // the API is loaded: a provider was registered before the module loaded
/** The scopes asked for by the time `telemetryReady()` resolved. */
const scopesWhenReady = [...scopes];
const { Hono } = await import("hono");
const { harness, lessonWebhook, progressWebhook, BASE_TIME, evalChild, libImport } = await import(
  "./_helpers.ts"
);
const { instrumentKv } = await import("../lib/store/instrument.ts");
const { OUTBOX_DUE_PREFIX } = await import("../lib/store/keys.ts");
const { backlog } = await import("../lib/store/stats.ts");

const named = (name: string) => instruments.filter((i) => i.name === name);
const only = (name: string) => {
  const found = named(name);
  assertEquals(found.length, 1, name);
  return found[0];
};

Deno.test("telemetry: the scope is thinkific-collator; the counter and histograms an operator graphs, with their units", () => {
  assert(scopes.includes("meter thinkific-collator"), scopes.join());
  assert(scopes.includes("tracer thinkific-collator"), scopes.join());
  // telemetryReady() resolves once the instruments are made, not before.
  assertEquals(scopesWhenReady, ["meter thinkific-collator", "tracer thinkific-collator"]);
  const described = (i: Instrument) => [i.kind, i.name, i.unit, i.description];
  assertEquals(described(only("collator.webhooks")), [
    "counter",
    "collator.webhooks",
    "{webhook}",
    "Webhook deliveries, by topic and outcome",
  ]);
  assertEquals(described(only("collator.pair_skew_ms")), [
    "histogram",
    "collator.pair_skew_ms",
    "ms",
    "|progress created_at − lesson created_at| of each new record",
  ]);
  assertEquals(described(only("collator.record_wait_ms")), [
    "histogram",
    "collator.record_wait_ms",
    "ms",
    "Time from the first delivery of a pair's first event to its record",
  ]);
});

Deno.test("telemetry: each webhook is one collator.webhook span and one count, by thinkific.topic and collator.outcome", async () => {
  spans.length = 0;
  const counter = only("collator.webhooks");
  counter.points.length = 0;
  const h = await harness();
  try {
    const progress = progressWebhook({ at: BASE_TIME });
    const lesson = lessonWebhook({ at: BASE_TIME });
    assertEquals((await h.post(progress)).status, 409);
    assertEquals((await h.post(lesson)).status, 200);
    assertEquals((await h.post(progress)).status, 200); // a redelivery: the same record
    assertEquals((await h.post(lessonWebhook(), { secret: false })).status, 401);
    const noId = { ...lessonWebhook(), id: undefined };
    assertEquals((await h.post(noId)).status, 422);

    assertEquals(counter.points, [
      {
        value: 1,
        attributes: { "thinkific.topic": "enrollment.progress", "collator.outcome": "pending" },
      },
      {
        value: 1,
        attributes: { "thinkific.topic": "lesson.completed", "collator.outcome": "collated" },
      },
      {
        value: 1,
        attributes: { "thinkific.topic": "enrollment.progress", "collator.outcome": "collated" },
      },
      {
        value: 1,
        attributes: { "thinkific.topic": "unknown", "collator.outcome": "bad_signature" },
      },
      {
        value: 1,
        attributes: { "thinkific.topic": "lesson.completed", "collator.outcome": "rejected" },
      },
    ]);
    assertEquals(spans.map((s) => [s.name, s.ended, s.status]), [
      ["collator.webhook", true, undefined],
      ["collator.webhook", true, undefined],
      ["collator.webhook", true, undefined],
      ["collator.webhook", true, undefined],
      ["collator.webhook", true, undefined],
    ]);
    assertEquals(spans.map((s) => s.attributes), [
      {
        "thinkific.topic": "enrollment.progress",
        "collator.outcome": "pending",
        "thinkific.event_id": progress.id,
        "http.response.status_code": 409,
        "collator.attempts": 1,
      },
      {
        "thinkific.topic": "lesson.completed",
        "collator.outcome": "collated",
        "thinkific.event_id": lesson.id,
        "http.response.status_code": 200,
        "collator.attempts": 1,
      },
      {
        "thinkific.topic": "enrollment.progress",
        "collator.outcome": "collated",
        "thinkific.event_id": progress.id,
        "http.response.status_code": 200,
      },
      {
        "thinkific.topic": "unknown",
        "collator.outcome": "bad_signature",
        "http.response.status_code": 401,
      },
      {
        "thinkific.topic": "lesson.completed",
        "collator.outcome": "rejected",
        "http.response.status_code": 422,
      },
    ]);
  } finally {
    h.close();
  }
});

Deno.test("telemetry: a webhook the service fails on counts as an error and marks its span as failed", async () => {
  spans.length = 0;
  const counter = only("collator.webhooks");
  counter.points.length = 0;
  const real = await Deno.openKv(":memory:");
  const broken = instrumentKv(real, {
    before(call) {
      if (call === "commit") throw new Error("the disk is full");
    },
  });
  const h = await harness({}, broken);
  try {
    const lesson = lessonWebhook();
    const res = await h.post(lesson);
    assert(res.status >= 500, `a 5xx, got ${res.status}`);
    assertEquals(counter.points, [
      {
        value: 1,
        attributes: { "thinkific.topic": "lesson.completed", "collator.outcome": "error" },
      },
    ]);
    assertEquals(spans.length, 1);
    assertEquals(spans[0].status, { code: 2 }, "SpanStatusCode.ERROR");
    assertEquals(spans[0].attributes["http.response.status_code"], res.status);
    assertEquals(spans[0].attributes["thinkific.event_id"], lesson.id);
    assert(spans[0].ended);
  } finally {
    real.close();
  }
});

Deno.test("telemetry: any 5xx without an outcome is an error, a 4xx a rejection; an outcome the route set is kept", async () => {
  const counter = only("collator.webhooks");
  const seen = [];
  for (
    const [status, fields] of [
      [500, {}],
      [599, {}],
      [499, {}],
      [500, { topic: "lesson.completed", outcome: "pending" }],
    ] as const
  ) {
    spans.length = 0;
    counter.points.length = 0;
    const app = new Hono();
    app.use(webhookTelemetry(() => fields));
    app.post("/", () => new Response(null, { status }));
    assertEquals((await app.request("/", { method: "POST" })).status, status);
    const [span] = spans;
    seen.push([status, counter.points[0].attributes, span.status?.code, span.attributes]);
  }
  const failed = { "thinkific.topic": "unknown", "collator.outcome": "error" };
  const rejected = { "thinkific.topic": "unknown", "collator.outcome": "rejected" };
  const kept = { "thinkific.topic": "lesson.completed", "collator.outcome": "pending" };
  assertEquals(seen, [
    [500, failed, 2, { ...failed, "http.response.status_code": 500 }],
    [599, failed, 2, { ...failed, "http.response.status_code": 599 }],
    [499, rejected, undefined, { ...rejected, "http.response.status_code": 499 }],
    [500, kept, 2, { ...kept, "http.response.status_code": 500 }],
  ]);
});

const RECORD = {
  skew_ms: -250,
  collated_at: "2026-11-02T14:15:20.000Z",
} as LessonProgressRecord;
const COLLATED_AT = Date.parse(RECORD.collated_at);

/** Runs `observeOutcome(outcome)` inside a span and returns the attempts it set there. */
function attemptsSet(outcome: Outcome): AttributeValue | undefined {
  spans.length = 0;
  trace.getTracer("test").startActiveSpan("outer", (span) => {
    observeOutcome(outcome);
    span.end();
  });
  return spans[0].attributes["collator.attempts"];
}

Deno.test("telemetry: a delivery's attempts go on its span: pending and unmatched counts, a new record's deliveries", () => {
  assertEquals(attemptsSet({ status: "pending", attempts: 3 }), 3);
  assertEquals(attemptsSet({ status: "unmatched", attempts: 10 }), 10);
  assertEquals(attemptsSet({ status: "collated", record: RECORD, fresh: true, deliveries: 2 }), 2);
  assertEquals(attemptsSet({ status: "collated", record: RECORD, fresh: false }), undefined);
  assertEquals(attemptsSet({ status: "stored" }), undefined);
  assertEquals(attemptsSet({ status: "erased" }), undefined);
  // Outside any span, nothing is set and nothing fails.
  observeOutcome({ status: "pending", attempts: 1 });
});

Deno.test("telemetry: a new record adds its absolute skew, and its wait since the first delivery, never negative", () => {
  const skew = only("collator.pair_skew_ms");
  const wait = only("collator.record_wait_ms");
  skew.points.length = 0;
  wait.points.length = 0;
  const fresh = (firstDeliveredAt?: number): Outcome => ({
    status: "collated",
    record: RECORD,
    fresh: true,
    firstDeliveredAt,
  });
  observeOutcome(fresh(COLLATED_AT - 61_000));
  observeOutcome(fresh(COLLATED_AT + 5)); // a clock a little ahead: 0, not −5
  observeOutcome(fresh(undefined)); // not known: no wait
  observeOutcome({ status: "collated", record: { ...RECORD, skew_ms: 40 }, fresh: true });
  // Not new (a redelivery of a pair's event), or no record: neither histogram moves.
  observeOutcome({ status: "collated", record: RECORD, fresh: false, firstDeliveredAt: 0 });
  observeOutcome({ status: "pending", attempts: 1 });
  assertEquals(skew.points.map((p) => p.value), [250, 250, 250, 40]);
  assertEquals(wait.points.map((p) => p.value), [61_000, 0]);
  assert([...skew.points, ...wait.points].every((p) => p.attributes === undefined));
});

/** The gauges the last `observeBacklog` registered, and a collection of both. */
function lastGauges() {
  const unmatched = named("collator.unmatched").at(-1)!;
  const pending = named("collator.outbox.pending").at(-1)!;
  const collect = () => {
    const read = (g: Instrument) => {
      const seen: number[] = [];
      for (const cb of g.callbacks) cb({ observe: (v: number) => void seen.push(v) });
      assertEquals(seen.length, 1, `${g.name} observes one value`);
      return seen[0];
    };
    return { unmatched: read(unmatched), outboxPending: read(pending) };
  };
  return { unmatched, pending, collect };
}

/** Lets a background read of an in-memory database finish. */
const settle = () => new Promise((r) => setTimeout(r, 100));

/** An in-memory database with `n` outbox entries due, counting its round trips. */
async function backlogKv(n: number) {
  const real = await Deno.openKv(":memory:");
  for (let i = 0; i < n; i++) await real.set([...OUTBOX_DUE_PREFIX, i, `e${i}`], `e${i}`);
  const reads = { n: 0, fail: false };
  const kv = instrumentKv(real, {
    before() {
      reads.n++;
      if (reads.fail) throw new Error("unavailable");
    },
  });
  return { real, kv, reads, [Symbol.dispose]: () => real.close() };
}

Deno.test("telemetry: collator.unmatched and collator.outbox.pending report the backlog, read once a refresh period", async () => {
  using db = await backlogKv(3);
  const h = await harness({}, db.real);
  await h.deliver(progressWebhook({ user: 71 })); // gives up: one unmatched event
  const expected = await backlog(db.real);
  assertEquals(expected, { unmatched: 1, outboxPending: 3 });

  observeBacklog(db.kv); // reads at once, in the background
  const { unmatched, pending, collect } = lastGauges();
  assertEquals([unmatched.kind, unmatched.unit, unmatched.description], [
    "gauge",
    "{event}",
    "Events listed in /api/unmatched now (gave up waiting, or alone past the horizon)",
  ]);
  assertEquals([pending.kind, pending.unit, pending.description], [
    "gauge",
    "{entry}",
    "Outbox entries waiting to be forwarded (counted up to 10,000)",
  ]);
  assertEquals(collect(), { unmatched: 0, outboxPending: 0 }, "nothing read yet");
  await settle();
  const perRead = db.reads.n;
  assert(perRead > 0);
  assertEquals(collect(), expected);
  // Within BACKLOG_REFRESH_MS (10 s) a collection reports the last values without reading.
  assertEquals(BACKLOG_REFRESH_MS, 10_000);
  await db.real.set([...OUTBOX_DUE_PREFIX, 99, "new"], "new");
  await settle();
  assertEquals(collect(), expected);
  await settle();
  assertEquals(db.reads.n, perRead, "no second read");
});

Deno.test("telemetry: past the refresh period a collection re-reads in the background, one read at a time, and a failed read is tried again", async () => {
  using db = await backlogKv(1);
  observeBacklog(db.kv, 0);
  const { collect } = lastGauges();
  await settle();
  const perRead = db.reads.n;
  assertEquals(collect(), { unmatched: 0, outboxPending: 1 }); // and starts a read
  collect(); // while that read is under way: no second one
  await settle();
  assertEquals(db.reads.n, 2 * perRead, "two collections, one read");
  await db.real.set([...OUTBOX_DUE_PREFIX, 5, "e5"], "e5");
  assertEquals(collect(), { unmatched: 0, outboxPending: 1 }, "the last values, and a read");
  await settle();
  assertEquals(collect(), { unmatched: 0, outboxPending: 2 });
  await settle();

  db.reads.fail = true;
  await db.real.set([...OUTBOX_DUE_PREFIX, 6, "e6"], "e6");
  assertEquals(collect(), { unmatched: 0, outboxPending: 2 });
  await settle();
  assertEquals(collect(), { unmatched: 0, outboxPending: 2 }, "the last values kept");
  await settle();
  db.reads.fail = false;
  collect();
  await settle();
  assertEquals(collect(), { unmatched: 0, outboxPending: 3 });
  await settle();
});

Deno.test("telemetry: with a meter provider but no tracer provider, each webhook is still counted", async () => {
  const out = await evalChild(
    [
      `import { metrics } from "@opentelemetry/api";`,
      `import { Hono } from "hono";`,
      `const counted = [];`,
      `const none = { record() {}, addCallback() {} };`,
      `metrics.setGlobalMeterProvider({ getMeter: () => ({`,
      `  createCounter: () => ({ add: (n, a) => counted.push([n, a]) }),`,
      `  createHistogram: () => none, createObservableGauge: () => none,`,
      `}) });`,
      `const t = await import(${libImport("telemetry.ts")});`,
      `await t.telemetryReady();`,
      `const fields = { topic: "lesson.completed", outcome: "stored" };`,
      `const app = new Hono().use(t.webhookTelemetry(() => fields)).get("/", (c) => c.text("ok"));`,
      `await app.request("/");`,
      `console.log(JSON.stringify(counted));`,
    ].join("\n"),
    { env: { OTEL_DENO: "false" } },
  );
  assertEquals(out.code, 0, out.stderr);
  assertEquals(JSON.parse(out.stdout), [
    [1, { "thinkific.topic": "lesson.completed", "collator.outcome": "stored" }],
  ]);
});
