/**
 * `deno task mutants [name-substring…] [--list]`: the hand-written mutants StrykerJS cannot express
 * (`deno task mutation` covers the rest, see `tests/MUTATION.md`): a dropped `.check()` in a chain
 * that only the concurrency tests catch, a changed constant, an added log field, a swapped method or
 * field name, another valid enum value. Each mutant plants one bug the test suite claims to catch (exact `find` → `replace` edits in a copy of the project) and runs the
 * tests meant to kill it; a mutant whose tests still pass SURVIVED, and the script exits 1 (unless
 * the table marks it `equivalent`, with the reason no test can kill it).
 *
 * For each mutant: the git-tracked files (`git ls-files`: `git add` a new test before relying on
 * it) are copied to a fresh temp dir, the edits applied, and `deno test -A --no-check=remote
 * <tests>` run there, alone, with the caller's environment (so the same `DENO_DIR` and npm cache),
 * under a timeout (a hang counts as killed). First the union of the selected mutants' tests runs
 * once on the unmutated copy: if it fails, nothing is concluded and the script stops.
 *
 * Every `find` must occur exactly once in its file, checked for the whole table on every run, so
 * the table fails loudly when the code moves under it. A mutant that does not type-check is
 * reported as `invalid`, not killed, and fails the run too.
 *
 * Slow (one `deno test` per mutant, run one at a time): not part of `deno task test`.
 *
 * @module
 */

/** One textual edit: `find` must occur exactly once in `file`. */
interface Edit {
  file: string;
  find: string;
  replace: string;
}

/** A planted bug and the tests that must catch it. */
interface Mutant {
  name: string;
  /** The bug, in one sentence. */
  bug: string;
  edits: Edit[];
  /** Test files to run (the one meant to kill it among them). */
  tests: string[];
  /**
   * Set, with the reason, for a mutant no test can kill because the code stays correct without
   * the line (another guard subsumes it): its survival is reported, and does not fail the run.
   */
  equivalent?: string;
}

const TIMEOUT_MS = 120_000;

const COMMITTER = "tests/committer_test.ts";
const CRASH = "tests/crash_test.ts";
const MATRIX = "tests/collation_matrix_test.ts";
const INTAKE = "tests/intake_test.ts";
const HOLD = "tests/hold_test.ts";
const FORWARD = "tests/forward_test.ts";
const FEED = "tests/feed_test.ts";
const PROJECTIONS = "tests/projections_test.ts";
const PROJECTION_BATCH = "tests/projection_batch_test.ts";
const REDELIVERY = "tests/redelivery_race_test.ts";
const COMPETE = "tests/compete_test.ts";

const UPDATE_EVENT_CHECKED = {
  file: "lib/store/events.ts",
  find:
    "return op.check(read).set(read.key, next, { expireIn: remaining(next, retentionMs, now) });",
  replace: "return op.set(read.key, next, { expireIn: remaining(next, retentionMs, now) });",
};
const SAVE_ENROLLMENT_CHECKED = {
  file: "lib/store/enrollments.ts",
  find: "return op.check(read).set(read.key, next);",
  replace: "return op.set(read.key, next);",
};

