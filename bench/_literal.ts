/**
 * Section 14 (issue 19's comparison): the same load, alternating rounds, against
 *
 * - the service with every feature on, forwarding included (`FORWARD_URL` to a local receiver);
 * - the design card taken literally on Deno KV (`bench/literal_kv_server.ts`);
 * - the seed design on raw SQLite (`bench/baseline_server.ts`);
 * - the service and the literal design again with `latencyMs` (20) added to every KV call
 *   (`bench/latency_start.ts`, and the literal server's own `KV_LATENCY_MS`).
 *
 * Each run is a fresh child process on its own file, warmed up, then the issue's load: `pairs`
 * pairs (3,000), 32 senders, 5% redeliveries, a 409 retried after 5 ms. Ratios are taken per round
 * (the runs of one round are next to each other in time) and their median reported.
 *
 * Beside it, {@linkcode countWrites} counts, in-process, the mutations and Deno Deploy write
 * units of the request's successful commits per pair, for both KV designs, through the same
 * wrapper as section 3.
 * @module
 */
import { parseConfig } from "../lib/config.ts";
import type { Forwarder } from "../lib/forward/forwarder.ts";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/log.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";
import { importSigningKey } from "../lib/thinkific/signature.ts";
import { type E2eLoads, type E2eRun, runE2e } from "./_e2e.ts";
import { FORWARD_SECRET, startReceiver } from "./_forward.ts";
import { type Delivery, deliveryInit, makeLoad } from "./_load.ts";
import { BENCH_SECRET, type ServerKind } from "./_proc.ts";
import { noneTracked, trackWaits } from "./_roundtrips.ts";
import { literalHandler } from "./literal_kv_server.ts";
import { median, quantile, round, sleep } from "./_stats.ts";

/** One of the servers compared. */
export interface Peer {
  id: "service" | "literal" | "sqlite" | "service+lat" | "literal+lat";
  name: string;
  kind: ServerKind;
  latencyMs: number;
  forward: boolean;
}

export function peers(latencyMs: number): Peer[] {
  return [
    { id: "service", name: "service, forwarding on", kind: "project", latencyMs: 0, forward: true },
    { id: "literal", name: "literal KV design", kind: "literal", latencyMs: 0, forward: false },
    { id: "sqlite", name: "raw SQLite baseline", kind: "baseline", latencyMs: 0, forward: false },
    {
      id: "service+lat",
      name: `service, forwarding on, KV +${latencyMs} ms`,
      kind: "project-latency",
      latencyMs,
      forward: true,
    },
    {
      id: "literal+lat",
      name: `literal KV design, KV +${latencyMs} ms`,
      kind: "literal",
      latencyMs,
      forward: false,
    },
  ];
}

/** Forwarding during one run: what the local receiver saw. */
export interface ForwardFigures {
  expected: number;
  forwarded: number;
  /** Arrival − the record's `collated_at`, over every record. */
  lagP50Ms: number;
  lagP99Ms: number;
  /** From the end of the load to the last arrival (NaN: not drained within 30 s). */
  drainMs: number;
}

export interface LiteralRun {
  round: number;
  peer: Peer["id"];
  /** 1-minute load average when the run started. */
  loadavg: number;
  run: E2eRun;
  forward?: ForwardFigures;
}

