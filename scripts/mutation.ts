/**
 * `deno task mutation [--force] [--report] [module…]`: mutation testing with StrykerJS (pinned
 * below), run under Deno with Stryker's `command` test runner. Without modules, every module of
 * `tests/mutation_map.ts` (all of `lib/`). `--report` runs nothing: it prints the table of the
 * last results kept in `reports/mutation/` (of the modules given, or of every module run so far).
 *
 * One Stryker run per module: `mutate` is that module alone, and each mutant runs only the module's
 * test files from the map (`deno test -A --no-check --fail-fast …`, in Stryker's sandbox copy under
 * `.stryker-tmp/`, two mutants at a time). Incremental: the result of each module is kept in
 * `reports/mutation/<module>.json` (committed), and a rerun tests only the mutants whose code
 * changed. Stryker's command runner cannot tell which tests changed, so this script fingerprints
 * the module's test files, the test helpers and the rest of `lib/`: when that fingerprint moved,
 * the mutants that were not killed are tested again (killed ones are kept; `--force` retests all).
 *
 * Prints Stryker's clear-text report per module, then one table over the modules run, and exits 1
 * if a module scores below its goal (`goalOf` in the map) or a run fails. Slow: not part of
 * `deno task test`. See `tests/MUTATION.md`.
 *
 * @module
 */

import { goalOf, MUTATION_MAP } from "../tests/mutation_map.ts";

/** The pinned tool. */
const STRYKER = "npm:@stryker-mutator/core@10.1.1/stryker";
const REPORTS = "reports/mutation";
const TMP = ".stryker-tmp";
const CONCURRENCY = 2;

interface Mutant {
  id: string;
  mutatorName: string;
  replacement?: string;
  status: string;
  statusReason?: string;
  location: { start: { line: number; column: number } };
}
interface Report {
  files: Record<string, { source: string; mutants: Mutant[] }>;
  testFingerprint?: string;
  [key: string]: unknown;
}

function reportPath(module: string): string {
  return `${REPORTS}/${module.replace(/^lib\//, "")}.json`;
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Everything but the module's own code that can change its mutants' fate. */
async function fingerprint(module: string): Promise<string> {
  const files = [...MUTATION_MAP[module]];
  for (const dir of ["tests", "lib"]) {
    for await (const path of walk(dir)) {
      const helper = dir === "tests" && /\/_[^/]*\.ts$/.test(path);
      if ((helper || dir === "lib") && path !== module) files.push(path);
    }
  }
  files.sort();
  const parts = await Promise.all(files.map(async (f) => `${f}\n${await Deno.readTextFile(f)}`));
  return await sha256(parts.join("\n\0"));
}

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* walk(path);
    else if (entry.isFile) yield path;
  }
}

async function readReport(path: string): Promise<Report | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as Report;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Drops the non-killed mutants from the incremental file, so Stryker tests them again. */
async function forgetSurvivors(path: string, report: Report): Promise<number> {
  let dropped = 0;
  for (const file of Object.values(report.files)) {
    const kept = file.mutants.filter((m) => m.status === "Killed" || m.status === "Timeout");
    dropped += file.mutants.length - kept.length;
    file.mutants = kept;
  }
  await Deno.writeTextFile(path, compact(report));
  return dropped;
}

/**
 * The incremental file as committed: one value per line (readable diffs), and each mutant's
 * `statusReason` (the whole `deno test` output) cut to the failing test's name and place.
 */
function compact(report: Report): string {
  for (const file of Object.values(report.files)) {
    for (const m of file.mutants) {
      if (typeof m.statusReason !== "string") continue;
      const failed = m.statusReason.match(/^(.+) => \.\/(tests\/\S+)$/m);
      m.statusReason = failed ? `${failed[1]} (${failed[2]})` : m.statusReason.slice(0, 200);
    }
  }
  return JSON.stringify(report, null, 1) + "\n";
}

