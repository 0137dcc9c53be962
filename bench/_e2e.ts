/**
 * Sections 1 and 2: end to end over HTTP against a server in a child process, and the same load
 * against the baseline, alternating.
 * @module
 */
import {
  type Load,
  makeLoad,
  type RecordCheck,
  runLoad,
  type RunOptions,
  verifyRecords,
} from "./_load.ts";
import {
  BENCH_SECRET,
  type CpuTimes,
  readCpu,
  readIo,
  type Server,
  type ServerKind,
  spawnServer,
} from "./_proc.ts";
import { median } from "./_stats.ts";

/** One server, one load: what was measured. */
export interface E2eRun {
  kind: ServerKind;
  pairs: number;
  requests: number;
  wallMs: number;
  eventsPerSec: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Peak VmRSS polled every 50 ms, and VmHWM at the end, bytes. */
  peakRssBytes: number;
  hwmBytes: number;
  /** The server's CPU time over the main load per accepted event, ms, by thread group. */
  cpuMsPerEvent: CpuTimes;
  /** Bytes the server wrote to storage (`/proc/<pid>/io` write_bytes) per accepted event. */
  writeBytesPerEvent: number;
  statuses: Record<string, number>;
  acceptedEvents: number;
  expectedEvents: number;
  records: RecordCheck;
  failures: string[];
  /** Per paired progress event: ms from its first delivery to its 200 `collated`. */
  recordWaitMs: number[];
  /** Paired progress events that needed a sender retry. */
  recordsAfterRetry: number;
}

export interface E2eLoads {
  warmup: Load;
  main: Load;
}

/** Builds the warm-up and main loads (signed once, reused by every round). */
export async function makeE2eLoads(pairs: number): Promise<E2eLoads> {
  const warmupPairs = Math.max(50, Math.min(200, Math.round(pairs / 10)));
  const [warmup, main] = await Promise.all([
    makeLoad({
      pairs: warmupPairs,
      seed: 99,
      secret: BENCH_SECRET,
      tenantBase: 70_000,
      idPrefix: "2026110100",
    }),
    makeLoad({ pairs, seed: 1, secret: BENCH_SECRET }),
  ]);
  return { warmup, main };
}

/** Starts a fresh server (fresh database), warms it up, runs the load, checks the records. */
export async function runE2e(
  kind: ServerKind,
  loads: E2eLoads,
  concurrency = 32,
  options: {
    env?: Record<string, string>;
    load?: RunOptions;
    /** Runs when the main load has ended, before the data check and the server's stop. */
    afterLoad?: (server: Server) => Promise<void>;
  } = {},
): Promise<E2eRun> {
  const dir = await Deno.makeTempDir({ prefix: `bench-${kind}-` });
  const server = await spawnServer(kind, dir, options.env).catch(async (err) => {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  });
  try {
    await runLoad(server.url, loads.warmup, { concurrency, ...options.load });
    const [io0, cpu0] = await Promise.all([readIo(server.pid), readCpu(server.pid)]);
    const r = await runLoad(server.url, loads.main, { concurrency, ...options.load });
    const [io1, cpu1] = await Promise.all([readIo(server.pid), readCpu(server.pid)]);
    await options.afterLoad?.(server);
    const records = await verifyRecords(server.url, [loads.warmup, loads.main]);
    const mem = await server.close();
    return {
      kind,
      pairs: loads.main.pairs.length,
      requests: r.requests,
      wallMs: r.wallMs,
      eventsPerSec: r.eventsPerSec,
      requestsPerSec: r.requestsPerSec,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      peakRssBytes: Math.max(mem.peakRss, mem.hwm),
      hwmBytes: mem.hwm,
      writeBytesPerEvent: (io1.writeBytes - io0.writeBytes) / r.acceptedEvents,
      cpuMsPerEvent: {
        main: (cpu1.main - cpu0.main) / r.acceptedEvents,
        kv: (cpu1.kv - cpu0.kv) / r.acceptedEvents,
        other: (cpu1.other - cpu0.other) / r.acceptedEvents,
      },
      statuses: r.statuses,
      acceptedEvents: r.acceptedEvents,
      expectedEvents: r.expectedEvents,
      records,
      failures: r.failures,
      recordWaitMs: r.recordWaitMs,
      recordsAfterRetry: r.recordsAfterRetry,
    };
  } catch (err) {
    await server.close().catch(() => {});
    throw new Error(`${(err as Error).message}\n${server.stderr()}`);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Section 2's summary of alternating rounds. */
export interface Comparison {
  rounds: number;
  project: Summary;
  baseline: Summary;
  /** project / baseline median events/s (target >= 1.0). */
  eventsRatio: number;
  /** project / baseline median p99 (target <= 1.0). */
  p99Ratio: number;
  runs: E2eRun[];
}

export interface Summary {
  eventsPerSec: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  peakRssBytes: number;
  writeBytesPerEvent: number;
  /** Every round's records matched the pairs. */
  recordsOk: boolean;
}

/** Medians of several runs of one server. */
export function summarize(runs: readonly E2eRun[]): Summary {
  return {
    eventsPerSec: median(runs.map((r) => r.eventsPerSec)),
    requestsPerSec: median(runs.map((r) => r.requestsPerSec)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    peakRssBytes: median(runs.map((r) => r.peakRssBytes)),
    writeBytesPerEvent: median(runs.map((r) => r.writeBytesPerEvent)),
    recordsOk: runs.every((r) => r.records.ok && r.acceptedEvents === r.expectedEvents),
  };
}

/** P, B, P, B, … with the same load; medians per side and the ratios. */
export async function compare(
  loads: E2eLoads,
  rounds: number,
  progress: (msg: string) => void,
): Promise<Comparison> {
  const runs: E2eRun[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const kind of ["project", "baseline"] as const) {
      const run = await runE2e(kind, loads);
      progress(
        `  round ${i + 1} ${kind}: ${run.eventsPerSec.toFixed(0)} events/s, ` +
          `p99 ${run.p99Ms.toFixed(1)} ms, records ${run.records.records}/${run.records.expected}`,
      );
      runs.push(run);
    }
  }
  const project = summarize(runs.filter((r) => r.kind === "project"));
  const baseline = summarize(runs.filter((r) => r.kind === "baseline"));
  return {
    rounds,
    project,
    baseline,
    eventsRatio: project.eventsPerSec / baseline.eventsPerSec,
    p99Ratio: project.p99Ms / baseline.p99Ms,
    runs,
  };
}
