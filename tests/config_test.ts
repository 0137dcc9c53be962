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

const invalid: [Record<string, string>, RegExp][] = [
  [{ PORT: "eighty" }, /PORT/],
  [{ PORT: "70000" }, /PORT/],
  [{ MATCH_WINDOW_MS: "-5" }, /MATCH_WINDOW_MS/],
  [{ MATCH_WINDOW_MS: "1.5" }, /MATCH_WINDOW_MS/],
  [{ LOGIC_TOPIC: "order.created" }, /LOGIC_TOPIC/],
  [{ PENDING_STATUS: "200" }, /PENDING_STATUS/],
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

Deno.test("config: on Deno Deploy with a secret and a token, the attached database is used", () => {
  const c = parseConfig({
    DENO_DEPLOYMENT_ID: "abc",
    THINKIFIC_WEBHOOK_SECRET: "abcdefgh",
    API_TOKEN: "tokentoken",
  });
  assertEquals([c.onDenoDeploy, c.kvPath], [true, undefined]);
});

Deno.test("config: a bad value stops start-up naming the variable", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-read", "--allow-write", "--allow-net", "start.ts"],
    cwd: new URL("..", import.meta.url),
    env: { MATCH_WINDOW_MS: "soon", KV_PATH: ":memory:" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 1);
  assertMatch(new TextDecoder().decode(out.stderr), /MATCH_WINDOW_MS must be a whole number/);
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
