/**
 * Deno Deploy's conditions, imitated in one process: two isolates of the app (two apps on one KV
 * handle, held deliveries woken by `kv.watch`, as on Deploy) behind a wrapper that adds `latency`
 * ms to every KV call (KV Connect to another region answers in tens of ms). Each pair's
 * `enrollment.progress` goes to the first isolate, its `lesson.completed` to the second 20 ms
 * later, so the progress is held and woken across isolates. Measures the time to record (the
 * progress's first delivery to its 200), the change feed's lag (a follower polling every 100 ms:
 * arrival − `collated_at`) and the forwarding lag (an in-process handler destination on each
 * isolate: handler call − `collated_at`).
 *
 * ```sh
 * deno run -A bench/_deploy.ts --pairs 300 --latency 20
 * ```
 * @module
 */
import { parseConfig } from "../lib/config.ts";
import { createForwarder, handlerDestination } from "../lib/forward/forwarder.ts";
import { createHolds } from "../lib/hold.ts";
import { createApp } from "../lib/http/app.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { lessonWebhook, progressWebhook, SECRET, signedInit } from "../tests/_helpers.ts";
import { quantile, sleep } from "./_stats.ts";

/** What one run measured, in ms. */
export interface DeployFigures {
  latencyMs: number;
  pairs: number;
  recordP50: number;
  recordP99: number;
  /** Pairs that waited for a sender's retry (a held delivery that was not woken in time). */
  afterRetry: number;
  feedP50: number;
  feedP99: number;
  forwardP50: number;
  forwardP99: number;
  /** Records the feed follower and the forwarder received (each should equal `pairs`). */
  feedReceived: number;
  forwarded: number;
}

/** Runs `pairs` pairs, 8 at a time, with `latencyMs` added to every KV call. */
export async function measureDeployLike(pairs: number, latencyMs: number): Promise<DeployFigures> {
  const real = await Deno.openKv(":memory:");
  const kv = instrumentKv(real, { before() {}, latency: () => latencyMs });
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET });
  const forwardLag: number[] = [];
  const forwarded = new Set<string>();
  const isolates = [0, 1].map(() => {
    const forwarder = createForwarder({
      kv,
      destinations: [
        handlerDestination("bench", (record) => {
          if (!forwarded.has(record.progress_event_id)) {
            forwarded.add(record.progress_event_id);
            forwardLag.push(Date.now() - Date.parse(record.collated_at));
          }
          return Promise.resolve();
        }),
      ],
    });
    const holds = createHolds(kv, { mode: "watch" });
    const app = createApp({ kv, config, holds, forwarder, log: () => {} });
    return { app, holds, forwarder };
  });
  const post = async (i: number, body: unknown) => {
    const res = await isolates[i].app.request("/webhooks/thinkific", await signedInit(body));
    await res.arrayBuffer();
    return res.status;
  };
  const feedLag: number[] = [];
  const fed = new Set<string>();
  let stop = false;
  const follower = (async () => {
    let cursor: string | null = null;
    while (!stop) {
      const c: string = cursor ? `&cursor=${cursor}` : "";
      const res = await isolates[0].app.request(`/api/feed?limit=500${c}`);
      const page = await res.json() as {
        records: { progress_event_id: string; collated_at: string }[];
        cursor: string;
      };
      cursor = page.cursor;
      for (const r of page.records) {
        if (fed.has(r.progress_event_id)) continue;
        fed.add(r.progress_event_id);
        feedLag.push(Date.now() - Date.parse(r.collated_at));
      }
      await sleep(100);
    }
  })();
  const waits: number[] = [];
  let afterRetry = 0;
  let next = 0;
  const base = Date.now() - 60_000;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < pairs) {
      const n = next++;
      const who = { user: 7000 + n, course: 40 + (n % 5), at: base + n * 1_000 };
      const started = performance.now();
      const progress = (async () => {
        for (let attempt = 1;; attempt++) {
          if ((await post(0, progressWebhook(who))) === 200) {
            if (attempt > 1) afterRetry++;
            return performance.now() - started;
          }
          await sleep(1_000);
        }
      })();
      await sleep(20);
      await post(1, lessonWebhook({ ...who, lesson: 500 + (n % 20) }));
      waits.push(await progress);
    }
  }));
  const deadline = Date.now() + 30_000;
  while ((fed.size < pairs || forwarded.size < pairs) && Date.now() < deadline) await sleep(100);
  stop = true;
  await follower;
  for (const i of isolates) {
    i.holds.close();
    await i.forwarder.close();
  }
  real.close();
  return {
    latencyMs,
    pairs,
    recordP50: quantile(waits, 0.5),
    recordP99: quantile(waits, 0.99),
    afterRetry,
    feedP50: quantile(feedLag, 0.5),
    feedP99: quantile(feedLag, 0.99),
    forwardP50: quantile(forwardLag, 0.5),
    forwardP99: quantile(forwardLag, 0.99),
    feedReceived: fed.size,
    forwarded: forwarded.size,
  };
}

if (import.meta.main) {
  const arg = (name: string, fallback: number) => {
    const at = Deno.args.indexOf(`--${name}`);
    return at >= 0 ? Number(Deno.args[at + 1]) : fallback;
  };
  const pairs = arg("pairs", 300);
  for (const latency of Deno.args.includes("--latency") ? [arg("latency", 20)] : [0, 20, 40]) {
    console.log(JSON.stringify(await measureDeployLike(pairs, latency)));
  }
}
