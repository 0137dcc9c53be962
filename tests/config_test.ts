import { assertEquals, assertMatch } from "./_assert.ts";
import { ConfigError, parseConfig } from "../lib/config.ts";
import assert from "node:assert/strict";

Deno.test("config: defaults from SPEC", () => {
  const c = parseConfig({});
  assertEquals(
    [c.port, c.matchWindowMs, c.logicTopic, c.pendingStatus, c.giveUpAfterAttempts, c.maxBodyBytes],
    [8000, 500, "enrollment.progress", 409, 10, 262144],
  );
  assertEquals([c.kvPath, c.webhookSecret, c.apiToken, c.onDenoDeploy], [
    undefined,
    undefined,
    undefined,
    false,
  ]);
  assertEquals(c.retentionDays, 30);
});

Deno.test("config: values are parsed", () => {
  const c = parseConfig({
    PORT: "9000",
    KV_PATH: ":memory:",
    MATCH_WINDOW_MS: "250",
    LOGIC_TOPIC: "lesson.completed",
    PENDING_STATUS: "425",
    GIVE_UP_AFTER_ATTEMPTS: "3",
    MAX_BODY_BYTES: "4096",
    RETENTION_DAYS: "7",
    THINKIFIC_WEBHOOK_SECRET: "abcdefgh",
    API_TOKEN: "tokentoken",
  });
  assertEquals(
    [c.port, c.kvPath, c.matchWindowMs, c.logicTopic, c.pendingStatus, c.giveUpAfterAttempts],
    [9000, ":memory:", 250, "lesson.completed", 425, 3],
  );
  assertEquals([c.maxBodyBytes, c.retentionDays, c.webhookSecret, c.apiToken], [
    4096,
    7,
    "abcdefgh",
    "tokentoken",
  ]);
});

const WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

Deno.test("config: forwarding", () => {
  const c = parseConfig({ FORWARD_URL: "https://crm.example.com/hook", FORWARD_SECRET: WHSEC });
  assertEquals([c.forwardUrl, c.forwardSecret], ["https://crm.example.com/hook", WHSEC]);
  const local = parseConfig({ FORWARD_URL: "http://localhost:9000/x", FORWARD_SECRET: WHSEC });
  assertEquals(local.forwardUrl, "http://localhost:9000/x");
});

Deno.test("config: HOST: every interface by default (deno task start), else as given", () => {
  assertEquals(parseConfig({}).host, "0.0.0.0");
  assertEquals(parseConfig({ HOST: " 127.0.0.1 " }).host, "127.0.0.1");
  assertEquals(parseConfig({ HOST: "::1" }).host, "::1");
});

const invalid: [Record<string, string>, RegExp][] = [
  [{ HOST: "127.0.0.1 8000" }, /HOST must be an IP address or a host name/],
  [{ PORT: "eighty" }, /PORT/],
  [{ PORT: "70000" }, /PORT/],
  [{ MATCH_WINDOW_MS: "-5" }, /MATCH_WINDOW_MS/],
  [{ MATCH_WINDOW_MS: "1.5" }, /MATCH_WINDOW_MS/],
  [{ LOGIC_TOPIC: "order.created" }, /LOGIC_TOPIC/],
  [{ PENDING_STATUS: "200" }, /PENDING_STATUS/],
  [{ PENDING_STATUS: "500" }, /PENDING_STATUS must be between 400 and 499/],
  [{ PENDING_STATUS: "503" }, /PENDING_STATUS/],
  [{ KV_PATH: "https://kv.example.com/db" }, /KV_PATH .*DENO_KV_ACCESS_TOKEN must be set/],
  [{ KV_PATH: "http://kv.example.com/db" }, /KV_PATH must be .*http:\/\/ only for localhost/],
  [{ KV_PATH: "ftp://kv.example.com/db" }, /KV_PATH must be/],
  [{ GIVE_UP_AFTER_ATTEMPTS: "0" }, /GIVE_UP_AFTER_ATTEMPTS/],
  [{ MAX_BODY_BYTES: "10" }, /MAX_BODY_BYTES/],
  [{ RETENTION_DAYS: "0" }, /RETENTION_DAYS/],
  [{ THINKIFIC_WEBHOOK_SECRET: "short" }, /THINKIFIC_WEBHOOK_SECRET/],
  [{ API_TOKEN: " padded-token " }, /API_TOKEN/],
  [{ DENO_DEPLOYMENT_ID: "abc" }, /THINKIFIC_WEBHOOK_SECRET must be set on Deno Deploy/],
  [{ DENO_DEPLOY: "1", API_TOKEN: "tokentoken" }, /THINKIFIC_WEBHOOK_SECRET/],
  [
    { DENO_DEPLOYMENT_ID: "abc", THINKIFIC_WEBHOOK_SECRET: "abcdefgh" },
    /API_TOKEN must be set on Deno Deploy/,
  ],
  [{ DENO_DEPLOY_APP_SLUG: "app", THINKIFIC_WEBHOOK_SECRET: "abcdefgh" }, /API_TOKEN/],
  [
    { FORWARD_URL: "http://crm.example.com/hook", FORWARD_SECRET: WHSEC },
    /FORWARD_URL must be https/,
  ],
  [{ FORWARD_URL: "not a url", FORWARD_SECRET: WHSEC }, /FORWARD_URL must be a URL/],
  [{ FORWARD_URL: "https://crm.example.com/hook" }, /FORWARD_URL and FORWARD_SECRET/],
  [{ FORWARD_SECRET: WHSEC }, /FORWARD_URL and FORWARD_SECRET/],
  [{ FORWARD_URL: "https://crm.example.com/hook", FORWARD_SECRET: "whsec_%%%" }, /FORWARD_SECRET/],
];