export const MUTANTS: Mutant[] = [
  {
    name: "issue10-unchecked-writes",
    bug: "A paired partner is written without its versionstamp check and the enrollment's " +
      "serial check is dropped (issue 10).",
    edits: [UPDATE_EVENT_CHECKED, SAVE_ENROLLMENT_CHECKED],
    tests: [COMMITTER, CRASH, REDELIVERY, COMPETE],
  },
  {
    name: "serial-check-dropped",
    bug: "saveEnrollment writes the enrollment summary without checking the version it read.",
    edits: [SAVE_ENROLLMENT_CHECKED],
    tests: [COMMITTER, CRASH],
  },
  {
    name: "event-update-unchecked",
    bug: "updateEvent (a redelivery's or a partner's update) writes without checking the " +
      "version it read.",
    edits: [UPDATE_EVENT_CHECKED],
    tests: [REDELIVERY, COMMITTER, CRASH],
    equivalent: "every plan that updates an event also checks and rewrites its enrollment's " +
      "summary (the serial order) and checks the erasure tombstone, so a concurrent change of " +
      "the event always fails the commit anyway; issue10-unchecked-writes drops both checks",
  },
  {
    name: "stored-body-limit-65900",
    bug: "The stored-body limit is 65,900 bytes instead of 65,000.",
    edits: [{
      file: "lib/store/limits.ts",
      find: "export const MAX_STORED_BODY_BYTES = 65_000;",
      replace: "export const MAX_STORED_BODY_BYTES = 65_900;",
    }],
    tests: [INTAKE],
  },
  {
    name: "signature-logged",
    bug: "The webhook log line carries the X-Thinkific-Hmac-Sha256 header.",
    edits: [{
      file: "lib/http/webhooks.ts",
      find: '      msg: "webhook",\n      ...fields,\n',
      replace: '      msg: "webhook",\n      ...fields,\n' +
        '      signature: c.req.header("x-thinkific-hmac-sha256"),\n',
    }],
    tests: [MATRIX],
  },
  {
    name: "file-kv-never-polled",
    bug: "Held deliveries on a KV file are never woken by another process (wake mode memory).",
    edits: [{
      file: "lib/kv.ts",
      find: 'return isRemote(config.kvPath) ? "watch" : "poll";',
      replace: 'return isRemote(config.kvPath) ? "watch" : "memory";',
    }],
    tests: [HOLD],
  },
  {
    name: "cron-sweep-rejects",
    bug: "The cron handler calls sweep() instead of tick(), so a failed sweep rejects.",
    edits: [{
      file: "lib/forward/forwarder.ts",
      find: '"* * * * *", async () => await current()?.tick());',
      replace: '"* * * * *", async () => await current()?.sweep().then(() => {}));',
    }],
    tests: [FORWARD],
  },
  {
    name: "feed-keyed-on-completion",
    bug: "The change feed is keyed on the completion time instead of the collation time.",
    edits: [{
      file: "lib/store/records.ts",
      find: "return [Date.parse(record.collated_at), record.tenant_id, record.progress_event_id];",
      replace:
        "return [Date.parse(record.completed_at), record.tenant_id, record.progress_event_id];",
    }],
    tests: [FEED],
  },
  {
    name: "projection-lease-unchecked",
    bug: "A projection batch commits without checking the lease it read, so two processes " +
      "projecting at once both write the same records' views (issue 19).",
    edits: [{
      file: "lib/store/projections.ts",
      find: "const op = new CommitPlan().check(lease);",
      replace: "const op = new CommitPlan();",
    }],
    tests: [PROJECTIONS, PROJECTION_BATCH],
  },
];

const ROOT = new URL("../", import.meta.url);
const rootPath = decodeURIComponent(ROOT.pathname);

function count(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + 1)) n++;
  return n;
}

/** Every edit's `find` occurs exactly once; every test file exists; names are unique. */
async function validate(mutants: Mutant[]): Promise<string[]> {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const m of mutants) {
    if (names.has(m.name)) problems.push(`${m.name}: duplicate name`);
    names.add(m.name);
    if (m.edits.length === 0) problems.push(`${m.name}: no edit`);
    const texts = new Map<string, string>();
    for (const e of m.edits) {
      const text = texts.get(e.file) ?? await Deno.readTextFile(new URL(e.file, ROOT)).catch(
        () => null,
      );
      if (text === null) {
        problems.push(`${m.name}: ${e.file} does not exist`);
        continue;
      }
      const n = count(text, e.find);
      if (n !== 1) {
        problems.push(
          `${m.name}: ${e.file}: find occurs ${n} times (want 1): ${JSON.stringify(e.find)}`,
        );
        continue;
      }
      if (e.find === e.replace) problems.push(`${m.name}: ${e.file}: replace equals find`);
      texts.set(e.file, text.replace(e.find, () => e.replace));
    }
    for (const t of m.tests) {
      const ok = await Deno.stat(new URL(t, ROOT)).then((s) => s.isFile, () => false);
      if (!ok) problems.push(`${m.name}: test file ${t} does not exist`);
    }
  }
  return problems;
}

