/**
 * `scripts/replay.ts` and the shared sender `scripts/_deliver.ts`, against a tiny local fake of the
 * service that records every request and answers 409 to the first delivery of each progress event.
 */
import assert from "node:assert/strict";
import { loadFixtures } from "../fixtures/mod.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import {
  deliver,
  describeRecord,
  isRetryable,
  maskEmail,
  webhookUrl,
} from "../scripts/_deliver.ts";
import { main } from "../scripts/replay.ts";

const SECRET = "replay-test-secret";
const fast = () => 0;

interface Seen {
  method: string;
  path: string;
  headers: Headers;
  body: string;
}

/** A fake webhook endpoint on a free port. */
function fakeService() {
  const seen: Seen[] = [];
  const pendingOnce = new Set<string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const body = await req.text();
    seen.push({ method: req.method, path, headers: req.headers, body });
    if (req.method !== "POST" || path !== "/webhooks/thinkific") {
      return Response.json({ error: `no route for ${req.method} ${path}` }, { status: 404 });
    }
    let parsed: { id?: string; resource?: string; action?: string };
    try {
      parsed = JSON.parse(body);
    } catch {
      return Response.json({ error: "body is not valid JSON" }, { status: 400 });
    }
    const topic = `${parsed.resource}.${parsed.action}`;
    if (topic === "enrollment.progress") {
      if (!pendingOnce.has(String(parsed.id))) {
        pendingOnce.add(String(parsed.id));
        return Response.json({ status: "pending", attempts: 1 }, { status: 409 });
      }
      return Response.json({ status: "collated", record: {} });
    }
    if (topic === "lesson.completed") return Response.json({ status: "stored" });
    return Response.json({ status: "ignored", topic });
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  return { server, seen, url, posts: () => seen.filter((s) => s.method === "POST") };
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    deps: {
      stdout: (l: string) => out.push(l),
      stderr: (l: string) => err.push(l),
      retryDelayMs: fast,
    },
  };
}

