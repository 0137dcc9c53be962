/**
 * `deno task bench`: benchmarks of the service against the seed design's targets.
 *
 * ```sh
 * deno task bench            # every section, full sizes (~5-8 min), readable tables
 * deno task bench --quick    # smaller sizes, a smoke run (< 1 min)
 * deno task bench --json     # one JSON object on stdout instead of tables
 * deno task bench --e2e --coldstart   # only some sections
 * ```
 *
 * Sections: `--e2e` (1, end to end over HTTP), `--baseline` (2, alternating with the baseline
 * server), `--roundtrips` (3, KV round trips per webhook), `--growth` (4, pairing cost as stored
 * data grows), `--coldstart` (5), `--variants` (6, group commit and holding, each alone and
 * together, under two sender shapes), `--wait` (7, time to record with retries 30 s apart),
 * `--forward` (8, forwarding lag under load), `--soak` (9, RSS over `--minutes N`, default 10; not
 * run unless named), `--txn` (10, KV calls and transactions per event under concurrency),
 * `--cross` (11, a held delivery whose counterpart goes to another process on the same file),
 * `--deploy` (12, Deno Deploy's conditions: two isolates on one KV handle woken by `kv.watch`, 0, 20
 * and 40 ms added to every KV call), `--feedpause` (13, the change feed while the writing process
 * is frozen), `--literal` (14, issue 19: the service with forwarding on, the design card taken
 * literally on Deno KV and the SQLite baseline, alternating, then the two KV designs with 20 ms
 * added to every KV call; 3,000 pairs unless `--pairs`; about 1 minute a round). Sizes: `--pairs N`, `--rounds N`.
 * Progress goes to stderr.
 * @module
 */
import { measureColdStart } from "./_coldstart.ts";
import { compare, type E2eRun, makeE2eLoads, runE2e } from "./_e2e.ts";
import { measureGrowth } from "./_growth.ts";
import { cpuModel } from "./_proc.ts";
import { countRoundTrips } from "./_roundtrips.ts";
import { fmt, mib, round, table } from "./_stats.ts";
import { compareVariants, measureRecordWait } from "./_variants.ts";
import { formatForwarding, measureForwarding } from "./_forward.ts";
import { soak } from "./_soak.ts";
import { measureTransactions } from "./_txn.ts";
import { measureCrossProcess } from "./_cross.ts";
import { measureDeployLike } from "./_deploy.ts";
import { runPauseScenario } from "./_feed_pause.ts";
import { compareLiteral, countWrites, summarizeLiteral } from "./_literal.ts";

const SECTIONS = [
  "e2e",
  "baseline",
  "roundtrips",
  "growth",
  "coldstart",
  "variants",
  "wait",
  "forward",
  "txn",
  "cross",
  "deploy",
  "feedpause",
  "literal",
  "soak",
] as const;
/** Sections a plain `deno task bench` runs (`--soak` takes 10 minutes: asked for by name). */
const DEFAULT_SECTIONS = SECTIONS.filter((s) => s !== "soak");
type Section = typeof SECTIONS[number];

interface Options {
  json: boolean;
  quick: boolean;
  sections: Set<Section>;
  pairs: number;
  /** `--pairs` as given (0: each section's default). */
  pairsGiven: number;
  rounds: number;
  /** `--soak`'s length. */
  minutes: number;
}

function usage(): never {
  console.error(
    "usage: deno task bench [--quick] [--json] [--pairs N] [--rounds N] " +
      SECTIONS.map((s) => `[--${s}]`).join(" "),
  );
  Deno.exit(2);
}