/** Runs every peer once per round, in the same order, `rounds` times. */
export async function compareLiteral(
  loads: E2eLoads,
  opts: { rounds: number; latencyMs: number },
  progress: (msg: string) => void,
): Promise<LiteralRun[]> {
  const runs: LiteralRun[] = [];
  const expected = loads.warmup.pairs.length + loads.main.pairs.length;
  for (let round = 1; round <= opts.rounds; round++) {
    for (const peer of peers(opts.latencyMs)) {
      const loadavg = Deno.loadavg()[0];
      const rx = peer.forward ? startReceiver() : null;
      let forward: ForwardFigures | undefined;
      const env: Record<string, string> = {};
      if (peer.latencyMs > 0) env.KV_LATENCY_MS = String(peer.latencyMs);
      if (rx) Object.assign(env, { FORWARD_URL: rx.url, FORWARD_SECRET });
      try {
        const run = await runE2e(peer.kind, loads, 32, {
          env,
          load: { retryMinMs: 5, retryMaxMs: 5 },
          afterLoad: rx
            ? async () => {
              const ended = Date.now();
              const deadline = ended + 30_000;
              while (rx.arrivals.size < expected && Date.now() < deadline) await sleep(20);
              const all = [...rx.arrivals.values()];
              const lags = all.map((a) => a.arrivedAt - a.madeAt);
              const last = Math.max(...all.map((a) => a.arrivedAt));
              forward = {
                expected,
                forwarded: rx.arrivals.size,
                lagP50Ms: quantile(lags, 0.5),
                lagP99Ms: quantile(lags, 0.99),
                drainMs: rx.arrivals.size >= expected ? Math.max(0, last - ended) : NaN,
              };
            }
            : undefined,
        });
        runs.push({ round, peer: peer.id, loadavg, run, forward });
        progress(
          `  round ${round} ${peer.name}: ${run.eventsPerSec.toFixed(0)} events/s, ` +
            `p50 ${run.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} ms, records ` +
            `${run.records.records}/${run.records.expected}${run.records.ok ? "" : " FAILED"}` +
            (forward
              ? `, forwarded ${forward.forwarded}/${forward.expected} lag p99 ` +
                `${forward.lagP99Ms.toFixed(0)} ms`
              : "") +
            ` (load ${loadavg.toFixed(2)})`,
        );
      } finally {
        await rx?.close();
      }
    }
  }
  return runs;
}

/** Medians per peer, and per-round ratios. */
export function summarizeLiteral(runs: readonly LiteralRun[], latencyMs: number) {
  const byPeer = peers(latencyMs).map((p) => {
    const mine = runs.filter((r) => r.peer === p.id);
    const fwd = mine.flatMap((r) => r.forward ? [r.forward] : []);
    return {
      peer: p.id,
      name: p.name,
      events_per_s: median(mine.map((r) => r.run.eventsPerSec)),
      events_per_s_range: [
        Math.min(...mine.map((r) => r.run.eventsPerSec)),
        Math.max(...mine.map((r) => r.run.eventsPerSec)),
      ],
      requests_per_event: median(mine.map((r) => r.run.requests / r.run.acceptedEvents)),
      p50_ms: median(mine.map((r) => r.run.p50Ms)),
      p99_ms: median(mine.map((r) => r.run.p99Ms)),
      write_bytes_per_event: median(mine.map((r) => r.run.writeBytesPerEvent)),
      /** The server's CPU per accepted event, ms: steadier than events/s on a shared machine. */
      cpu_ms_per_event: {
        total: median(mine.map(({ run: { cpuMsPerEvent: c } }) => c.main + c.kv + c.other)),
        main: median(mine.map((r) => r.run.cpuMsPerEvent.main)),
        kv: median(mine.map((r) => r.run.cpuMsPerEvent.kv)),
        other: median(mine.map((r) => r.run.cpuMsPerEvent.other)),
      },
      records_ok: mine.every((r) =>
        r.run.records.ok && r.run.acceptedEvents === r.run.expectedEvents
      ),
      problems: mine.flatMap((r) => r.run.records.problems).slice(0, 10),
      forward_lag_p99_ms: fwd.length ? median(fwd.map((f) => f.lagP99Ms)) : undefined,
      forward_drain_ms: fwd.length ? median(fwd.map((f) => f.drainMs)) : undefined,
      forwarded_all: fwd.length ? fwd.every((f) => f.forwarded >= f.expected) : undefined,
    };
  });
  const rounds = [...new Set(runs.map((r) => r.round))];
  const eps = (round: number, peer: Peer["id"]) =>
    runs.find((r) => r.round === round && r.peer === peer)?.run.eventsPerSec ?? NaN;
  const ratio = (a: Peer["id"], b: Peer["id"]) => {
    const perRound = rounds.map((i) => eps(i, a) / eps(i, b));
    return { median: median(perRound), perRound: perRound.map((x) => round(x, 3)) };
  };
  const cpu = (round: number, peer: Peer["id"]) => {
    const c = runs.find((r) => r.round === round && r.peer === peer)?.run.cpuMsPerEvent;
    return c ? c.main + c.kv + c.other : NaN;
  };
  const cpuRatio = (a: Peer["id"], b: Peer["id"]) => {
    const perRound = rounds.map((i) => cpu(i, a) / cpu(i, b));
    return { median: median(perRound), perRound: perRound.map((x) => round(x, 3)) };
  };
  return {
    peers: byPeer,
    /** The server's CPU per event, a over b (lower is better for a). */
    cpu_ratios: {
      service_over_literal: cpuRatio("service", "literal"),
      service_over_sqlite: cpuRatio("service", "sqlite"),
    },
    ratios: {
      service_over_literal: ratio("service", "literal"),
      service_over_sqlite: ratio("service", "sqlite"),
      service_over_literal_latency: ratio("service+lat", "literal+lat"),
      literal_over_sqlite: ratio("literal", "sqlite"),
    },
  };
}