async function trackedFiles(): Promise<string[]> {
  const out = await new Deno.Command("git", {
    args: ["ls-files", "-z"],
    cwd: rootPath,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("git ls-files failed");
  return new TextDecoder().decode(out.stdout).split("\0").filter((f) => f !== "");
}

/** Copies the tracked files (as they are on disk) into a fresh temp dir. */
async function copyProject(files: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mutant-" });
  const made = new Set<string>();
  for (const f of files) {
    const from = `${rootPath}${f}`;
    const stat = await Deno.lstat(from).catch(() => null);
    if (!stat?.isFile) continue; // deleted in the work tree, or a submodule
    const to = `${dir}/${f}`;
    const parent = to.slice(0, to.lastIndexOf("/"));
    if (!made.has(parent)) {
      await Deno.mkdir(parent, { recursive: true });
      made.add(parent);
    }
    await Deno.copyFile(from, to);
  }
  return dir;
}

async function applyEdits(dir: string, edits: Edit[]) {
  for (const e of edits) {
    const path = `${dir}/${e.file}`;
    const text = await Deno.readTextFile(path);
    if (count(text, e.find) !== 1) throw new Error(`${e.file}: find is not unique`);
    await Deno.writeTextFile(path, text.replace(e.find, () => e.replace));
  }
}

interface Run {
  result: "passed" | "failed" | "timeout" | "invalid";
  seconds: number;
  /** Failing tests' names (from deno test's summary). */
  failures: string[];
  output: string;
}

let current: Deno.ChildProcess | null = null;
let currentDir: string | null = null;

/** `deno test` in `dir`, in its own process group (a timeout kills the servers it started too). */
async function runTests(dir: string, tests: string[]): Promise<Run> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check=remote", ...tests],
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  current = child;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child);
  }, TIMEOUT_MS);
  const output$ = child.output();
  const status = await child.status;
  clearTimeout(timer);
  killGroup(child); // servers a test left behind would keep the pipes open
  const out = await output$;
  current = null;
  const seconds = (performance.now() - started) / 1000;
  const dec = new TextDecoder();
  const output = dec.decode(out.stdout) + dec.decode(out.stderr);
  const failures = [
    ...new Set([...output.matchAll(/^(.+?) => \.?\/?tests\/\S+:\d+:\d+$/gm)].map((m) => m[1])),
  ];
  const ran = /^(ok|FAILED) \| \d+ passed/m.test(output);
  const result = timedOut
    ? "timeout"
    : !ran || /\bTS\d{4}\b|Type checking failed/.test(output) && failures.length === 0
    ? "invalid"
    : status.success
    ? "passed"
    : "failed";
  return { result, seconds, failures, output };
}