function parseArgs(args: string[]): Options {
  const o = {
    json: false,
    quick: false,
    sections: new Set<Section>(),
    pairs: 0,
    pairsGiven: 0,
    rounds: 0,
    minutes: 10,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const [flag, inline] = a.split("=", 2);
    const num = () => {
      const v = Number(inline ?? args[++i]);
      if (!Number.isInteger(v) || v < 1) usage();
      return v;
    };
    if (flag === "--json") o.json = true;
    else if (flag === "--quick") o.quick = true;
    else if (flag === "--pairs") o.pairs = num();
    else if (flag === "--rounds") o.rounds = num();
    else if (flag === "--minutes") o.minutes = num();
    else if (SECTIONS.includes(flag.slice(2) as Section)) o.sections.add(flag.slice(2) as Section);
    else usage();
  }
  if (o.sections.size === 0) { for (const s of DEFAULT_SECTIONS) o.sections.add(s); }
  o.pairsGiven = o.pairs;
  o.pairs ||= o.quick ? 500 : 5_000;
  o.rounds ||= o.quick ? 1 : 3;
  return o;
}

const log = (msg: string) => console.error(msg);

async function environment() {
  return {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    cpu: await cpuModel(),
    cores: navigator.hardwareConcurrency,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    /** Other work on the machine skews the figures: the 1-minute load average at the start. */
    loadavg: Deno.loadavg().map((x) => round(x, 2)),
  };
}

interface Target {
  name: string;
  target: string;
  measured: string;
  holds: boolean;
}

/** The figures of one end-to-end run, as `--json` reports them. */
function runFigures(r: E2eRun) {
  return {
    events_per_s: round(r.eventsPerSec),
    requests_per_s: round(r.requestsPerSec),
    p50_ms: round(r.p50Ms),
    p99_ms: round(r.p99Ms),
    peak_rss_bytes: r.peakRssBytes,
    write_bytes_per_event: round(r.writeBytesPerEvent, 0),
    statuses: r.statuses,
  };
}