/** Per pair, in the request's successful commits. */
export interface WriteCount {
  design: "service" | "literal";
  scenario: "A lesson first" | "B progress first, 409, retried";
  pairs: number;
  commits: number;
  mutations: number;
  writeUnits: number;
  /** Deliveries answered otherwise than expected. */
  unexpected: number;
}

/**
 * Counts, in-process and sequentially, the commits, mutations and write units per pair of both KV
 * designs: A (lesson 200, progress 200) and B (progress 409, lesson 200, progress again 200). The
 * service runs with HOLD_MS=0 (sequential deliveries) and a forwarder with one webhook
 * destination, so its commits carry the outbox entry they carry with `FORWARD_URL` set.
 */
export async function countWrites(pairs: number): Promise<WriteCount[]> {
  const out: WriteCount[] = [];
  const load = await makeLoad({ pairs: 2 * pairs, seed: 5, secret: BENCH_SECRET, overlap: 0 });
  const byId = new Map(load.deliveries.map((d) => [d.eventId, d]));
  for (const design of ["service", "literal"] as const) {
    const dir = await Deno.makeTempDir({ prefix: `bench-writes-${design}-` });
    const raw = await Deno.openKv(`${dir}/kv.sqlite3`);
    const s = noneTracked();
    const calls: Record<KvCall, number> = { get: 0, getMany: 0, list: 0, commit: 0 };
    const kv = instrumentKv(trackWaits(raw, s), { before: (c) => void calls[c]++ });
    let handle: (d: Delivery) => Promise<number>;
    if (design === "service") {
      const forwarder: Forwarder = {
        destinations: ["webhook"],
        kick() {},
        sweep: () => Promise.resolve(0),
        tick: () => Promise.resolve(),
        close: () => Promise.resolve(),
      };
      const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: BENCH_SECRET, HOLD_MS: "0" });
      const app = createApp({ kv, config, log: silentLogger, forwarder });
      handle = async (d) => {
        const res = await app.request("/webhooks/thinkific", deliveryInit(d));
        await res.arrayBuffer();
        return res.status;
      };
    } else {
      const fetch = literalHandler(kv, await importSigningKey(BENCH_SECRET), () => {});
      handle = async (d) => {
        const res = await fetch(
          new Request("http://local/webhooks/thinkific", deliveryInit(d)),
        );
        await res.arrayBuffer();
        return res.status;
      };
    }
    const tally = new Map<WriteCount["scenario"], WriteCount>();
    const post = async (scenario: WriteCount["scenario"], steps: [Delivery, number][]) => {
      const t = tally.get(scenario) ?? {
        design,
        scenario,
        pairs: 0,
        commits: 0,
        mutations: 0,
        writeUnits: 0,
        unexpected: 0,
      };
      const [m0, w0] = [s.mutations, s.writeUnits];
      for (const [d, expect] of steps) {
        const c0 = calls.commit;
        const status = await handle(d);
        if (status !== expect) t.unexpected++;
        t.commits += calls.commit - c0;
      }
      t.pairs++;
      t.mutations += s.mutations - m0;
      t.writeUnits += s.writeUnits - w0;
      tally.set(scenario, t);
    };
    try {
      for (let i = 0; i < load.pairs.length; i++) {
        const p = load.pairs[i];
        const lesson = byId.get(p.lessonEventId)!;
        const progress = byId.get(p.progressEventId)!;
        if (i % 2 === 0) await post("A lesson first", [[lesson, 200], [progress, 200]]);
        else {
          await post("B progress first, 409, retried", [[progress, 409], [lesson, 200], [
            progress,
            200,
          ]]);
        }
      }
    } finally {
      raw.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    for (const t of tally.values()) {
      out.push({
        ...t,
        commits: t.commits / t.pairs,
        mutations: t.mutations / t.pairs,
        writeUnits: t.writeUnits / t.pairs,
      });
    }
  }
  return out;
}
