/**
 * `deno task dev` end to end: starts the real server on a free port with a throw-away database,
 * plays the fixture story, prints the records and the unmatched list, then stops on SIGINT. The
 * README's sample record and its quoted line of output are checked against what it produced, so
 * they cannot drift from the fixtures.
 *
 * How it stops is checked from outside, through `/proc` (Linux): on SIGTERM or SIGINT to
 * `deno task`, or when what started `deno task` dies, every process it started is gone within a few
 * seconds and the port is free again. It listens on 127.0.0.1 only (read from `/proc/net/tcp`).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const TIMEOUT_MS = 30_000;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function collect(stream: ReadableStream<Uint8Array>, into: string[], until?: RegExp) {
  let rest = "";
  let resolve!: () => void;
  const found = new Promise<void>((r) => (resolve = r));
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        into.push(line);
        if (until?.test(line)) resolve();
      }
    }
    if (rest) into.push(rest);
    resolve();
  })();
  return { found, done };
}

Deno.test({
  name: "deno task dev plays the fixtures and prints records in plain words",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "dev"],
      cwd: ROOT,
      env: {
        PORT: String(port),
        KV_PATH: `${dir}/dev.sqlite3`,
        THINKIFIC_WEBHOOK_SECRET: "dev-test-secret",
        API_TOKEN: "dev-test-api-token",
        NO_COLOR: "1",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out: string[] = [];
    const err: string[] = [];
    const stdout = collect(child.stdout, out, /^Serving at /);
    const stderr = collect(child.stderr, err);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((
      r,
    ) => (timer = setTimeout(() => r("timeout"), TIMEOUT_MS)));
    try {
      const first = await Promise.race([stdout.found.then(() => "found" as const), timeout]);
      const story = out.filter((l) => !l.startsWith("[server]")).join("\n");
      assert.equal(
        first,
        "found",
        `no "Serving at" within ${TIMEOUT_MS} ms:\n${story}\n${err.join("\n")}`,
      );
      assert.match(story, /^Records \(6\):$/m, story);
      assert.match(
        story,
        /user 5000049 <a\*\*\*@example\.com> completed “Wet on wet” \(Mixing colours\) of Watercolor for beginners at 2026-11-02 14:15:12Z, reaching 17\.5% \(from 12\.5%\)/,
      );
      assert.match(story, /^Unmatched \(1\):$/m);
      assert.match(story, /enrollment\.progress 20261103043000000000190 .*10 deliveries/);
      assert.match(story, /03-enrollment\.progress\.json\s+409 pending/);
      assert.match(story, /08-order\.created\.json\s+200 ignored/);
      assert.doesNotMatch(story, /ada@example\.com/);
      await assertReadmeExamples(`http://127.0.0.1:${port}`, story);
      // The server's output is forwarded.
      assert.ok(out.some((l) => l.startsWith("[server] ") && l.includes('"msg":"webhook"')));
      if (LINUX) assert.deepEqual(await listeningAddresses(port), ["127.0.0.1"]);
    } finally {
      clearTimeout(timer);
      const tree = LINUX ? await descendants(child.pid) : [];
      child.kill("SIGINT");
      const status = await child.status;
      await Promise.all([stdout.done, stderr.done]);
      if (LINUX) await assertAllGone(tree, port);
      await Deno.remove(dir, { recursive: true });
      assert.equal(status.code, 0, err.join("\n"));
    }
  },
});

const LINUX = Deno.build.os === "linux";
/** How long everything may take to stop after the signal: "a few seconds". */
const STOP_WITHIN_MS = 6_000;

/** `ps -e`: pid → [ppid, state]. Reading `/proc` directly would need `--allow-all`. */
async function processes(): Promise<Map<number, [number, string]>> {
  const out = await new Deno.Command("ps", { args: ["-e", "-o", "pid=,ppid=,stat="] }).output();
  const table = new Map<number, [number, string]>();
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const [pid, ppid, stat] = line.trim().split(/\s+/);
    if (pid) table.set(Number(pid), [Number(ppid), stat]);
  }
  return table;
}

/** The pids below `root`. */
async function descendants(root: number): Promise<number[]> {
  const table = [...await processes()];
  const found: number[] = [];
  let frontier = [root];
  while (frontier.length > 0) {
    const next = table.filter(([, [ppid]]) => frontier.includes(ppid)).map(([pid]) => pid);
    found.push(...next);
    frontier = next;
  }
  return found;
}

/** Those of `pids` still running (a zombie waiting to be reaped has stopped). */
async function running(pids: number[]): Promise<number[]> {
  const table = await processes();
  return pids.filter((pid) => table.has(pid) && !table.get(pid)![1].startsWith("Z"));
}