async function runModule(module: string, force: boolean): Promise<number> {
  const tests = MUTATION_MAP[module];
  const incrementalFile = reportPath(module);
  await Deno.mkdir(incrementalFile.replace(/\/[^/]*$/, ""), { recursive: true });
  const print = await fingerprint(module);
  const previous = await readReport(incrementalFile);
  const previousText = previous ? await Deno.readTextFile(incrementalFile) : null;
  if (previous && !force && previous.testFingerprint !== print) {
    const n = await forgetSurvivors(incrementalFile, previous);
    console.log(`${module}: tests or other modules changed, retesting ${n} mutant(s) not killed`);
  }
  const goal = goalOf(module);
  const config = {
    testRunner: "command",
    commandRunner: { command: `deno test -A --no-check --fail-fast ${tests.join(" ")}` },
    mutate: [module],
    concurrency: CONCURRENCY,
    incremental: true,
    incrementalFile,
    force,
    reporters: ["clear-text", "progress-append-only"],
    clearTextReporter: { reportTests: false, reportMutants: true, reportScoreTable: true },
    thresholds: { high: goal, low: Math.min(goal, 80), break: null },
    tempDirName: TMP,
    cleanTempDir: true,
    // Not copied to the sandbox (tests import from bench/, fixtures/ and scripts/: those stay).
    ignorePatterns: ["/reports", "/.scratch", "/data", "/.git"],
    plugins: [],
    timeoutMS: 10_000,
  };
  await Deno.mkdir(TMP, { recursive: true });
  const configFile = await Deno.makeTempFile({ dir: TMP, suffix: ".config.json" });
  await Deno.writeTextFile(configFile, JSON.stringify(config, null, 2));
  const started = Date.now();
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--lock=${REPORTS}/stryker.lock`, STRYKER, "run", configFile],
    env: { NO_COLOR: "1" },
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  const seconds = (Date.now() - started) / 1000;
  await Deno.remove(configFile).catch(() => {});
  const report = await readReport(incrementalFile);
  if (!status.success || !report) {
    console.error(`${module}: Stryker failed (exit ${status.code})`);
    // Back to the last complete result (the survivors dropped above come back).
    if (previousText !== null) await Deno.writeTextFile(incrementalFile, previousText);
    return -1;
  }
  report.testFingerprint = print;
  await Deno.writeTextFile(incrementalFile, compact(report));
  return seconds;
}

interface Row {
  module: string;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  errors: number;
  seconds: number;
  survivors: string[];
}

/** A module's row with nothing counted yet (`seconds` -1: no report to read). */
const emptyRow = (module: string, seconds: number): Row => ({
  module,
  killed: 0,
  timeout: 0,
  survived: 0,
  noCoverage: 0,
  errors: 0,
  seconds,
  survivors: [],
});

function score(r: Omit<Row, "module" | "seconds" | "survivors">): number {
  const detected = r.killed + r.timeout;
  const valid = detected + r.survived + r.noCoverage;
  return valid === 0 ? 100 : (100 * detected) / valid;
}

async function tally(module: string, seconds: number): Promise<Row | null> {
  const report = await readReport(reportPath(module));
  if (!report) return null;
  const row = emptyRow(module, seconds);
  for (const m of report.files[module]?.mutants ?? []) {
    if (m.status === "Killed") row.killed++;
    else if (m.status === "Timeout") row.timeout++;
    else if (m.status === "Survived") row.survived++;
    else if (m.status === "NoCoverage") row.noCoverage++;
    else if (m.status !== "Ignored") row.errors++;
    if (m.status === "Survived" || m.status === "NoCoverage") {
      const at = `${module}:${m.location.start.line}:${m.location.start.column}`;
      row.survivors.push(`${at} ${m.mutatorName} → ${JSON.stringify(m.replacement ?? "")}`);
    }
  }
  return row;
}

function table(rows: Row[]): string {
  const head = [
    "module",
    "score",
    "goal",
    "killed",
    "timeout",
    "survived",
    "no cov",
    "errors",
    "s",
  ];
  const total = rows.reduce(
    (t, r) => ({
      killed: t.killed + r.killed,
      timeout: t.timeout + r.timeout,
      survived: t.survived + r.survived,
      noCoverage: t.noCoverage + r.noCoverage,
      errors: t.errors + r.errors,
      seconds: t.seconds + Math.max(r.seconds, 0),
    }),
    { killed: 0, timeout: 0, survived: 0, noCoverage: 0, errors: 0, seconds: 0 },
  );
  const line = (r: typeof total, name: string, goal: string) => [
    name,
    r.seconds < 0 ? "failed" : score(r).toFixed(2),
    goal,
    String(r.killed),
    String(r.timeout),
    String(r.survived),
    String(r.noCoverage),
    String(r.errors),
    r.seconds < 0 ? "failed" : r.seconds.toFixed(0),
  ];
  const body = rows.map((r) => line(r, r.module, String(goalOf(r.module))));
  body.push(line(total, "all modules run", ""));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells: string[]) =>
    "| " + cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(" | ") +
    " |";
  return [fmt(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...body.map(fmt)]
    .join("\n");
}

async function main(args: string[]): Promise<number> {
  const force = args.includes("--force");
  const reportOnly = args.includes("--report");
  const named = args.filter((a) => !a.startsWith("--")).map((a) => a.replace(/^\.\//, ""));
  const unknown = named.filter((m) => !(m in MUTATION_MAP));
  if (unknown.length > 0) {
    console.error(`not in tests/mutation_map.ts: ${unknown.join(", ")}`);
    return 2;
  }
  const modules = named.length > 0 ? named : Object.keys(MUTATION_MAP).sort();
  const rows: Row[] = [];
  for (const module of modules) {
    if (reportOnly && !(await readReport(reportPath(module)))) continue;
    if (!reportOnly) console.log(`\n=== ${module}: ${MUTATION_MAP[module].join(" ")}`);
    const seconds = reportOnly ? 0 : await runModule(module, force);
    const row = await tally(module, seconds);
    rows.push(
      row ?? emptyRow(module, -1),
    );
  }
  console.log("\nMutation score per module (Stryker, incremental):\n");
  console.log(table(rows));
  const survivors = rows.flatMap((r) => r.survivors);
  if (survivors.length > 0) console.log(`\nSurvivors:\n  ${survivors.join("\n  ")}`);
  const failed = rows.filter((r) => r.seconds < 0 || score(r) < goalOf(r.module));
  if (failed.length > 0) {
    console.log(`\nBelow goal or failed: ${failed.map((r) => r.module).join(", ")}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
