/**
 * Section 11: a held delivery whose counterpart goes to another process on the same SQLite file.
 * Two servers share one KV file; each pair's `enrollment.progress` goes to the first, its
 * `lesson.completed` to the second 20 ms later; a 409 is retried after 30 s. With holding, the
 * first process learns of the lesson by reading the enrollment's key every 100 ms (a watcher there
 * sees nothing of the other process's writes); without it, the pair waits for the sender's retry.
 * @module
 */
import {
  deliveryInit,
  LESSON,
  lessonBody,
  makePairs,
  PROGRESS,
  progressBody,
  type Topic,
} from "./_load.ts";
import { BENCH_SECRET, spawnServer } from "./_proc.ts";
import { quantile, sleep } from "./_stats.ts";
import { importSigningKey, signBody } from "../lib/thinkific/signature.ts";

/** What one configuration measured. */
export interface CrossFigures {
  holdMs: number;
  pairs: number;
  /** From the progress event's first delivery to its 200, ms. */
  p50Ms: number;
  p99Ms: number;
  afterRetry: number;
}

/** The signed POST of one event, as the load generator sends it. */
async function signed(key: CryptoKey, body: { id: string }, topic: Topic): Promise<RequestInit> {
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  const signature = await signBody(key, bytes);
  return deliveryInit({ eventId: body.id, topic, body: bytes, signature, redelivery: false });
}

/** Runs `pairs` pairs split over two processes, holding on and off. */
export async function measureCrossProcess(pairs: number): Promise<CrossFigures[]> {
  const key = await importSigningKey(BENCH_SECRET);
  const out: CrossFigures[] = [];
  for (const holdMs of [1500, 0]) {
    const dir = await Deno.makeTempDir({ prefix: "bench-cross-" });
    const env = { HOLD_MS: String(holdMs) };
    const a = await spawnServer("project", dir, env);
    const b = await spawnServer("project", dir, env);
    const done: number[] = [];
    const waits: Promise<number>[] = [];
    let afterRetry = 0;
    try {
      const specs = makePairs({ pairs, seed: 31, idPrefix: "2026110300" });
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < specs.length) {
          const p = specs[next++];
          const started = performance.now();
          const progress = (async () => {
            for (let attempt = 1;; attempt++) {
              const res = await fetch(
                `${a.url}/webhooks/thinkific`,
                await signed(key, progressBody(p), PROGRESS),
              );
              await res.arrayBuffer();
              if (res.status === 200) {
                if (attempt > 1) afterRetry++;
                return performance.now() - started;
              }
              await sleep(30_000);
            }
          })();
          await sleep(20);
          const res = await fetch(
            `${b.url}/webhooks/thinkific`,
            await signed(key, lessonBody(p), LESSON),
          );
          await res.arrayBuffer();
          waits.push(progress); // a progress waiting for its retry does not hold up the sender
        }
      }));
      done.push(...await Promise.all(waits));
    } finally {
      await a.close();
      await b.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    out.push({
      holdMs,
      pairs,
      p50Ms: quantile(done, 0.5),
      p99Ms: quantile(done, 0.99),
      afterRetry,
    });
  }
  return out;
}