async function hmacHex(secret: string, body: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(body)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("replay posts every fixture signed, retries pending ones and counts outcomes", async () => {
  const fake = fakeService();
  try {
    const c = capture();
    const fixturesDir = new URL("../fixtures/", import.meta.url).pathname;
    const code = await main([fixturesDir, "--url", fake.url, "--concurrency", "1"], {
      ...c.deps,
      env: { THINKIFIC_WEBHOOK_SECRET: SECRET },
    });
    assert.equal(code, 0, c.err.join("\n"));

    const fixtures = await loadFixtures();
    const posts = fake.posts();
    const progressIds = new Set(
      fixtures.filter((f) => f.topic === "enrollment.progress").map((f) => JSON.parse(f.body).id),
    );
    // Every fixture once, plus one redelivery per distinct progress event answered 409 first.
    assert.equal(posts.length, fixtures.length + progressIds.size);
    assert.deepEqual(
      [...new Set(posts.map((p) => p.body))].sort(),
      [...new Set(fixtures.map((f) => f.body))].sort(),
    );
    for (const p of posts) {
      const signature = p.headers.get("x-thinkific-hmac-sha256");
      assert.match(signature ?? "", /^[0-9a-f]{64}$/);
      assert.equal(signature, await hmacHex(SECRET, p.body));
      const { resource, action } = JSON.parse(p.body);
      assert.equal(p.headers.get("x-thinkific-topic"), `${resource}.${action}`);
      assert.equal(p.headers.get("content-type"), "application/json");
    }
    // Sequential: the first fixture arrives first and the second (progress) twice in a row.
    assert.equal(posts[0].body, fixtures[0].body);
    assert.equal(posts[1].body, fixtures[1].body);
    assert.equal(posts[2].body, fixtures[1].body);

    const summary = c.out.join("\n");
    assert.match(summary, /collated\s+8 \(7 after redelivery\)/);
    assert.match(summary, /stored\s+6/);
    assert.match(summary, /ignored\s+1/);
    assert.match(summary, /errors\s+0/);
  } finally {
    await fake.server.shutdown();
  }
});

Deno.test("replay reads NDJSON line by line and sends each line's exact bytes", async () => {
  const fake = fakeService();
  const dir = await Deno.makeTempDir();
  try {
    const lines = [
      '{"id":"1","resource":"lesson","action":"completed","payload":{}}',
      '{ "id": "2", "resource": "order", "action": "created" }',
      '{"id":"3","resource":"enrollment","action":"progress"}',
    ];
    const file = `${dir}/capture.ndjson`;
    await Deno.writeTextFile(file, `${lines[0]}\r\n\n${lines[1]}\n${lines[2]}\n`);
    const c = capture();
    const code = await main(
      [file, "--url", `${fake.url}/webhooks/thinkific`, "--concurrency", "1"],
      {
        ...c.deps,
        env: {},
      },
    );
    assert.equal(code, 0, c.err.join("\n"));
    assert.deepEqual(fake.posts().map((p) => p.body), [lines[0], lines[1], lines[2], lines[2]]);
    // No secret anywhere: unsigned.
    assert.equal(fake.posts()[0].headers.get("x-thinkific-hmac-sha256"), null);
    assert.match(c.out.join("\n"), /replay: 3 webhook\(s\)/);
  } finally {
    await fake.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("replay reports input and URL problems in one line with exit code 1", async (t) => {
  const fake = fakeService();
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/one.json`;
    await Deno.writeTextFile(good, '{"id":"1","resource":"lesson","action":"completed"}');
    const bad = `${dir}/bad.ndjson`;
    await Deno.writeTextFile(bad, '{"id":"1","resource":"order","action":"created"}\n{oops\n');

    const run = async (args: string[]) => {
      const c = capture();
      const code = await main(args, { ...c.deps, env: {} });
      return { code, err: c.err, out: c.out };
    };
    const expectError = async (args: string[], pattern: RegExp) => {
      const r = await run(args);
      assert.equal(r.code, 1);
      assert.equal(r.err.length, 1, r.err.join("\n"));
      assert.match(r.err[0], pattern);
      assert.doesNotMatch(r.err[0], /\n/);
    };

    await t.step(
      "missing file",
      () =>
        expectError([`${dir}/nope.json`, "--url", fake.url], /^replay: cannot read .*nope\.json/),
    );
    await t.step("folder without webhooks", async () => {
      const empty = `${dir}/empty`;
      await Deno.mkdir(empty);
      await expectError([empty, "--url", fake.url], /no \.json or \.ndjson files/);
    });
    await t.step(
      "invalid JSON line, with file:line",
      () => expectError([bad, "--url", fake.url], /bad\.ndjson:2: invalid JSON/),
    );
    await t.step("not a URL", () => expectError([good, "--url", "not a url"], /--url must be/));
    await t.step("not http(s)", () => expectError([good, "--url", "ftp://x"], /--url must be/));
    await t.step(
      "bad concurrency",
      () => expectError([good, "--url", fake.url, "--concurrency", "0"], /--concurrency/),
    );
    await t.step("unknown option", () => expectError([good, "--bogus"], /bogus/));
    await t.step("no input", () => expectError([], /exactly one file or folder/));
    await t.step("unreachable URL", async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (listener.addr as Deno.NetAddr).port;
      listener.close();
      await expectError([good, "--url", `http://127.0.0.1:${port}`], /cannot reach/);
    });
    await t.step(
      "wrong path: stops at the first 404",
      () => expectError([good, "--url", `${fake.url}/wrong/path`], /answered 404/),
    );
    // Nothing was posted for bad input: it is checked before sending.
    assert.equal(fake.posts().filter((p) => p.path === "/webhooks/thinkific").length, 0);
  } finally {
    await fake.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("replay stops with a hint when the secret is wrong (401)", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      await req.body?.cancel();
      return Response.json({ error: "missing or invalid X-Thinkific-Hmac-Sha256 signature" }, {
        status: 401,
      });
    },
  );
  try {
    const c = capture();
    const fixturesDir = new URL("../fixtures/", import.meta.url).pathname;
    const code = await main([fixturesDir, "--url", `http://127.0.0.1:${server.addr.port}`], {
      ...c.deps,
      env: { THINKIFIC_WEBHOOK_SECRET: "wrong-secret" },
    });
    assert.equal(code, 1);
    assert.match(c.err.at(-1) ?? "", /answered 401 .*THINKIFIC_WEBHOOK_SECRET/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("deliver retries network errors and reports the last one clearly", async () => {
  let calls = 0;
  const flaky: typeof fetch = (_input, _init) => {
    calls++;
    if (calls < 3) return Promise.reject(new TypeError("connection reset"));
    return Promise.resolve(Response.json({ status: "stored" }));
  };
  const ok = await deliver("http://x.invalid/webhooks/thinkific", "{}", {
    fetch: flaky,
    retryDelayMs: fast,
  });
  assert.deepEqual([ok.status, ok.attempts, ok.statuses], [200, 3, [0, 0, 200]]);

  const down: typeof fetch = () => Promise.reject(new TypeError("connection refused"));
  const failed = await deliver("http://x.invalid/", "{}", {
    fetch: down,
    maxAttempts: 4,
    retryDelayMs: fast,
  });
  assert.equal(failed.status, 0);
  assert.equal(failed.attempts, 4);
  assert.match(failed.error ?? "", /no answer after 4 attempts: connection refused/);
});

Deno.test("deliver: growing backoff, and which answers are retried", async () => {
  const waits: number[] = [];
  const always409: typeof fetch = () =>
    Promise.resolve(Response.json({ status: "pending" }, { status: 409 }));
  const r = await deliver("http://x.invalid/", "{}", {
    fetch: always409,
    maxAttempts: 5,
    retryDelayMs: (n) => (waits.push(n), 0),
  });
  assert.equal(r.attempts, 5);
  assert.deepEqual(waits, [1, 2, 3, 4]);

  assert.equal(isRetryable(409, { status: "pending" }), true);
  assert.equal(isRetryable(425, { status: "pending" }), true);
  assert.equal(isRetryable(503, { error: "later" }), true);
  assert.equal(isRetryable(0, null), true);
  assert.equal(isRetryable(422, { error: "schema" }), false);
  assert.equal(isRetryable(422, { error: "schema" }, true), true);
  assert.equal(isRetryable(200, { status: "stored" }), false);
});

Deno.test("webhookUrl adds the webhook path only when there is none", () => {
  assert.equal(webhookUrl("https://a.example"), "https://a.example/webhooks/thinkific");
  assert.equal(webhookUrl("https://a.example/"), "https://a.example/webhooks/thinkific");
  assert.equal(webhookUrl("https://a.example/hook"), "https://a.example/hook");
});

Deno.test("records are described in plain words with masked emails", () => {
  assert.equal(maskEmail("ada@example.com"), "a***@example.com");
  assert.equal(maskEmail("broken"), "***");
  const record: LessonProgressRecord = {
    tenant_id: "48213",
    user_id: 5000049,
    user_email: "ada@example.com",
    course_id: 2100013,
    course_name: "Watercolor for beginners",
    enrollment_id: 90000042,
    lesson_id: 24017,
    lesson_name: "Wet on wet",
    lesson_type: "Video",
    chapter_id: 7013,
    chapter_name: "Mixing colours",
    completed_at: "2026-11-02T14:15:12.334Z",
    percentage_completed: 17.5,
    previous_percentage_completed: 12.5,
    first_completion: true,
    progress_event_id: "20261102091512341000102",
    lesson_event_id: "20261102091512334000101",
    skew_ms: 0,
    collated_at: "2026-11-02T14:15:12.400Z",
  };
  const text = describeRecord(record);
  assert.equal(
    text,
    "user 5000049 <a***@example.com> completed “Wet on wet” (Mixing colours) of Watercolor for " +
      "beginners at 2026-11-02 14:15:12Z, reaching 17.5% (from 12.5%)",
  );
  assert.doesNotMatch(text, /ada@/);
});

Deno.test("replay prints a progress line to stderr every 100 webhooks", async () => {
  const fake = fakeService();
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/many.ndjson`;
    const lines = Array.from(
      { length: 250 },
      (_, i) => JSON.stringify({ id: String(i + 1), resource: "order", action: "created" }),
    );
    await Deno.writeTextFile(file, lines.join("\n"));
    const c = capture();
    const code = await main([file, "--url", fake.url, "--concurrency", "8"], {
      ...c.deps,
      env: {},
    });
    assert.equal(code, 0, c.err.join("\n"));
    assert.equal(fake.posts().length, 250);
    assert.ok(c.err.some((l) => l.startsWith("replay: 100/250 done")), c.err.join("\n"));
    assert.ok(c.err.some((l) => l.startsWith("replay: 200/250 done")), c.err.join("\n"));
    assert.match(c.out.join("\n"), /ignored\s+250/);
  } finally {
    await fake.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
