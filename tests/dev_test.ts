/**
 * `deno task dev` end to end: starts the real server on a free port with a throw-away database,
 * plays the fixture story, prints the records and the unmatched list, then stops on SIGINT. The
 * README's sample record and its quoted line of output are checked against what it produced, so
 * they cannot drift from the fixtures.
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
    } finally {
      clearTimeout(timer);
      child.kill("SIGINT");
      const status = await child.status;
      await Promise.all([stdout.done, stderr.done]);
      await Deno.remove(dir, { recursive: true });
      assert.equal(status.code, 0, err.join("\n"));
    }
  },
});

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
