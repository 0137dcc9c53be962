/**
 * Section 9: memory over a long run. The service (as `deno task start` runs it, forwarding every
 * record to a local receiver) takes Thinkific-style load round after round, fresh events each
 * round, for `minutes`; its RSS is sampled every 10 s. What matters is the shape: RSS that levels
 * off under 100 MB, not RSS that keeps climbing with the length of the run.
 *
 * ```sh
 * deno task bench --soak            # 10 minutes
 * deno task bench --soak --minutes 2
 * ```
 * @module
 */
import { makeLoad, runLoad } from "./_load.ts";
import { BENCH_SECRET, readMemory, spawnServer } from "./_proc.ts";
import { sleep } from "./_stats.ts";

const FORWARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/** What a soak measured. */
export interface Soak {
  minutes: number;
  rounds: number;
  events: number;
  /** `[seconds since start, RSS bytes]` every 10 s. */
  series: [number, number][];
  firstRssBytes: number;
  lastRssBytes: number;
  maxRssBytes: number;
  /** Max RSS over the first and the second half of the run. */
  firstHalfMaxBytes: number;
  secondHalfMaxBytes: number;
}

/** Runs load against one server for `minutes`, sampling its RSS. */
export async function soak(minutes: number, progress: (msg: string) => void): Promise<Soak> {
  const received = { n: 0 };
  const receiver = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    await req.arrayBuffer();
    received.n++;
    return new Response(null, { status: 204 });
  });
  const dir = await Deno.makeTempDir({ prefix: "bench-soak-" });
  const server = await spawnServer("project", dir, {
    FORWARD_URL: `http://127.0.0.1:${receiver.addr.port}/hook`,
    FORWARD_SECRET,
  });
  const series: [number, number][] = [];
  const started = performance.now();
  const until = started + minutes * 60_000;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { rss } = await readMemory(server.pid);
      series.push([Math.round((performance.now() - started) / 1000), rss]);
      if (series.length % 6 === 0) {
        progress(`  ${series.at(-1)![0]} s: RSS ${(rss / 1048576).toFixed(1)} MiB`);
      }
      await sleep(10_000);
    }
  })();
  let rounds = 0;
  let events = 0;
  try {
    while (performance.now() < until) {
      const load = await makeLoad({
        pairs: 2_000,
        seed: 1000 + rounds,
        secret: BENCH_SECRET,
        tenantBase: 10_000 + rounds * 8,
        idPrefix: String(3_000_000_000 + rounds),
      });
      const r = await runLoad(server.url, load, { concurrency: 16 });
      events += r.acceptedEvents;
      rounds++;
    }
  } finally {
    sampling = false;
    await sampler;
    await server.close();
    await receiver.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const rss = series.map(([, b]) => b);
  const half = Math.floor(series.length / 2);
  return {
    minutes,
    rounds,
    events,
    series,
    firstRssBytes: rss[0],
    lastRssBytes: rss.at(-1)!,
    maxRssBytes: Math.max(...rss),
    firstHalfMaxBytes: Math.max(...rss.slice(0, half)),
    secondHalfMaxBytes: Math.max(...rss.slice(half)),
  };
}