for (const [env, name] of invalid) {
  Deno.test(`config: rejects ${JSON.stringify(env)}`, () => {
    assert.throws(() => parseConfig(env), (err: unknown) => {
      assert(err instanceof ConfigError);
      assertMatch(err.message, name);
      return true;
    });
  });
}

Deno.test("config: KV Connect URLs: https with a token, http only to localhost", () => {
  const remote = parseConfig({ KV_PATH: "https://kv.example.com/db", DENO_KV_ACCESS_TOKEN: "t" });
  assertEquals(remote.kvPath, "https://kv.example.com/db");
  const local = parseConfig({ KV_PATH: "http://localhost:4512", DENO_KV_ACCESS_TOKEN: "t" });
  assertEquals(local.kvPath, "http://localhost:4512");
});

Deno.test("config: on Deno Deploy with a secret and a token, the attached database is used", () => {
  const c = parseConfig({
    DENO_DEPLOYMENT_ID: "abc",
    THINKIFIC_WEBHOOK_SECRET: "abcdefgh",
    API_TOKEN: "tokentoken",
  });
  assertEquals([c.onDenoDeploy, c.kvPath], [true, undefined]);
});

/** Runs `start.ts` as `deno task start` does and returns its exit code and output. */
async function start(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-read", "--allow-write", "--allow-net", "start.ts"],
    cwd: new URL("..", import.meta.url),
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Asserts that start-up stopped with exit 1 and one stderr line matching `pattern`. */
function assertStopped(r: Awaited<ReturnType<typeof start>>, pattern: RegExp) {
  assertEquals(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assertEquals(lines.length, 1, `one line, got:\n${r.stderr}`);
  assertMatch(lines[0], pattern);
  assert(!r.stdout.includes('"msg":"ready"'), `no "ready" before failing:\n${r.stdout}`);
}

Deno.test("config: a bad value stops start-up naming the variable", async () => {
  assertStopped(
    await start({ MATCH_WINDOW_MS: "soon", KV_PATH: ":memory:" }),
    /MATCH_WINDOW_MS must be a whole number/,
  );
});

Deno.test("config: a database that cannot be opened stops start-up in one line naming KV_PATH", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/file`, "not a folder");
    for (
      const [kvPath, pattern] of [
        [dir, /^KV_PATH ".*" is a folder/],
        [`${dir}/file/sub/kv.sqlite3`, /^KV_PATH ".*": its folder cannot be created/],
        [`${dir}/file`, /^KV_PATH ".*" cannot be opened/],
        ["https://kv.example.com/db", /KV_PATH .* DENO_KV_ACCESS_TOKEN must be set/],
        ["http://kv.example.com/db", /KV_PATH must be .*http:\/\/ only for localhost/],
      ] as const
    ) {
      assertStopped(await start({ KV_PATH: kvPath }), pattern);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('config: a busy PORT stops start-up in one line naming PORT, before any "ready"', async () => {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    assertStopped(
      await start({ PORT: String(port), KV_PATH: ":memory:" }),
      new RegExp(`^PORT ${port} is already in use`),
    );
  } finally {
    listener.close();
  }
});

Deno.test("config: holding, the unmatched horizon, and give-up counts that cannot work", () => {
  const d = parseConfig({});
  assertEquals([d.holdMs, d.unmatchedAfterMs], [1500, 72 * 3_600_000]);
  const c = parseConfig({ HOLD_MS: "0", UNMATCHED_AFTER_HOURS: "2" });
  assertEquals([c.holdMs, c.unmatchedAfterMs], [0, 7_200_000]);
  // A first delivery never pairs inexactly, so with one delivery an inexact pair could never be made.
  assert.throws(() => parseConfig({ GIVE_UP_AFTER_ATTEMPTS: "1" }), /GIVE_UP_AFTER_ATTEMPTS/);
  assert.throws(() => parseConfig({ HOLD_MS: "30001" }), /HOLD_MS/);
  assert.throws(() => parseConfig({ HOLD_MS: "-1" }), /HOLD_MS/);
  // A lone event would expire before it is listed.
  assert.throws(
    () => parseConfig({ RETENTION_DAYS: "2", UNMATCHED_AFTER_HOURS: "48" }),
    /UNMATCHED_AFTER_HOURS/,
  );
});

Deno.test("config: on Deno Deploy, start.ts refuses to start without API_TOKEN", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-read", "--allow-write", "--allow-net", "start.ts"],
    cwd: new URL("..", import.meta.url),
    env: { DENO_DEPLOYMENT_ID: "abc", THINKIFIC_WEBHOOK_SECRET: "abcdefgh", KV_PATH: ":memory:" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // A process that starts serving says so on stdout: stop it there rather than wait forever.
  let stdout = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    if (stdout.includes('"msg":"listening"')) child.kill("SIGKILL");
  }
  const stderr = await new Response(child.stderr).text();
  const { code } = await child.status;
  assertEquals(code, 1, `it started:\n${stdout}`);
  assertMatch(stderr, /API_TOKEN must be set on Deno Deploy/);
});
