/**
 * Section 3: KV round trips per webhook on the common path, counted in-process through
 * `instrumentKv` under the real application.
 *
 * Scenario A: lesson first (stored), then progress (pairs). Scenario B: progress first (409), then
 * lesson (pairs), then the progress retry (200). Scenario C (for reference, not the common path):
 * a redelivery of an already paired lesson.
 * @module
 */
import { parseConfig } from "../lib/config.ts";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/log.ts";
import type { KvCall } from "../lib/store/instrument.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { type Delivery, makeLoad } from "./_load.ts";
import { BENCH_SECRET } from "./_proc.ts";

const KINDS: KvCall[] = ["get", "getMany", "list", "commit"];

/** Round trips of one step over all its webhooks. */
export interface StepCount {
  step: string;
  expectStatus: number;
  webhooks: number;
  mean: number;
  max: number;
  /** Mean per webhook, by call kind. */
  byKind: Record<KvCall, number>;
  /** Webhooks answered otherwise than expected. */
  unexpected: number;
}

export interface RoundTrips {
  pairs: number;
  steps: StepCount[];
  /** Over every webhook of scenarios A and B. */
  commonMean: number;
  commonMax: number;
}

export async function countRoundTrips(pairs: number): Promise<RoundTrips> {
  const dir = await Deno.makeTempDir({ prefix: "bench-roundtrips-" });
  const counts: Record<KvCall, number> = { get: 0, getMany: 0, list: 0, commit: 0 };
  const raw = await Deno.openKv(`${dir}/kv.sqlite3`);
  const kv = instrumentKv(raw, { before: (call) => void counts[call]++ });
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: BENCH_SECRET });
  const app = createApp({ kv, config, log: silentLogger });

  const steps = new Map<string, { expect: number; n: number[]; kinds: number[][]; bad: number }>();
  const post = async (step: string, d: Delivery, expect: number) => {
    const before = KINDS.map((k) => counts[k]);
    const res = await app.request("/webhooks/thinkific", {
      method: "POST",
      body: d.body,
      headers: {
        "content-type": "application/json",
        "x-thinkific-topic": d.topic,
        "x-thinkific-hmac-sha256": d.signature,
      },
    });
    await res.arrayBuffer();
    const delta = KINDS.map((k, i) => counts[k] - before[i]);
    const s = steps.get(step) ?? { expect, n: [], kinds: [], bad: 0 };
    s.n.push(delta.reduce((a, b) => a + b, 0));
    s.kinds.push(delta);
    if (res.status !== expect) s.bad++;
    steps.set(step, s);
  };

  try {
    const load = await makeLoad({ pairs: 2 * pairs, seed: 5, secret: BENCH_SECRET, overlap: 0 });
    const byId = new Map(load.deliveries.map((d) => [d.eventId, d]));
    for (let i = 0; i < load.pairs.length; i++) {
      const p = load.pairs[i];
      const lesson = byId.get(p.lessonEventId)!;
      const progress = byId.get(p.progressEventId)!;
      if (i % 2 === 0) {
        await post("A1 lesson first (stored)", lesson, 200);
        await post("A2 progress (pairs)", progress, 200);
        if (i % 10 === 0) await post("C  redelivered lesson, paired", lesson, 200);
      } else {
        await post("B1 progress first (409)", progress, 409);
        await post("B2 lesson (pairs)", lesson, 200);
        await post("B3 progress retry (200)", progress, 200);
      }
    }
  } finally {
    raw.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  const out: StepCount[] = [...steps.entries()].sort(([a], [b]) => a.localeCompare(b)).map(
    ([step, s]) => ({
      step,
      expectStatus: s.expect,
      webhooks: s.n.length,
      mean: s.n.reduce((a, b) => a + b, 0) / s.n.length,
      max: Math.max(...s.n),
      byKind: Object.fromEntries(
        KINDS.map((k, i) => [k, s.kinds.reduce((a, row) => a + row[i], 0) / s.kinds.length]),
      ) as Record<KvCall, number>,
      unexpected: s.bad,
    }),
  );
  const common = [...steps.entries()].filter(([k]) => !k.startsWith("C")).flatMap(([, s]) => s.n);
  return {
    pairs,
    steps: out,
    commonMean: common.reduce((a, b) => a + b, 0) / common.length,
    commonMax: Math.max(...common),
  };
}