function killGroup(child: Deno.ChildProcess) {
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

async function inCopy<T>(files: string[], edits: Edit[], fn: (dir: string) => Promise<T>) {
  const dir = await copyProject(files);
  currentDir = dir;
  try {
    await applyEdits(dir, edits);
    return await fn(dir);
  } finally {
    currentDir = null;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [
    line(rows[0]),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...rows.slice(1).map(line),
  ]
    .join("\n");
}

const short = (test: string) => test.replace(/^tests\//, "").replace(/_test\.ts$/, "");

async function main(args: string[]): Promise<number> {
  const list = args.includes("--list");
  const unknown = args.filter((a) => a.startsWith("-") && a !== "--list");
  if (unknown.length > 0) {
    console.error(
      `unknown option ${unknown[0]}; usage: deno task mutants [name-substring…] [--list]`,
    );
    return 2;
  }
  const patterns = args.filter((a) => !a.startsWith("-"));
  const problems = await validate(MUTANTS);
  if (problems.length > 0) {
    console.error("The mutant table no longer matches the code:");
    for (const p of problems) console.error(`  ${p}`);
    return 2;
  }
  const selected = MUTANTS.filter((m) =>
    patterns.length === 0 || patterns.some((p) => m.name.includes(p))
  );
  if (list) {
    for (const m of selected) {
      const eq = m.equivalent ? `\n  equivalent: ${m.equivalent}` : "";
      console.log(
        `${m.name}\n  ${m.bug}${eq}\n  ${[...new Set(m.edits.map((e) => e.file))].join(", ")} ` +
          `→ ${m.tests.join(" ")}`,
      );
    }
    return 0;
  }
  if (selected.length === 0) {
    console.error(`no mutant matches ${patterns.join(" ")} (--list shows them)`);
    return 2;
  }

  const files = await trackedFiles();
  const union = [...new Set(selected.flatMap((m) => m.tests))];
  console.error(`baseline: ${union.join(" ")} on the unmutated code…`);
  const baseline = await inCopy(files, [], (dir) => runTests(dir, union));
  console.error(`baseline: ${baseline.result} (${baseline.seconds.toFixed(1)} s)`);
  if (baseline.result !== "passed") {
    console.error(baseline.output.slice(-6000));
    console.error("The selected tests do not pass on the real code: nothing to conclude.");
    return 2;
  }

  const rows = [["mutant", "file", "tests", "result", "seconds"]];
  const notes: string[] = [];
  let bad = 0;
  for (const [i, m] of selected.entries()) {
    console.error(`[${i + 1}/${selected.length}] ${m.name}: ${m.bug}`);
    const run = await inCopy(files, m.edits, (dir) => runTests(dir, m.tests));
    const result = run.result === "failed"
      ? "killed"
      : run.result === "timeout"
      ? `killed (hung: timeout ${TIMEOUT_MS / 1000} s)`
      : run.result === "invalid"
      ? "INVALID (did not compile/run)"
      : m.equivalent
      ? "survived (equivalent)"
      : "SURVIVED";
    if (run.result === "invalid" || (run.result === "passed" && !m.equivalent)) bad++;
    if (run.result === "passed" && m.equivalent) {
      notes.push(`- ${m.name}: equivalent: ${m.equivalent}`);
    }
    console.error(`  ${result} (${run.seconds.toFixed(1)} s)`);
    if (run.result === "failed") {
      const by = run.failures.length > 0 ? run.failures : ["(no test name found)"];
      notes.push(
        `- ${m.name}: killed by ${by.slice(0, 4).join("; ")}` +
          (by.length > 4 ? ` (+${by.length - 4} more)` : ""),
      );
    } else if (run.result === "invalid") {
      notes.push(`- ${m.name}: invalid mutant:\n${run.output.slice(-3000)}`);
    }
    rows.push([
      m.name,
      [...new Set(m.edits.map((e) => e.file))].join(", "),
      m.tests.map(short).join(", "),
      result,
      run.seconds.toFixed(1),
    ]);
  }
  console.log(table(rows));
  console.log(
    `\nbaseline (${union.map(short).join(", ")}): passed in ${baseline.seconds.toFixed(1)} s`,
  );
  if (notes.length > 0) console.log(notes.join("\n"));
  const survived = rows.slice(1).filter((r) => r[3] === "SURVIVED").map((r) => r[0]);
  if (bad > 0) {
    console.log(
      `\n${bad} of ${selected.length} mutants not killed: ${survived.join(", ") || "invalid"}`,
    );
    return 1;
  }
  const killed = rows.slice(1).filter((r) => r[3].startsWith("killed")).length;
  const equivalent = selected.length - killed;
  console.log(
    `\n${killed} mutants killed` +
      (equivalent ? `, ${equivalent} equivalent (survival expected)` : ""),
  );
  return 0;
}

if (import.meta.main) {
  Deno.addSignalListener("SIGINT", () => {
    if (current) killGroup(current);
    if (currentDir) Deno.removeSync(currentDir, { recursive: true });
    Deno.exit(130);
  });
  Deno.exit(await main(Deno.args));
}
