/**
 * Forwarding under load: the service in a child process forwards every record to a local
 * Standard Webhooks receiver (`FORWARD_URL`) while a Thinkific-style load runs; each message's
 * `timestamp` (the record's `collated_at`) and its arrival give when it was made and when it was
 * forwarded. Reports records made vs forwarded each second, the lag (arrival − `collated_at`) per
 * part of the load, the backlog when the load ends and how long it takes to drain.
 *
 * ```sh
 * deno run -A bench/_forward.ts --pairs 5000   # alone, ~45 s
 * ```
 *
 * @example
 * ```ts
 * const result = await measureForwarding({ pairs: 5_000 }, console.error);
 * console.log(result.lagAfterLoadMs, result.windows);
 * ```
 * @module
 */
import { makeLoad, runLoad } from "./_load.ts";
import { BENCH_SECRET, spawnServer } from "./_proc.ts";
import { fmt, quantile, round, sleep, table } from "./_stats.ts";

/** A Standard Webhooks secret for the bench (the receiver does not verify signatures). */
export const FORWARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/** What one forwarding run measured. */
export interface ForwardResult {
  pairs: number;
  concurrency: number;
  loadMs: number;
  /** Records made per second of the load (collated_at within the load). */
  madePerSec: number;
  /** Records forwarded per second over the load. */
  forwardedPerSec: number;
  /** Records made / forwarded when the load ended, and 5 s later. */
  madeAtLoadEnd: number;
  forwardedAtLoadEnd: number;
  forwardedAt5sAfterLoad: number;
  /** From the end of the load until the last record arrived, ms (`NaN` if not drained). */
  lagAfterLoadMs: number;
  /** Records forwarded in all; messages received more than once (at-least-once duplicates). */
  forwarded: number;
  duplicates: number;
  /** Lag of the records made in each fifth of the load: bounded if it does not grow. */
  windows: {
    fromS: number;
    toS: number;
    records: number;
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
  }[];
  /** Every second since the load started: records made and forwarded so far. */
  series: { s: number; made: number; forwarded: number }[];
}

/** A receiver counting each message id once, with its record's `collated_at` and its arrival. */
export function startReceiver() {
  const arrivals = new Map<string, { madeAt: number; arrivedAt: number }>();
  let duplicates = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const body = await req.json() as { timestamp: string };
    const id = req.headers.get("webhook-id") ?? "";
    if (arrivals.has(id)) duplicates++;
    else arrivals.set(id, { madeAt: Date.parse(body.timestamp), arrivedAt: Date.now() });
    return new Response(null, { status: 204 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    arrivals,
    duplicates: () => duplicates,
    close: () => server.shutdown(),
  };
}

/**
 * Runs `pairs` pairs with `concurrency` senders (default 16) against a fresh server forwarding to
 * a local receiver, then waits up to `drainTimeoutMs` (30 s) for the last record.
 */
export async function measureForwarding(
  opts: { pairs: number; concurrency?: number; drainTimeoutMs?: number },
  progress: (msg: string) => void = () => {},
): Promise<ForwardResult> {
  const concurrency = opts.concurrency ?? 16;
  const load = await makeLoad({ pairs: opts.pairs, seed: 3, secret: BENCH_SECRET });
  const rx = startReceiver();
  const dir = await Deno.makeTempDir({ prefix: "bench-forward-" });
  const server = await spawnServer("project", dir, {
    FORWARD_URL: rx.url,
    FORWARD_SECRET,
  });
  try {
    const started = Date.now();
    const ticker = setInterval(() => {
      const s = Math.round((Date.now() - started) / 1000);
      if (s % 5 === 0) progress(`  ${s} s: ${rx.arrivals.size} records forwarded`);
    }, 1000);
    const run = await runLoad(server.url, load, { concurrency }).finally(() =>
      clearInterval(ticker)
    );
    const ended = Date.now();
    const expected = run.acceptedEvents / 2;
    const deadline = ended + (opts.drainTimeoutMs ?? 30_000);
    while (rx.arrivals.size < expected && Date.now() < deadline) await sleep(50);
    if (Date.now() < ended + 5_000) await sleep(ended + 5_000 - Date.now());

    const all = [...rx.arrivals.values()];
    const made = (t: number) => all.filter((a) => a.madeAt <= t).length;
    const forwarded = (t: number) => all.filter((a) => a.arrivedAt <= t).length;
    const lastArrival = Math.max(...all.map((a) => a.arrivedAt));
    const loadMs = ended - started;
    const windows = Array.from({ length: 5 }, (_, i) => {
      const from = started + (loadMs * i) / 5;
      const to = started + (loadMs * (i + 1)) / 5;
      const lags = all.filter((a) => a.madeAt >= from && a.madeAt < to)
        .map((a) => a.arrivedAt - a.madeAt);
      return {
        fromS: round((from - started) / 1000, 1),
        toS: round((to - started) / 1000, 1),
        records: lags.length,
        p50Ms: quantile(lags, 0.5),
        p99Ms: quantile(lags, 0.99),
        maxMs: lags.length ? Math.max(...lags) : NaN,
      };
    });
    const series = [];
    for (let t = started + 1000; t <= Math.max(lastArrival, ended) + 1000; t += 1000) {
      series.push({ s: Math.round((t - started) / 1000), made: made(t), forwarded: forwarded(t) });
    }
    return {
      pairs: opts.pairs,
      concurrency,
      loadMs,
      madePerSec: made(ended) / (loadMs / 1000),
      forwardedPerSec: forwarded(ended) / (loadMs / 1000),
      madeAtLoadEnd: made(ended),
      forwardedAtLoadEnd: forwarded(ended),
      forwardedAt5sAfterLoad: forwarded(ended + 5_000),
      lagAfterLoadMs: rx.arrivals.size >= expected ? Math.max(0, lastArrival - ended) : NaN,
      forwarded: rx.arrivals.size,
      duplicates: rx.duplicates(),
      windows,
      series,
    };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${server.stderr()}`);
  } finally {
    await server.close().catch(() => {});
    await rx.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The result as plain-text lines. */
export function formatForwarding(r: ForwardResult): string {
  const lines = [
    `${r.pairs} pairs, ${r.concurrency} senders, load ${fmt(r.loadMs / 1000)} s: ` +
    `${fmt(r.madePerSec)} records/s made, ${fmt(r.forwardedPerSec)} forwarded/s`,
    `at the end of the load: ${r.madeAtLoadEnd} made, ${r.forwardedAtLoadEnd} forwarded; ` +
    `5 s later: ${r.forwardedAt5sAfterLoad} forwarded; last record ${
      fmt(r.lagAfterLoadMs, 0)
    } ms ` +
    `after the load (${r.forwarded} forwarded, ${r.duplicates} duplicates)`,
    table([
      ["records made in", "records", "lag p50 ms", "lag p99 ms", "lag max ms"],
      ...r.windows.map((w) => [
        `${fmt(w.fromS)}–${fmt(w.toS)} s`,
        String(w.records),
        fmt(w.p50Ms, 0),
        fmt(w.p99Ms, 0),
        fmt(w.maxMs, 0),
      ]),
    ]),
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--pairs");
  const pairs = i >= 0 ? Number(Deno.args[i + 1]) : 5_000;
  const result = await measureForwarding({ pairs }, (m) => console.error(m));
  console.log(Deno.args.includes("--json") ? JSON.stringify(result) : formatForwarding(result));
}
