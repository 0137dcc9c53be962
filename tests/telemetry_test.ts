/**
 * OpenTelemetry: `deno task start`'s process with `OTEL_DENO=true` exports, over OTLP/HTTP JSON to
 * a local receiver, the webhook spans with the collator's attributes and the collator's metrics,
 * and never a learner's email or name.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { postTo, startServer } from "./_server.ts";

/** An OTLP/HTTP receiver: every JSON body posted to /v1/traces, /v1/metrics, /v1/logs. */
function otlpReceiver() {
  const bodies: { path: string; text: string }[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    bodies.push({ path: new URL(req.url).pathname, text: await req.text() });
    return Response.json({});
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, bodies, server };
}

interface OtlpAttribute {
  key: string;
  value: Record<string, unknown>;
}
interface OtlpSpan {
  name: string;
  spanId: string;
  parentSpanId?: string;
  attributes?: OtlpAttribute[];
}

function spansOf(bodies: { path: string; text: string }[]): OtlpSpan[] {
  return bodies.filter((b) => b.path === "/v1/traces").flatMap((b) =>
    JSON.parse(b.text).resourceSpans.flatMap((r: { scopeSpans: { spans: OtlpSpan[] }[] }) =>
      r.scopeSpans.flatMap((s) => s.spans)
    )
  );
}

function metricNames(bodies: { path: string; text: string }[]): Set<string> {
  return new Set(
    bodies.filter((b) => b.path === "/v1/metrics").flatMap((b) =>
      JSON.parse(b.text).resourceMetrics.flatMap((
        r: { scopeMetrics: { metrics: { name: string }[] }[] },
      ) => r.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.name)))
    ),
  );
}

/** The data points of the counter `name` in the last export that has it: attributes → value. */
function counterPoints(bodies: { path: string; text: string }[], name: string): string[] {
  interface Point {
    attributes?: OtlpAttribute[];
    asInt?: string | number;
    asDouble?: number;
  }
  let last: Point[] = [];
  for (const b of bodies.filter((b) => b.path === "/v1/metrics")) {
    for (const r of JSON.parse(b.text).resourceMetrics) {
      for (const s of r.scopeMetrics) {
        for (const m of s.metrics) {
          if (m.name === name) last = m.sum.dataPoints as Point[];
        }
      }
    }
  }
  return last.map((p) => {
    const attrs = (p.attributes ?? []).map((a) => `${a.key}=${Object.values(a.value)[0]}`).sort();
    return `${attrs.join(" ")}: ${Number(p.asInt ?? p.asDouble)}`;
  }).sort();
}

/** The count of the histogram `name` in the last export that has it (summed over its points). */
function histogramCount(bodies: { path: string; text: string }[], name: string): number {
  let count = 0;
  for (const b of bodies.filter((b) => b.path === "/v1/metrics")) {
    for (const r of JSON.parse(b.text).resourceMetrics) {
      for (const s of r.scopeMetrics) {
        for (const m of s.metrics) {
          if (m.name !== name) continue;
          count = (m.histogram.dataPoints as { count: string | number }[])
            .reduce((n, p) => n + Number(p.count), 0);
        }
      }
    }
  }
  return count;
}

const attr = (span: OtlpSpan, key: string) => {
  const v = span.attributes?.find((a) => a.key === key)?.value;
  return v ? Object.values(v)[0] : undefined;
};

Deno.test("telemetry: webhook spans carry the collator's attributes; metrics exported; no email", async () => {
  const rx = otlpReceiver();
  const dir = await Deno.makeTempDir();
  const server = await startServer({
    KV_PATH: `${dir}/kv.sqlite3`,
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_METRIC_EXPORT_INTERVAL: "300",
    OTEL_BSP_SCHEDULE_DELAY: "100",
    OTEL_SERVICE_NAME: "collator-test",
  });
  try {
    const progress = progressWebhook({ at: BASE_TIME });
    const lesson = lessonWebhook({ at: BASE_TIME });
    assertEquals((await postTo(server.url, progress)).status, 409);
    assertEquals((await postTo(server.url, lesson)).json.status, "collated");
    assertEquals((await postTo(server.url, progress)).json.status, "collated");

    const wanted = [
      "collator.webhooks",
      "collator.pair_skew_ms",
      "collator.record_wait_ms",
      "collator.unmatched",
      "collator.outbox.pending",
    ];
    for (let i = 0; i < 300; i++) {
      const names = metricNames(rx.bodies);
      const spans = spansOf(rx.bodies).filter((s) => s.name === "collator.webhook");
      if (spans.length >= 3 && wanted.every((n) => names.has(n))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const spans = spansOf(rx.bodies).filter((s) => s.name === "collator.webhook");
    const seen = spans.map((
      s,
    ) => [attr(s, "thinkific.topic"), attr(s, "thinkific.event_id"), attr(s, "collator.outcome")]);
    assertEquals(seen, [
      ["enrollment.progress", progress.id, "pending"],
      ["lesson.completed", lesson.id, "collated"],
      ["enrollment.progress", progress.id, "collated"],
    ]);
    assertEquals(String(attr(spans[0], "collator.attempts")), "1");
    // Children of Deno's automatic HTTP spans.
    const http = new Set(spansOf(rx.bodies).filter((s) => s.name === "POST").map((s) => s.spanId));
    assert(spans.every((s) => http.has(s.parentSpanId ?? "")), "a child of the POST span");
    const names = metricNames(rx.bodies);
    for (const name of wanted) assert(names.has(name), `${name} missing from ${[...names]}`);
    // The webhook counter, by topic and outcome (cumulative).
    const counted = [
      "collator.outcome=collated thinkific.topic=enrollment.progress: 1",
      "collator.outcome=collated thinkific.topic=lesson.completed: 1",
      "collator.outcome=pending thinkific.topic=enrollment.progress: 1",
    ];
    for (let i = 0; i < 100; i++) {
      if (counterPoints(rx.bodies, "collator.webhooks").length >= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assertEquals(counterPoints(rx.bodies, "collator.webhooks"), counted);
    // One record made: its skew and wait are measured once, not again for the redelivery.
    assertEquals(histogramCount(rx.bodies, "collator.pair_skew_ms"), 1);
    assertEquals(histogramCount(rx.bodies, "collator.record_wait_ms"), 1);

    const everything = rx.bodies.map((b) => b.text).join("\n");
    for (const secret of ["ada@example.com", "Tester"]) {
      assert(!everything.includes(secret), `${secret} was exported`);
    }
  } finally {
    await server.close();
    await rx.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
