/**
 * Every environment variable `parseConfig` reads: its default (unset or empty), the values it
 * accepts up to both ends of its range, and the one-line `ConfigError` naming it otherwise. The
 * start-up process's own refusals (exit 1, one stderr line) are in `tests/config_test.ts`.
 */
import assert from "node:assert/strict";
import { assertEquals } from "./_assert.ts";
import { type Config, ConfigError, parseConfig } from "../lib/config.ts";
import { FEED_DELAY_MS, MAX_COMMITS_IN_FLIGHT, MAX_PLANS_PER_COMMIT } from "../lib/store/limits.ts";

/** The message of the ConfigError that `env` is refused with. */
function refusal(env: Record<string, string | undefined>): string {
  try {
    parseConfig(env);
  } catch (err) {
    assert(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    assertEquals(err.name, "ConfigError");
    return err.message;
  }
  throw new assert.AssertionError({ message: `${JSON.stringify(env)} was accepted` });
}

const WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HOUR_MS = 3_600_000;

interface IntVar {
  name: string;
  min: number;
  max: number;
  /** The largest value accepted, when less than `max` (another rule refuses `max`). */
  largest?: number;
  fallback: number;
  /** The configuration's value for the variable's number. */
  read: (c: Config) => number;
  /** Set alongside, so that the ends of the range are valid together with the rest. */
  with?: Record<string, string>;
}

const INT_VARS: IntVar[] = [
  { name: "PORT", min: 0, max: 65535, fallback: 8000, read: (c) => c.port },
  { name: "MATCH_WINDOW_MS", min: 0, max: 60_000, fallback: 500, read: (c) => c.matchWindowMs },
  { name: "PENDING_STATUS", min: 400, max: 499, fallback: 409, read: (c) => c.pendingStatus },
  {
    name: "GIVE_UP_AFTER_ATTEMPTS",
    min: 2,
    max: 1000,
    fallback: 10,
    read: (c) => c.giveUpAfterAttempts,
  },
  { name: "HOLD_MS", min: 0, max: 30_000, fallback: 1500, read: (c) => c.holdMs },
  {
    name: "UNMATCHED_AFTER_HOURS",
    min: 0,
    max: 87_600,
    // 87,600 hours is 3,650 days: never shorter than the longest retention.
    largest: 87_599,
    fallback: 72,
    read: (c) => c.unmatchedAfterMs / HOUR_MS,
    with: { RETENTION_DAYS: "3650" },
  },
  {
    name: "COMMIT_BATCH_MAX",
    min: 1,
    max: MAX_PLANS_PER_COMMIT,
    fallback: MAX_PLANS_PER_COMMIT,
    read: (c) => c.commitBatchMax,
  },
  {
    name: "COMMITS_IN_FLIGHT",
    min: 1,
    max: 64,
    fallback: MAX_COMMITS_IN_FLIGHT,
    read: (c) => c.commitsInFlight,
  },
  {
    name: "MAX_BODY_BYTES",
    min: 1024,
    max: 16 * 1024 * 1024,
    fallback: 262_144,
    read: (c) => c.maxBodyBytes,
  },
  {
    name: "RETENTION_DAYS",
    min: 1,
    max: 3650,
    fallback: 30,
    read: (c) => c.retentionDays,
    with: { UNMATCHED_AFTER_HOURS: "0" },
  },
  {
    name: "FEED_DELAY_MS",
    min: 100,
    max: 600_000,
    fallback: FEED_DELAY_MS,
    read: (c) => c.feedDelayMs,
  },
];

for (const v of INT_VARS) {
  Deno.test(`config: ${v.name} is ${v.fallback} unset or empty, a whole number from ${v.min} to ${v.largest ?? v.max}, else refused by name`, () => {
    const env = (value?: string) => ({ ...v.with, [v.name]: value });
    for (const unset of [undefined, "", "   "]) {
      assertEquals(v.read(parseConfig(env(unset))), v.fallback, JSON.stringify(unset));
    }
    assertEquals(v.read(parseConfig(env(String(v.min)))), v.min);
    const largest = v.largest ?? v.max;
    assertEquals(v.read(parseConfig(env(` ${largest} `))), largest);
    const between = `invalid configuration: ${v.name} must be between ${v.min} and ${v.max}`;
    assertEquals(refusal(env(String(v.max + 1))), `${between}, got ${v.max + 1}`);
    if (v.min > 0) assertEquals(refusal(env(String(v.min - 1))), `${between}, got ${v.min - 1}`);
    for (const bad of ["-1", "1e3", "12abc", "abc12", "1.5", "0x10"]) {
      assertEquals(
        refusal(env(bad)),
        `invalid configuration: ${v.name} must be a whole number, got "${bad}"`,
      );
    }
  });
}

Deno.test("config: every invalid variable is named, in one line", () => {
  assertEquals(
    refusal({ PORT: "x", HOLD_MS: "99999", API_TOKEN: "short" }),
    'invalid configuration: PORT must be a whole number, got "x"; ' +
      "API_TOKEN must be at least 8 characters with no surrounding spaces; " +
      "HOLD_MS must be between 0 and 30000, got 99999",
  );
  // A value that is not even text (never from the environment) is named too.
  assertEquals(
    refusal({ PORT: 8000 } as unknown as Record<string, string>),
    "invalid configuration: PORT: Invalid input: expected string, received number",
  );
  assertEquals(
    refusal(null as unknown as Record<string, string>),
    "invalid configuration: environment: Invalid input: expected object, received null",
  );
});

for (const name of ["THINKIFIC_WEBHOOK_SECRET", "API_TOKEN"] as const) {
  const read = (c: Config) => name === "API_TOKEN" ? c.apiToken : c.webhookSecret;
  Deno.test(`config: ${name}: unset or empty is none; 8 characters or more, no surrounding spaces`, () => {
    assertEquals(read(parseConfig({})), undefined);
    assertEquals(read(parseConfig({ [name]: "" })), undefined);
    assertEquals(read(parseConfig({ [name]: "12345678" })), "12345678");
    assertEquals(read(parseConfig({ [name]: "with inner spaces" })), "with inner spaces");
    const message =
      `invalid configuration: ${name} must be at least 8 characters with no surrounding spaces`;
    for (const bad of ["1234567", " 12345678", "12345678 ", "        "]) {
      assertEquals(refusal({ [name]: bad }), message, JSON.stringify(bad));
    }
  });
}

Deno.test("config: HOST: an IP address or a host name, trimmed; anything else refused by name", () => {
  assertEquals(parseConfig({ HOST: "" }).host, "0.0.0.0");
  assertEquals(parseConfig({ HOST: "  " }).host, "0.0.0.0");
  for (const ok of ["localhost", "collator-1.internal", "10.0.0.7", "fe80::1"]) {
    assertEquals(parseConfig({ HOST: ok }).host, ok);
  }
  for (const bad of ["example.com/x", "/example.com", "host_name", "a b", "http://x"]) {
    assertEquals(
      refusal({ HOST: bad }),
      "invalid configuration: HOST must be an IP address or a host name such as 127.0.0.1, " +
        `got "${bad}"`,
    );
  }
});

Deno.test("config: KV_PATH: a file path, :memory:, https KV Connect, or http only to this machine", () => {
  const token = { DENO_KV_ACCESS_TOKEN: "kv-token" };
  assertEquals(parseConfig({ KV_PATH: "" }).kvPath, undefined);
  assertEquals(parseConfig({ KV_PATH: "  " }).kvPath, undefined);
  for (
    const ok of [
      ":memory:",
      "./data/kv.sqlite3",
      "/srv/kv.sqlite3",
      "C:\\data\\kv.sqlite3",
      "backups/a://b", // a file path that merely contains "://"
      "https://api.deno.com/databases/x/connect",
      "HTTPS://api.deno.com/databases/x/connect",
      "http://localhost:4512",
      "HTTP://LOCALHOST:4512",
      "http://127.0.0.1:4512",
      "http://[::1]:4512",
    ]
  ) {
    assertEquals(parseConfig({ KV_PATH: ok, ...token }).kvPath, ok);
  }
  assertEquals(parseConfig({ KV_PATH: " ./kv.sqlite3 " }).kvPath, "./kv.sqlite3");
  for (
    const bad of [
      "http://kv.example.com/db",
      "HTTP://kv.example.com/db",
      "http://localhost.example.com",
      "ftp://localhost/db",
      "file:///srv/kv.sqlite3",
      "http://", // not even a URL
      "http://[::1",
    ]
  ) {
    assertEquals(
      refusal({ KV_PATH: bad, ...token }),
      "invalid configuration: KV_PATH must be a file path, :memory: or an https:// KV Connect " +
        `URL (http:// only for localhost), got "${bad}"`,
    );
  }
});

Deno.test("config: a KV Connect KV_PATH needs DENO_KV_ACCESS_TOKEN (set and not empty); a file does not", () => {
  const message =
    "invalid configuration: KV_PATH is a KV Connect URL, so DENO_KV_ACCESS_TOKEN must be set too";
  for (
    const url of ["https://kv.example.com/db", "HTTPS://kv.example.com/db", "http://localhost:1"]
  ) {
    assertEquals(refusal({ KV_PATH: url }), message, url);
    assertEquals(refusal({ KV_PATH: url, DENO_KV_ACCESS_TOKEN: "" }), message, url);
  }
  assertEquals(parseConfig({ KV_PATH: "./kv.sqlite3" }).kvPath, "./kv.sqlite3");
  assertEquals(parseConfig({ KV_PATH: "data/https://x" }).kvPath, "data/https://x");
});

Deno.test("config: LOGIC_TOPIC: enrollment.progress by default, either handled topic, trimmed", () => {
  assertEquals(parseConfig({ LOGIC_TOPIC: "" }).logicTopic, "enrollment.progress");
  assertEquals(parseConfig({ LOGIC_TOPIC: " lesson.completed " }).logicTopic, "lesson.completed");
  assertEquals(
    parseConfig({ LOGIC_TOPIC: "enrollment.progress" }).logicTopic,
    "enrollment.progress",
  );
  assertEquals(
    refusal({ LOGIC_TOPIC: "order.created" }),
    "invalid configuration: LOGIC_TOPIC must be one of lesson.completed, enrollment.progress, " +
      'got "order.created"',
  );
});

Deno.test("config: FORWARD_URL and FORWARD_SECRET: none by default, both or neither, https or local http", () => {
  for (const unset of ["", "  "]) {
    const none = parseConfig({ FORWARD_URL: unset, FORWARD_SECRET: unset });
    assertEquals([none.forwardUrl, none.forwardSecret], [undefined, undefined]);
  }
  const both = parseConfig({
    FORWARD_URL: " https://CRM.example.com ",
    FORWARD_SECRET: ` ${WHSEC} `,
  });
  assertEquals([both.forwardUrl, both.forwardSecret], ["https://crm.example.com/", WHSEC]);
  for (const local of ["http://localhost:9000/x", "http://127.0.0.1/x", "http://[::1]/x"]) {
    assertEquals(parseConfig({ FORWARD_URL: local, FORWARD_SECRET: WHSEC }).forwardUrl, local);
  }
  for (const bad of ["http://crm.example.com/hook", "ftp://localhost/x", "ws://localhost/x"]) {
    assertEquals(
      refusal({ FORWARD_URL: bad, FORWARD_SECRET: WHSEC }),
      "invalid configuration: FORWARD_URL must be https:// (http:// only for localhost)",
    );
  }
  assertEquals(
    refusal({ FORWARD_URL: "crm.example.com", FORWARD_SECRET: WHSEC }),
    'invalid configuration: FORWARD_URL must be a URL, got "crm.example.com"',
  );
  for (const bad of ["whsec_%%%", "whsec_c2hvcnQ=", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]) {
    assertEquals(
      refusal({ FORWARD_URL: "https://crm.example.com", FORWARD_SECRET: bad }),
      "invalid configuration: FORWARD_SECRET must be a Standard Webhooks secret: " +
        "whsec_ + base64 of 16-128 bytes",
    );
  }
  const together = "invalid configuration: FORWARD_URL and FORWARD_SECRET must be set together";
  assertEquals(refusal({ FORWARD_URL: "https://crm.example.com" }), together);
  assertEquals(refusal({ FORWARD_SECRET: WHSEC }), together);
});

Deno.test("config: on Deno Deploy (any of its variables set, not empty) both secrets are required, named together", () => {
  const secretLine = "THINKIFIC_WEBHOOK_SECRET must be set on Deno Deploy " +
    "(unsigned webhooks are only accepted on a local machine)";
  const tokenLine = "API_TOKEN must be set on Deno Deploy " +
    "(the records API and the dashboard show learners' emails; they are open only locally)";
  const both = `invalid configuration: ${secretLine}; ${tokenLine}`;
  const secrets = { THINKIFIC_WEBHOOK_SECRET: "abcdefgh", API_TOKEN: "tokentoken" };
  for (const marker of ["DENO_DEPLOYMENT_ID", "DENO_DEPLOY", "DENO_DEPLOY_APP_SLUG"]) {
    assertEquals(refusal({ [marker]: "x" }), both, marker);
    assertEquals(
      refusal({ [marker]: "x", API_TOKEN: secrets.API_TOKEN }),
      `invalid configuration: ${secretLine}`,
    );
    assertEquals(
      refusal({ [marker]: "x", THINKIFIC_WEBHOOK_SECRET: secrets.THINKIFIC_WEBHOOK_SECRET }),
      `invalid configuration: ${tokenLine}`,
    );
    assertEquals(parseConfig({ [marker]: "x", ...secrets }).onDenoDeploy, true, marker);
    const local = parseConfig({ [marker]: "" });
    assertEquals([local.onDenoDeploy, local.webhookSecret], [false, undefined], marker);
  }
});

Deno.test("config: UNMATCHED_AFTER_HOURS must be shorter than RETENTION_DAYS, in hours", () => {
  const c = parseConfig({ RETENTION_DAYS: "2", UNMATCHED_AFTER_HOURS: "47" });
  assertEquals([c.retentionDays, c.unmatchedAfterMs], [2, 47 * HOUR_MS]);
  assertEquals(
    refusal({ RETENTION_DAYS: "2", UNMATCHED_AFTER_HOURS: "48" }),
    "invalid configuration: UNMATCHED_AFTER_HOURS must be shorter than RETENTION_DAYS " +
      "(48 hours): a lone event expires before it would be listed",
  );
});