async function main() {
  const opts = parseArgs(Deno.args);
  const out: Record<string, unknown> = {
    env: await environment(),
    options: {
      quick: opts.quick,
      pairs: opts.pairs,
      rounds: opts.rounds,
      sections: [...opts.sections],
    },
  };
  const targets: Target[] = [];
  const text: string[] = [];
  const started = performance.now();

  const needLoads = opts.sections.has("e2e") || opts.sections.has("baseline") ||
    opts.sections.has("variants");
  const loads = needLoads ? await makeE2eLoads(opts.pairs) : null;

  if (opts.sections.has("e2e") && loads) {
    log(`1. end to end over HTTP: ${opts.pairs} pairs, concurrency 32 …`);
    const r = await runE2e("project", loads);
    out.e2e = {
      pairs: r.pairs,
      deliveries: loads.main.deliveries.length,
      requests: r.requests,
      wall_ms: round(r.wallMs),
      ...runFigures(r),
      accepted_events: r.acceptedEvents,
      expected_events: r.expectedEvents,
      records: r.records.records,
      records_expected: r.records.expected,
      records_ok: r.records.ok,
      problems: r.records.problems.slice(0, 20),
      failures: r.failures.slice(0, 20),
    };
    const okData = r.records.ok && r.acceptedEvents === r.expectedEvents;
    targets.push({
      name: "e2e: every pair recorded once",
      target: "records = pairs",
      measured: `${r.records.records} / ${r.records.expected}`,
      holds: okData,
    });
    text.push(
      `1. End to end over HTTP (start.ts in a child process; ${r.pairs} pairs, ` +
        `${loads.main.deliveries.length} deliveries incl. redeliveries, concurrency 32)`,
      table([
        ["metric", "value"],
        ["events/s (unique, 2xx)", fmt(r.eventsPerSec, 0)],
        ["requests/s", fmt(r.requestsPerSec, 0)],
        ["requests (incl. 409 retries)", String(r.requests)],
        ["statuses", Object.entries(r.statuses).map(([s, n]) => `${s}:${n}`).join(" ")],
        ["latency p50", `${fmt(r.p50Ms, 1)} ms`],
        ["latency p99", `${fmt(r.p99Ms, 1)} ms`],
        ["peak RSS (server)", mib(r.peakRssBytes)],
        ["storage writes per event", `${fmt(r.writeBytesPerEvent / 1024, 1)} KiB`],
        ["wall time", `${fmt(r.wallMs / 1000, 2)} s`],
        ["records / pairs (+warm-up)", `${r.records.records} / ${r.records.expected}`],
        ["data check", okData ? "ok" : `FAILED: ${r.records.problems.slice(0, 3).join("; ")}`],
      ]),
      "",
    );
  }

  if (opts.sections.has("baseline") && loads) {
    log(`2. project vs baseline, ${opts.rounds} rounds each, alternating …`);
    const c = await compare(loads, opts.rounds, log);
    const row = (name: string, s: typeof c.project) => [
      name,
      fmt(s.eventsPerSec, 0),
      fmt(s.requestsPerSec, 0),
      fmt(s.p50Ms, 1),
      fmt(s.p99Ms, 1),
      mib(s.peakRssBytes),
      `${fmt(s.writeBytesPerEvent / 1024, 1)} KiB`,
      s.recordsOk ? "ok" : "FAILED",
    ];
    out.baseline = {
      rounds: c.rounds,
      project: c.project,
      baseline: c.baseline,
      events_ratio: round(c.eventsRatio, 3),
      p99_ratio: round(c.p99Ratio, 3),
      runs: c.runs.map((r) => ({ kind: r.kind, ...runFigures(r), records_ok: r.records.ok })),
    };
    targets.push({
      name: "vs baseline: events/s ratio",
      target: ">= 1.0",
      measured: fmt(c.eventsRatio, 2),
      holds: c.eventsRatio >= 1,
    }, {
      name: "vs baseline: p99 ratio",
      target: "<= 1.0",
      measured: fmt(c.p99Ratio, 2),
      holds: c.p99Ratio <= 1,
    });
    text.push(
      `2. Project vs baseline (bench/baseline_server.ts: Deno.serve + node:sqlite), same load, ` +
        `${c.rounds} rounds alternating, medians`,
      table([
        ["server", "events/s", "req/s", "p50 ms", "p99 ms", "peak RSS", "writes/event", "records"],
        row("project", c.project),
        row("baseline", c.baseline),
        ["project/baseline", fmt(c.eventsRatio, 2), "", "", fmt(c.p99Ratio, 2), "", "", ""],
      ]),
      "",
    );
  }

  if (opts.sections.has("roundtrips")) {
    const pairs = opts.quick ? 50 : 200;
    log(`3. KV round trips per webhook: ${pairs} pairs per scenario …`);
    const r = await countRoundTrips(pairs);
    out.roundtrips = r;
    targets.push({
      name: "KV round trips per webhook (common path)",
      target: "<= 3",
      measured: `calls max ${r.commonMax} (mean ${fmt(r.commonMean, 2)}); ` +
        `waits max ${r.commonWaitsMax}`,
      holds: r.commonMax <= 3,
    });
    text.push(
      `3. KV round trips per webhook (in-process, instrumentKv; ${pairs} pairs per scenario; ` +
        `calls = KV operations, waits = sequential waits (concurrent calls share one); ` +
        `mutations and checks of the webhook's successful commit)`,
      table([
        [
          "step",
          "n",
          "calls mean",
          "max",
          "waits mean",
          "max",
          "get",
          "getMany",
          "list",
          "commit",
          "mutations",
          "checks",
          "write units",
          "read units",
          "status ok",
        ],
        ...r.steps.map((s) => [
          s.step,
          String(s.webhooks),
          fmt(s.mean, 2),
          String(s.max),
          fmt(s.waitsMean, 2),
          String(s.waitsMax),
          fmt(s.byKind.get, 2),
          fmt(s.byKind.getMany, 2),
          fmt(s.byKind.list, 2),
          fmt(s.byKind.commit, 2),
          fmt(s.mutationsMean, 1),
          fmt(s.checksMean, 1),
          fmt(s.writeUnitsMean, 1),
          fmt(s.readUnitsMean, 1),
          s.unexpected ? `${s.unexpected} unexpected` : `all ${s.expectStatus}`,
        ]),
        [
          "common path (A+B)",
          "",
          fmt(r.commonMean, 2),
          String(r.commonMax),
          fmt(r.commonWaitsMean, 2),
          String(r.commonWaitsMax),
          "",
          "",
          "",
          "",
          "",
          "",
          "",
          "",
          "",
        ],
      ]),
      "",
    );
  }

  if (opts.sections.has("growth")) {
    const sizes = opts.quick ? [1_000, 10_000] : [1_000, 100_000, 1_000_000];
    const pairings = 500;
    log(`4. collation cost as stored data grows: ${sizes.join(", ")} events …`);
    const g = await measureGrowth(sizes, pairings, log);
    out.growth = g;
    const first = g.points[0];
    const last = g.points[g.points.length - 1];
    targets.push({
      name: `pairing p50 at ${last.events.toLocaleString("en-US")} / ` +
        `${first.events.toLocaleString("en-US")} events`,
      target: "<= 1.3",
      measured: fmt(g.ratio, 2),
      holds: g.ratio <= 1.3,
    });
    text.push(
      `4. Collation cost as stored data grows (in-process; ${pairings} pairings of fresh users ` +
        `per size; seeding ${fmt(g.totalSeedMs / 1000, 1)} s in all)`,
      table([
        [
          "stored events",
          "file",
          "seed s",
          "pairing p50 ms",
          "p99 ms",
          "lesson p50",
          "progress p50",
          "KV reads p50",
          "commits p50",
        ],
        ...g.points.map((p) => [
          p.events.toLocaleString("en-US"),
          mib(p.fileBytes),
          fmt(p.seedMs / 1000, 1),
          fmt(p.p50Ms, 2),
          fmt(p.p99Ms, 2),
          fmt(p.lessonP50Ms, 2),
          fmt(p.progressP50Ms, 2),
          fmt(p.kvReadP50Ms, 2),
          fmt(p.kvCommitP50Ms, 2),
        ]),
        ["p50 ratio largest/smallest", "", "", fmt(g.ratio, 2), "", "", "", "", ""],
      ]),
      "",
    );
  }

  if (opts.sections.has("coldstart")) {
    const runs = opts.quick ? 3 : 5;
    log(`5. cold start: ${runs} runs after one warm-up …`);
    const c = await measureColdStart(runs);
    out.coldstart = c;
    targets.push({
      name: "cold start to first /healthz 2xx (median)",
      target: "<= 300 ms",
      measured: `${fmt(c.medianMs, 0)} ms`,
      holds: c.medianMs <= 300,
    });
    text.push(
      `5. Cold start (deno run ${"start.ts"} with deno task start's flags, to first 2xx /healthz)`,
      table([
        ["median", "min", "max", "runs"],
        [
          `${fmt(c.medianMs, 0)} ms`,
          `${fmt(c.minMs, 0)} ms`,
          `${fmt(c.maxMs, 0)} ms`,
          c.runs.map((t) => t.toFixed(0)).join(", "),
        ],
      ]),
      "",
    );
  }

  if (opts.sections.has("variants") && loads) {
    log(`6. group commit and holding, ${opts.rounds} rounds, two sender shapes …`);
    const v = await compareVariants(loads, opts.rounds, log);
    out.variants = v;
    for (const shape of new Set(v.map((f) => f.shape))) {
      const both = v.find((f) => f.shape === shape && f.variant === "both (defaults)")!;
      targets.push({
        name: `vs baseline, ${shape}: events/s ratio`,
        target: ">= 1.0",
        measured: fmt(both.eventsRatio, 2),
        holds: both.eventsRatio >= 1,
      }, {
        name: `vs baseline, ${shape}: p99 ratio`,
        target: "<= 1.0",
        measured: fmt(both.p99Ratio, 2),
        holds: both.p99Ratio <= 1,
      });
    }
    text.push(
      `6. Group commit and held deliveries, each alone and together, against the baseline ` +
        `(${opts.pairs} pairs, concurrency 32, ${opts.rounds} rounds alternating, medians)`,
      table([
        [
          "sender",
          "server",
          "events/s",
          "ratio",
          "p50 ms",
          "p99 ms",
          "p99 ratio",
          "requests/event",
          "pairs after a retry",
          "writes/event",
          "records",
        ],
        ...v.map((f) => [
          f.shape,
          f.variant,
          fmt(f.eventsPerSec, 0),
          fmt(f.eventsRatio, 2),
          fmt(f.p50Ms, 1),
          fmt(f.p99Ms, 1),
          fmt(f.p99Ratio, 2),
          fmt(f.requestsPerEvent, 2),
          `${fmt(f.afterRetryShare * 100, 1)}%`,
          `${fmt(f.writeKiBPerEvent, 1)} KiB`,
          f.recordsOk ? "ok" : "FAILED",
        ]),
      ]),
      "",
    );
  }

  if (opts.sections.has("wait")) {
    const pairs = opts.quick ? 200 : 1000;
    log(`7. time to record, retries 30 s apart: ${pairs} pairs, 16 senders …`);
    const w = await measureRecordWait(await makeE2eLoads(pairs), log);
    out.wait = w;
    const held = w.find((r) => r.variant === "both (defaults)")!;
    targets.push({
      name: "time to record p99 (first delivery to 200), retries 30 s apart",
      target: "< 2 s",
      measured: `${fmt(held.p99Ms, 0)} ms`,
      holds: held.p99Ms < 2000,
    }, {
      name: "pairs waiting for a sender retry",
      target: "<= 1%",
      measured: `${fmt(held.afterRetryShare * 100, 2)}%`,
      holds: held.afterRetryShare <= 0.01,
    });
    text.push(
      `7. Time to record: a paired enrollment.progress from its first delivery to its 200, ` +
        `the sender retrying a 409 after 30 s (${pairs} pairs, 16 senders)`,
      table([
        ["server", "pairs", "p50 ms", "p99 ms", "max ms", "after a retry", "wall s"],
        ...w.map((r) => [
          r.variant,
          String(r.pairs),
          fmt(r.p50Ms, 0),
          fmt(r.p99Ms, 0),
          fmt(r.maxMs, 0),
          `${r.afterRetry} (${fmt(r.afterRetryShare * 100, 2)}%)`,
          fmt(r.wallMs / 1000, 1),
        ]),
      ]),
      "",
    );
  }

  if (opts.sections.has("forward")) {
    const pairs = opts.quick ? 1_000 : 5_000;
    log(`8. forwarding under load: ${pairs} pairs, 16 senders, a local receiver …`);
    const f = await measureForwarding({ pairs }, log);
    out.forward = f;
    const last = f.windows.at(-1)!;
    const first = f.windows[0];
    targets.push({
      name: "forwarding lag stays bounded (p99, last fifth vs first fifth of the load)",
      target: "does not grow",
      measured: `${fmt(first.p99Ms, 0)} → ${fmt(last.p99Ms, 0)} ms; drained ` +
        `${fmt(f.lagAfterLoadMs, 0)} ms after the load`,
      holds: last.p99Ms <= Math.max(2 * first.p99Ms, 1000) && Number.isFinite(f.lagAfterLoadMs),
    });
    text.push(
      `8. Forwarding under load (FORWARD_URL to a local receiver)`,
      formatForwarding(f),
      "",
    );
  }

  if (opts.sections.has("txn")) {
    const pairs = opts.quick ? 500 : 3_000;
    log(`10. KV calls and transactions per event, in-process, ${pairs} pairs …`);
    const t = await measureTransactions(pairs);
    out.txn = t;
    text.push(
      `10. KV calls and SQLite transactions per event under concurrency (in-process, ${pairs} ` +
        `pairs, 32 senders, a 409 retried after 5 ms; one commit is one SQLite transaction)`,
      table([
        [
          "server",
          "events/s",
          "requests",
          "commits/event",
          "reads/event",
          "calls/request",
          "plans/commit",
          "re-decided",
        ],
        ...t.map((f) => [
          f.variant,
          fmt(f.eventsPerSec, 0),
          String(f.requests),
          fmt(f.commitsPerEvent, 3),
          fmt(f.readsPerEvent, 2),
          fmt(f.callsPerRequest, 2),
          fmt(f.plansPerCommit, 1),
          String(f.stalePlans),
        ]),
      ]),
      "",
    );
  }

  if (opts.sections.has("cross")) {
    const pairs = opts.quick ? 100 : 400;
    log(`11. counterpart at another process on the same file: ${pairs} pairs …`);
    const c = await measureCrossProcess(pairs);
    out.cross = c;
    text.push(
      `11. Progress to one process, its lesson 20 ms later to another on the same KV file ` +
        `(${pairs} pairs, 16 senders, a 409 retried after 30 s)`,
      table([
        ["HOLD_MS", "p50 ms", "p99 ms", "pairs after a retry"],
        ...c.map((f) => [
          String(f.holdMs),
          fmt(f.p50Ms, 0),
          fmt(f.p99Ms, 0),
          `${f.afterRetry} / ${f.pairs}`,
        ]),
      ]),
      "",
    );
  }

  if (opts.sections.has("deploy")) {
    const pairs = opts.quick ? 100 : 300;
    const runs = [];
    for (const latency of [0, 20, 40]) {
      log(`12. Deploy-like: ${pairs} pairs, ${latency} ms per KV call …`);
      runs.push(await measureDeployLike(pairs, latency));
    }
    out.deploy = runs;
    text.push(
      `12. Deploy-like: two isolates on one KV handle (kv.watch), latency added to every KV call ` +
        `(${pairs} pairs, 8 senders, progress to one isolate, its lesson 20 ms later to the other)`,
      table([
        [
          "KV latency",
          "record p50/p99 ms",
          "after a retry",
          "feed lag p50/p99 ms",
          "forward lag p50/p99 ms",
          "fed / forwarded",
        ],
        ...runs.map((r) => [
          `${r.latencyMs} ms`,
          `${fmt(r.recordP50, 0)} / ${fmt(r.recordP99, 0)}`,
          `${r.afterRetry}`,
          `${fmt(r.feedP50, 0)} / ${fmt(r.feedP99, 0)}`,
          `${fmt(r.forwardP50, 0)} / ${fmt(r.forwardP99, 0)}`,
          `${r.feedReceived} / ${r.forwarded} of ${r.pairs}`,
        ]),
      ]),
      "",
    );
  }

  if (opts.sections.has("feedpause")) {
    const size = opts.quick
      ? { bursts: 3, pairs: 60, pauseMs: 1_500 }
      : { bursts: 10, pairs: 150, pauseMs: 6_000 };
    log(`13. feed under a frozen writer: ${size.bursts} bursts of ${size.pairs} pairs …`);
    const r = await runPauseScenario(size);
    out.feedpause = r;
    targets.push({
      name: "feed follower while the writer is frozen (SIGSTOP) in each burst",
      target: "every record once",
      measured: `${r.received} of ${r.made}, ${r.duplicates} twice`,
      holds: r.received === r.made && r.missed === 0 && r.duplicates === 0,
    });
    text.push(
      `13. Feed under a frozen writer: ${size.bursts} bursts of ${size.pairs} exact pairs to ` +
        `process A, frozen ${size.pauseMs} ms early in each; a follower reads process B's feed`,
      table([
        ["made", "received", "missed", "twice", "drained after the load"],
        [
          String(r.made),
          String(r.received),
          String(r.missed),
          String(r.duplicates),
          `${r.drainMs} ms`,
        ],
      ]),
      "",
    );
  }

  if (opts.sections.has("literal")) {
    const pairs = opts.pairsGiven || (opts.quick ? 300 : 3_000);
    const latencyMs = 20;
    const writePairs = opts.quick ? 20 : 100;
    log(`14. issue 19: write units per pair, in-process, ${writePairs} pairs per scenario …`);
    const writes = await countWrites(writePairs);
    log(
      `14. issue 19: service / literal KV / SQLite, then both KV designs +${latencyMs} ms: ` +
        `${pairs} pairs, ${opts.rounds} rounds alternating …`,
    );
    const runs = await compareLiteral(await makeE2eLoads(pairs), {
      rounds: opts.rounds,
      latencyMs,
    }, log);
    const sum = summarizeLiteral(runs, latencyMs);
    out.literal = {
      pairs,
      rounds: opts.rounds,
      latency_ms: latencyMs,
      ...sum,
      writes,
      runs: runs.map((r) => ({
        round: r.round,
        peer: r.peer,
        loadavg: round(r.loadavg, 2),
        ...runFigures(r.run),
        records_ok: r.run.records.ok,
        cpu_ms_per_event: r.run.cpuMsPerEvent,
        forward: r.forward,
      })),
    };
    const r = sum.ratios;
    const service = sum.peers.find((p) => p.peer === "service")!;
    const serviceLat = sum.peers.find((p) => p.peer === "service+lat")!;
    const perRound = (x: { perRound: number[] }) => x.perRound.map((v) => fmt(v, 2)).join(", ");
    const serviceWrites = writes.filter((w) => w.design === "service");
    const maxWrites = Math.max(...serviceWrites.map((w) => w.writeUnits));
    targets.push({
      name: "issue 19: service (forwarding on) / literal KV design, events/s",
      target: ">= 1.0",
      measured: fmt(r.service_over_literal.median, 2),
      holds: r.service_over_literal.median >= 1,
    }, {
      name: `issue 19: the same with ${latencyMs} ms added to every KV call`,
      target: ">= 1.5",
      measured: fmt(r.service_over_literal_latency.median, 2),
      holds: r.service_over_literal_latency.median >= 1.5,
    }, {
      name: "issue 19: service (forwarding on) / raw SQLite baseline, events/s",
      target: ">= 0.7",
      measured: fmt(r.service_over_sqlite.median, 2),
      holds: r.service_over_sqlite.median >= 0.7,
    }, {
      name: "issue 19: write units per pair in the request's commits",
      target: "<= 10",
      measured: serviceWrites.map((w) => fmt(w.writeUnits, 1)).join(" / "),
      holds: maxWrites <= 10,
    }, {
      name: "issue 19: forwarding lag p99 under that load, drained at the end",
      target: "< 1 s",
      measured: `${fmt(service.forward_lag_p99_ms ?? NaN, 0)} ms (+${latencyMs} ms: ` +
        `${fmt(serviceLat.forward_lag_p99_ms ?? NaN, 0)} ms)`,
      holds: (service.forward_lag_p99_ms ?? Infinity) < 1000 && Boolean(service.forwarded_all) &&
        Boolean(serviceLat.forwarded_all),
    });
    text.push(
      `14. Issue 19: the design card taken literally (${pairs} pairs, 32 senders, 5% ` +
        `redeliveries, a 409 retried after 5 ms; ${opts.rounds} rounds alternating, medians; ` +
        `load average ${runs.map((x) => fmt(x.loadavg, 1)).join(" ")})`,
      table([
        [
          "server",
          "events/s",
          "range",
          "req/event",
          "p50 ms",
          "p99 ms",
          "writes/event",
          "CPU ms/event (main+KV+other)",
          "forward lag p99",
          "records",
        ],
        ...sum.peers.map((p) => [
          p.name,
          fmt(p.events_per_s, 0),
          p.events_per_s_range.map((x) => fmt(x, 0)).join("–"),
          fmt(p.requests_per_event, 2),
          fmt(p.p50_ms, 1),
          fmt(p.p99_ms, 1),
          `${fmt(p.write_bytes_per_event / 1024, 1)} KiB`,
          `${fmt(p.cpu_ms_per_event.total, 2)} (${fmt(p.cpu_ms_per_event.main, 2)}+` +
          `${fmt(p.cpu_ms_per_event.kv, 2)}+${fmt(p.cpu_ms_per_event.other, 2)})`,
          p.forward_lag_p99_ms === undefined
            ? ""
            : `${fmt(p.forward_lag_p99_ms, 0)} ms${p.forwarded_all ? "" : " (NOT DRAINED)"}`,
          p.records_ok ? "ok" : `FAILED: ${p.problems.slice(0, 2).join("; ")}`,
        ]),
      ]),
      table([
        ["ratio (events/s, per round)", "median", "rounds"],
        [
          "service / literal KV",
          fmt(r.service_over_literal.median, 2),
          perRound(r.service_over_literal),
        ],
        [
          "service / raw SQLite",
          fmt(r.service_over_sqlite.median, 2),
          perRound(r.service_over_sqlite),
        ],
        [
          `service / literal KV, +${latencyMs} ms per KV call`,
          fmt(r.service_over_literal_latency.median, 2),
          perRound(r.service_over_literal_latency),
        ],
        [
          "literal KV / raw SQLite",
          fmt(r.literal_over_sqlite.median, 2),
          perRound(r.literal_over_sqlite),
        ],
        [
          "CPU per event: service / literal KV",
          fmt(sum.cpu_ratios.service_over_literal.median, 2),
          perRound(sum.cpu_ratios.service_over_literal),
        ],
        [
          "CPU per event: service / raw SQLite",
          fmt(sum.cpu_ratios.service_over_sqlite.median, 2),
          perRound(sum.cpu_ratios.service_over_sqlite),
        ],
      ]),
      `Per pair in the request's commits (in-process, sequential, ${writePairs} pairs per ` +
        `scenario; counted through instrumentKv as section 3; the service with a forwarding ` +
        `destination)`,
      table([
        ["design", "scenario", "commit calls", "mutations", "write units", "unexpected"],
        ...writes.map((w) => [
          w.design,
          w.scenario,
          fmt(w.commits, 2),
          fmt(w.mutations, 1),
          fmt(w.writeUnits, 1),
          String(w.unexpected),
        ]),
      ]),
      "",
    );
  }

  if (opts.sections.has("soak")) {
    log(`9. soak: ${opts.minutes} minutes of load, RSS every 10 s …`);
    const s = await soak(opts.minutes, log);
    out.soak = s;
    targets.push({
      name: `RSS over a ${opts.minutes}-minute soak (max of the second half)`,
      target: "< 100 MB, level",
      measured: `${mib(s.firstHalfMaxBytes)} first half, ${mib(s.secondHalfMaxBytes)} second half`,
      holds: s.secondHalfMaxBytes < 100e6 && s.secondHalfMaxBytes <= s.firstHalfMaxBytes * 1.1,
    });
    text.push(
      `9. Soak: ${s.minutes} minutes, ${s.rounds} rounds of 2,000 pairs, ${s.events} events, ` +
        `forwarding on (RSS sampled every 10 s)`,
      table([
        ["s", ...s.series.filter((_, i) => i % 6 === 0).map(([t]) => String(t))],
        ["RSS", ...s.series.filter((_, i) => i % 6 === 0).map(([, b]) => mib(b))],
      ]),
      "",
    );
  }

  out.targets = targets;
  out.loadavg_end = Deno.loadavg().map((x) => round(x, 2));
  out.total_s = round((performance.now() - started) / 1000, 1);
  if (opts.json) {
    console.log(JSON.stringify(out, null, 2));
  } else {
    const env = out.env as Awaited<ReturnType<typeof environment>>;
    console.log(
      `deno task bench${opts.quick ? " --quick" : ""} — ${env.date}\n` +
        `deno ${env.deno} (v8 ${env.v8}), ${env.cpu}, ${env.cores} cores, ${env.os}\n` +
        `load average at start ${env.loadavg.join(" ")}\n`,
    );
    console.log(text.join("\n"));
    console.log("Targets");
    console.log(table([
      ["target", "wanted", "measured", "holds"],
      ...targets.map((t) => [t.name, t.target, t.measured, t.holds ? "yes" : "NO"]),
    ]));
    console.log(
      `\ntotal ${fmt((performance.now() - started) / 1000, 1)} s; load average at the end ` +
        (out.loadavg_end as number[]).join(" "),
    );
  }
}

if (import.meta.main) await main();
