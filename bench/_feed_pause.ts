/**
 * The change feed under a frozen writer: two `start.ts` processes on one KV file; A takes the
 * webhooks, B serves `/api/feed` to a follower. A is frozen (SIGSTOP) for `pauseMs` early in each
 * burst of exact pairs, while requests are in flight, so commits decided before the freeze land
 * after the follower has read past their time. Counts what the follower received.
 *
 * ```sh
 * deno run -A bench/_feed_pause.ts                 # 10 bursts of 150 pairs, 6 s freezes
 * deno run -A bench/_feed_pause.ts --bursts 3 --pairs 40 --pause 1500 --delay 200
 * ```
 * @module
 */
import { BASE_TIME, lessonWebhook, progressWebhook, type Webhook } from "../tests/_helpers.ts";
import { postTo, startServer } from "../tests/_server.ts";

/** What {@linkcode runPauseScenario} measured. */
export interface PauseResult {
  /** Records made (read from `/api/records` at the end). */
  made: number;
  /** Distinct records the follower received. */
  received: number;
  /** Records the follower received more than once. */
  duplicates: number;
  /** Records made but never received. */
  missed: number;
  /** Milliseconds from the end of the load until the follower had everything (or gave up). */
  drainMs: number;
}

/** Options of {@linkcode runPauseScenario}. */
export interface PauseOptions {
  bursts: number;
  pairs: number;
  pauseMs: number;
  /** `FEED_DELAY_MS` of both processes (unset: the default). */
  feedDelayMs?: number;
  /** Concurrent senders. */
  senders?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Posts until the answer is final (not pending, not 503). */
async function deliver(url: string, body: Webhook): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const r = await postTo(url, body);
    if (r.status === 200) return String(r.json.status);
    if (r.status !== 409 && r.status !== 503) {
      throw new Error(`${r.status} ${JSON.stringify(r.json)}`);
    }
    await sleep(20);
  }
  throw new Error(`no final answer for ${body.id}`);
}

/** Runs the scenario in a temporary folder; see the module doc. */
export async function runPauseScenario(opts: PauseOptions): Promise<PauseResult> {
  const dir = await Deno.makeTempDir();
  const env: Record<string, string> = { KV_PATH: `${dir}/kv.sqlite3` };
  if (opts.feedDelayMs !== undefined) env.FEED_DELAY_MS = String(opts.feedDelayMs);
  const a = await startServer(env);
  const b = await startServer(env);
  const seen = new Map<string, number>();
  let stop = false;
  const follower = (async () => {
    let cursor: string | null = null;
    while (!stop) {
      const c: string = cursor ? `&cursor=${cursor}` : "";
      const res = await fetch(`${b.url}/api/feed?limit=500${c}`);
      if (res.status !== 200) {
        await res.body?.cancel();
        await sleep(50);
        continue;
      }
      const page = await res.json() as { records: { progress_event_id: string }[]; cursor: string };
      cursor = page.cursor;
      for (const r of page.records) {
        seen.set(r.progress_event_id, (seen.get(r.progress_event_id) ?? 0) + 1);
      }
      if (page.records.length < 500) await sleep(50);
    }
  })();
  try {
    const senders = opts.senders ?? 32;
    for (let burst = 0; burst < opts.bursts; burst++) {
      const queue = Array.from({ length: opts.pairs }, (_, i) => burst * opts.pairs + i);
      const send = async () => {
        for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
          const who = { user: 1000 + n, course: 10 + (n % 5) };
          const at = BASE_TIME + n * 1_000;
          await deliver(a.url, lessonWebhook({ ...who, at, lesson: 100 + (n % 50) }));
          const status = await deliver(a.url, progressWebhook({ ...who, at }));
          if (status !== "collated") throw new Error(`pair ${n}: ${status}`);
        }
      };
      const load = Promise.all(Array.from({ length: senders }, send));
      // Early in the burst, with requests in flight: freeze the writer.
      await sleep(30);
      a.child.kill("SIGSTOP");
      await sleep(opts.pauseMs);
      a.child.kill("SIGCONT");
      await load;
    }
    const ended = performance.now();
    const all = new Set<string>();
    for (let cursor: string | null = null;;) {
      const c: string = cursor ? `&cursor=${cursor}` : "";
      const page = await fetch(`${a.url}/api/records?limit=500${c}`).then((r) => r.json());
      for (const r of page.records) all.add(r.progress_event_id);
      cursor = page.cursor;
      if (!cursor) break;
    }
    const waitMs = (opts.feedDelayMs ?? 1_000) + 10_000;
    while (performance.now() - ended < waitMs && [...all].some((id) => !seen.has(id))) {
      await sleep(50);
    }
    const drainMs = Math.round(performance.now() - ended);
    // Anything else that would show up late shows up within one more delay.
    await sleep((opts.feedDelayMs ?? 1_000) + 500);
    stop = true;
    await follower;
    return {
      made: all.size,
      received: [...seen.keys()].filter((id) => all.has(id)).length,
      duplicates: [...seen.values()].filter((n) => n > 1).length,
      missed: [...all].filter((id) => !seen.has(id)).length,
      drainMs,
    };
  } finally {
    stop = true;
    await follower.catch(() => {});
    await a.close();
    await b.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const arg = (name: string, fallback: number) => {
    const at = Deno.args.indexOf(`--${name}`);
    return at >= 0 ? Number(Deno.args[at + 1]) : fallback;
  };
  const delay = arg("delay", NaN);
  const result = await runPauseScenario({
    bursts: arg("bursts", 10),
    pairs: arg("pairs", 150),
    pauseMs: arg("pause", 6_000),
    feedDelayMs: Number.isNaN(delay) ? undefined : delay,
  });
  console.log(JSON.stringify(result));
}
