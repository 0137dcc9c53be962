/**
 * Section 6: what group commit and held deliveries each buy, against the baseline, under two
 * sender shapes (a 409 retried after 5 ms, doubling; and after 20–50 ms). Each round runs the
 * baseline and the service in four configurations on a fresh database, alternating:
 *
 * | variant | `COMMIT_BATCH_MAX` | `HOLD_MS` |
 * | --- | --- | --- |
 * | neither | 1 | 0 |
 * | group commit | 64 | 0 |
 * | holding | 1 | 1500 |
 * | both (the defaults) | 64 | 1500 |
 *
 * Section 7 (time to record): the sender retries a 409 only after 30 s, as Thinkific's slow
 * retries do; what counts is how long a paired progress event waits from its first delivery to its
 * 200, and how many pairs wait for a retry at all.
 * @module
 */
import { type E2eLoads, type E2eRun, runE2e, summarize } from "./_e2e.ts";
import type { RunOptions } from "./_load.ts";
import { median, quantile } from "./_stats.ts";

/** A configuration of the service. */
export interface Variant {
  name: string;
  env: Record<string, string>;
}

export const VARIANTS: Variant[] = [
  { name: "neither", env: { COMMIT_BATCH_MAX: "1", HOLD_MS: "0" } },
  { name: "group commit", env: { COMMIT_BATCH_MAX: "64", HOLD_MS: "0" } },
  { name: "holding", env: { COMMIT_BATCH_MAX: "1", HOLD_MS: "1500" } },
  { name: "both (defaults)", env: {} },
];

/** A sender's retry behaviour. */
export interface Shape {
  name: string;
  load: RunOptions;
}

export const SHAPES: Shape[] = [
  { name: "409 retried after 5 ms, doubling", load: { retryDoublingMs: 5 } },
  { name: "409 retried after 20-50 ms", load: { retryMinMs: 20, retryMaxMs: 50 } },
];

/** Medians of one server configuration under one shape. */
export interface VariantFigures {
  shape: string;
  variant: string;
  eventsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requestsPerEvent: number;
  /** Share of paired progress events that waited for a sender retry. */
  afterRetryShare: number;
  writeKiBPerEvent: number;
  peakRssBytes: number;
  recordsOk: boolean;
  eventsRatio: number;
  p99Ratio: number;
}

function figures(shape: string, variant: string, runs: E2eRun[]) {
  const m = summarize(runs);
  return {
    shape,
    variant,
    eventsPerSec: m.eventsPerSec,
    p50Ms: m.p50Ms,
    p99Ms: m.p99Ms,
    requestsPerEvent: median(runs.map((r) => r.requests / r.acceptedEvents)),
    afterRetryShare: median(
      runs.map((r) => r.recordsAfterRetry / Math.max(1, r.recordWaitMs.length)),
    ),
    writeKiBPerEvent: m.writeBytesPerEvent / 1024,
    peakRssBytes: m.peakRssBytes,
    recordsOk: m.recordsOk,
  };
}

/** Runs every shape × (baseline + variants) for `rounds` rounds; medians and ratios. */
export async function compareVariants(
  loads: E2eLoads,
  rounds: number,
  progress: (msg: string) => void,
): Promise<VariantFigures[]> {
  const out: VariantFigures[] = [];
  for (const shape of SHAPES) {
    const runs = new Map<string, E2eRun[]>();
    for (let i = 0; i < rounds; i++) {
      for (const v of [{ name: "baseline", env: {} }, ...VARIANTS]) {
        const kind = v.name === "baseline" ? "baseline" : "project";
        const run = await runE2e(kind, loads, 32, { env: v.env, load: shape.load });
        progress(
          `  ${shape.name}, round ${i + 1}, ${v.name}: ${run.eventsPerSec.toFixed(0)} events/s, ` +
            `p99 ${run.p99Ms.toFixed(1)} ms, ${run.requests} requests, ` +
            `${run.recordsAfterRetry}/${run.recordWaitMs.length} pairs after a retry`,
        );
        runs.set(v.name, [...(runs.get(v.name) ?? []), run]);
      }
    }
    const base = figures(shape.name, "baseline", runs.get("baseline")!);
    for (const [name, rs] of runs) {
      const f = figures(shape.name, name, rs);
      out.push({
        ...f,
        eventsRatio: f.eventsPerSec / base.eventsPerSec,
        p99Ratio: f.p99Ms / base.p99Ms,
      });
    }
  }
  return out;
}

/** Section 7's figures for one configuration. */
export interface RecordWait {
  variant: string;
  pairs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  afterRetry: number;
  afterRetryShare: number;
  wallMs: number;
}

/** Time to record with a sender whose retries come 30 s apart, holding on and off. */
export async function measureRecordWait(
  loads: E2eLoads,
  progress: (msg: string) => void,
): Promise<RecordWait[]> {
  const out: RecordWait[] = [];
  const load: RunOptions = { retryMinMs: 30_000, retryMaxMs: 30_000 };
  for (const v of [VARIANTS[1], VARIANTS[3]]) {
    const run = await runE2e("project", loads, 16, { env: v.env, load });
    const w = run.recordWaitMs;
    const r: RecordWait = {
      variant: v.name,
      pairs: w.length,
      p50Ms: quantile(w, 0.5),
      p99Ms: quantile(w, 0.99),
      maxMs: Math.max(...w),
      afterRetry: run.recordsAfterRetry,
      afterRetryShare: run.recordsAfterRetry / Math.max(1, w.length),
      wallMs: run.wallMs,
    };
    progress(
      `  ${v.name}: p99 ${r.p99Ms.toFixed(0)} ms from first delivery to record, ` +
        `${r.afterRetry}/${r.pairs} pairs after a retry`,
    );
    out.push(r);
  }
  return out;
}