/** The local addresses listening on `port` over TCP (IPv4 and IPv6), from `/proc/net/tcp*`. */
async function listeningAddresses(port: number): Promise<string[]> {
  const found: string[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const out = await new Deno.Command("cat", { args: [file] }).output();
    for (const line of new TextDecoder().decode(out.stdout).split("\n").slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== "0A") continue;
      const [hex, portHex] = local.split(":");
      if (parseInt(portHex, 16) !== port) continue;
      found.push(
        hex.length === 8
          ? hex.match(/../g)!.reverse().map((b) => parseInt(b, 16)).join(".")
          : hex === "0".repeat(32)
          ? "::"
          : hex,
      );
    }
  }
  return found.sort();
}

async function assertAllGone(pids: number[], port: number) {
  assert.ok(pids.length >= 2, `expected dev.ts and its server below deno task, got ${pids}`);
  const deadline = Date.now() + STOP_WITHIN_MS;
  while (Date.now() < deadline) {
    if ((await running(pids)).length === 0 && (await listeningAddresses(port)).length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const left = await running(pids);
  for (const pid of left) Deno.kill(pid, "SIGKILL");
  assert.deepEqual(
    { running: left, listening: await listeningAddresses(port) },
    { running: [], listening: [] },
    `still there ${STOP_WITHIN_MS} ms after the signal`,
  );
}

/**
 * Starts `deno task dev` through `sh -c` (as `npx` does) and waits until the server listens.
 * Returns the shell, its `deno task` and everything below.
 */
async function startDev(port: number, dir: string) {
  const shell = new Deno.Command("sh", {
    // `; exit $?` keeps sh from exec-ing deno: it stays the parent of `deno task`, as npx's sh does.
    args: ["-c", `"${Deno.execPath()}" task dev; exit $?`],
    cwd: ROOT,
    env: { PORT: String(port), KV_PATH: `${dir}/dev.sqlite3`, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out: string[] = [];
  const stdout = collect(shell.stdout, out, /"msg":"listening"/);
  const stderr = collect(shell.stderr, out);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((
    r,
  ) => (timer = setTimeout(() => r("timeout"), TIMEOUT_MS)));
  const first = await Promise.race([stdout.found.then(() => "found" as const), timeout]);
  clearTimeout(timer);
  const tree = await descendants(shell.pid);
  assert.equal(first, "found", out.join("\n"));
  const table = await processes();
  const task = tree.find((pid) => table.get(pid)?.[0] === shell.pid);
  assert.ok(task, "no deno task below sh");
  return { shell, task, tree, out, done: Promise.all([stdout.done, stderr.done]) };
}

for (
  const [name, stop] of [
    ["SIGTERM to deno task", (d: { task: number }) => Deno.kill(d.task, "SIGTERM")],
    ["SIGINT to deno task", (d: { task: number }) => Deno.kill(d.task, "SIGINT")],
    // npx killed: its sh dies, `deno task` is orphaned but gets no signal.
    [
      "the shell that started deno task killed",
      (d: { shell: Deno.ChildProcess }) => d.shell.kill("SIGKILL"),
    ],
  ] as const
) {
  Deno.test({
    name: `deno task dev: ${name} stops the server, the watcher and dev.ts within seconds`,
    ignore: !LINUX,
    fn: async () => {
      const dir = await Deno.makeTempDir();
      const port = freePort();
      const dev = await startDev(port, dir);
      try {
        assert.deepEqual(await listeningAddresses(port), ["127.0.0.1"], dev.out.join("\n"));
        (stop as (d: typeof dev) => void)(dev);
        await assertAllGone(dev.tree, port);
      } finally {
        for (const pid of await running(dev.tree)) Deno.kill(pid, "SIGKILL");
        try {
          dev.shell.kill("SIGKILL");
        } catch {
          // already gone
        }
        await dev.shell.status;
        await dev.done;
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

/** The README's quoted line of output and its sample record are what `deno task dev` produced. */
async function assertReadmeExamples(base: string, story: string) {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const line = story.split("\n").find((l) => /^\s*• user .*“Wet on wet”/.test(l));
  assert.ok(line, story);
  assert.ok(
    readme.includes(line.replace(/^\s*• /, "")),
    `the README quotes this line of output:\n${line.trim()}`,
  );

  const res = await fetch(`${base}/api/records`, {
    headers: { authorization: "Bearer dev-test-api-token" },
  });
  const { records } = await res.json() as { records: Record<string, unknown>[] };
  const record = records.find((r) => r.lesson_name === "Wet on wet");
  assert.ok(record, JSON.stringify(records));
  const block = /### The record\s+```json\n([\s\S]*?)\n```/.exec(readme)?.[1];
  assert.ok(block, "README: no JSON block under ### The record");
  const sample = JSON.parse(block) as Record<string, unknown>;
  // collated_at is the clock at collation: only its form is compared.
  assert.match(String(sample.collated_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(
    { ...sample, collated_at: "(clock)" },
    { ...record, collated_at: "(clock)" },
    `README's sample record differs from the fixtures' record:\n${JSON.stringify(record, null, 2)}`,
  );
}
