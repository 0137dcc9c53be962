/**
 * The application's edges (lib/http/app.ts): `/healthz`, a JSON 404 naming the method and path,
 * client mistakes as their 4xx with their headers, and anything else (storage down) a 503 with
 * `Retry-After` and a log line saying what failed. Held deliveries are on by default.
 */
import { assertEquals, assertMatch } from "./_assert.ts";
import { harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { instrumentKv } from "../lib/store/instrument.ts";

Deno.test("app: /healthz answers ok as JSON without the token the other routes want", async () => {
  const h = await harness({ API_TOKEN: "app-token-1" });
  try {
    const res = await h.app.request("/healthz");
    assertEquals(res.status, 200);
    assertMatch(res.headers.get("content-type") ?? "", /^application\/json/);
    assertEquals(await res.json(), { status: "ok" });
    // While a wrong token is refused on /api and on the pages.
    for (
      const [path, authorization] of [
        ["/api/records", "Bearer wrong"],
        ["/", `Basic ${btoa("x:wrong")}`],
      ]
    ) {
      const denied = await h.app.request(path, { headers: { authorization } });
      assertEquals(denied.status, 401, path);
      await denied.body?.cancel();
    }
  } finally {
    h.close();
  }
});

Deno.test("app: an unknown route or method is a JSON 404 naming both", async () => {
  const h = await harness();
  try {
    for (
      const [method, path] of [
        ["GET", "/nope"],
        ["DELETE", "/healthz"],
        ["GET", "/webhooks/thinkific"],
        ["PUT", "/api/records"],
        ["GET", "/api/learners/48213/1"],
        ["POST", "/webhooks/other"],
      ]
    ) {
      const res = await h.app.request(path, { method });
      assertEquals(res.status, 404, `${method} ${path}`);
      assertMatch(res.headers.get("content-type") ?? "", /^application\/json/);
      assertEquals(await res.json(), { error: `no route for ${method} ${path}` });
    }
  } finally {
    h.close();
  }
});

Deno.test("app: a client mistake keeps its status, headers and JSON fields", async () => {
  const h = await harness({ API_TOKEN: "app-token-2" });
  try {
    const denied = await h.app.request("/api/records");
    assertEquals(denied.status, 401);
    assertEquals(denied.headers.get("www-authenticate"), 'Bearer realm="api"');
    assertEquals(denied.headers.get("retry-after"), null);
    assertEquals(await denied.json(), { error: "missing or invalid bearer token" });

    const bad = await h.get("/api/records?limit=0", { authorization: "Bearer app-token-2" });
    assertEquals(bad, {
      status: 400,
      json: {
        error: "query parameter limit must be from 1 to 500",
        issues: [{ path: ["limit"], message: "must be from 1 to 500" }],
      },
    });
  } finally {
    h.close();
  }
});

Deno.test("app: storage failing is a 503 with Retry-After: 5 and an error log naming the path", async () => {
  const real = await Deno.openKv(":memory:");
  const kv = instrumentKv(real, {
    before(call) {
      if (call === "list" || call === "getMany") throw new Error(`injected ${call} failure`);
    },
  });
  const h = await harness({}, kv);
  try {
    for (const path of ["/api/records", "/api/unmatched", "/"]) {
      const res = await h.app.request(path);
      assertEquals(res.status, 503, path);
      assertEquals(res.headers.get("retry-after"), "5");
      assertMatch(res.headers.get("content-type") ?? "", /^application\/json/);
      assertEquals(await res.json(), { error: "temporarily unavailable, retry later" });
    }
    const errors = h.logs.filter((l) => l.msg === "request failed");
    assertEquals(errors.map((l) => [l.level, l.path]), [
      ["error", "/api/records"],
      ["error", "/api/unmatched"],
      ["error", "/"],
    ]);
    assertMatch(String(errors[0].error), /^Error: injected (list|getMany) failure$/);
  } finally {
    real.close();
  }
});

Deno.test("app: deliveries are held by default: a progress waits for its lesson and gets the record", async () => {
  // KV_PATH=:memory: wakes held deliveries by notification only: no poll timer outlives the test.
  const h = await harness({ HOLD_MS: "5000", KV_PATH: ":memory:" });
  try {
    const started = performance.now();
    const held = h.post(progressWebhook({ user: 3 }));
    await new Promise((r) => setTimeout(r, 30));
    assertEquals((await h.post(lessonWebhook({ user: 3 }))).json.status, "collated");
    const r = await held;
    assertEquals([r.status, r.json.status], [200, "collated"]);
    const ms = performance.now() - started;
    assertEquals(ms < 4000, true, `answered after ${ms} ms`);
  } finally {
    h.close();
  }
});
