/**
 * Section 10: KV calls and SQLite transactions per event under concurrent load, in-process: the
 * real application on a KV file behind `instrumentKv`, 32 concurrent senders calling
 * `app.request` (no HTTP, no load generator on the same cores), a 409 retried after 5 ms. For each
 * configuration: reads (`getMany`, `get`, `list`) and commits (one SQLite transaction each) per
 * accepted event, and what the group committer did.
 * @module
 */
import { parseConfig } from "../lib/config.ts";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/log.ts";
import { createCommitter } from "../lib/store/committer.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";
import { deliveryInit, makeLoad } from "./_load.ts";
import { BENCH_SECRET } from "./_proc.ts";
import { sleep } from "./_stats.ts";
import { VARIANTS } from "./_variants.ts";

/** What one configuration cost. */
export interface TxnFigures {
  variant: string;
  events: number;
  requests: number;
  eventsPerSec: number;
  /** Per accepted event. */
  commitsPerEvent: number;
  readsPerEvent: number;
  callsPerRequest: number;
  plansPerCommit: number;
  /** Plans answered without a commit because they checked a key written since (re-decided). */
  stalePlans: number;
}

/** Runs `pairs` pairs through each configuration, in-process. */
export async function measureTransactions(pairs: number): Promise<TxnFigures[]> {
  const out: TxnFigures[] = [];
  const load = await makeLoad({ pairs, seed: 21, secret: BENCH_SECRET });
  for (const v of VARIANTS) {
    const dir = await Deno.makeTempDir({ prefix: "bench-txn-" });
    const raw = await Deno.openKv(`${dir}/kv.sqlite3`);
    const calls: Record<KvCall, number> = { get: 0, getMany: 0, list: 0, commit: 0 };
    const kv = instrumentKv(raw, { before: (c) => void calls[c]++ });
    const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: BENCH_SECRET, ...v.env });
    const committer = createCommitter(kv, { maxPlans: config.commitBatchMax });
    const app = createApp({ kv, config, committer, log: silentLogger });
    const queue = [...load.deliveries];
    const accepted = new Set<string>();
    let requests = 0;
    let timers = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: 32 }, async () => {
      for (;;) {
        const d = queue.shift();
        if (!d) {
          if (timers === 0) return;
          await sleep(2);
          continue;
        }
        const res = await app.request("/webhooks/thinkific", deliveryInit(d));
        await res.arrayBuffer();
        requests++;
        if (res.ok) accepted.add(d.eventId);
        else {
          timers++;
          setTimeout(() => (timers--, queue.push(d)), 5);
        }
      }
    }));
    const wallMs = performance.now() - started;
    raw.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    const events = accepted.size;
    const s = committer.stats;
    out.push({
      variant: v.name,
      events,
      requests,
      eventsPerSec: events / (wallMs / 1000),
      commitsPerEvent: calls.commit / events,
      readsPerEvent: (calls.get + calls.getMany + calls.list) / events,
      callsPerRequest: (calls.get + calls.getMany + calls.list + calls.commit) / requests,
      plansPerCommit: s.plans / Math.max(1, s.commits),
      stalePlans: s.stale,
    });
  }
  return out;
}
