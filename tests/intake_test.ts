/**
 * Every kind of bad delivery gets a 4xx JSON error that says what is wrong, and leaves nothing
 * stored.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { dump, harness, lessonWebhook, progressWebhook, SECRET, signedInit } from "./_helpers.ts";
import { importSigningKey, signBody } from "../lib/thinkific/signature.ts";

const key = await importSigningKey(SECRET);
const enc = new TextEncoder();

interface Bad {
  name: string;
  /** The raw body, or a webhook object to serialize. */
  body: string | Uint8Array<ArrayBuffer> | Record<string, unknown>;
  headers?: Record<string, string | null>;
  /** Sign the body (default) or send the given signature. */
  signature?: string | null;
  status: number;
  error: RegExp;
  env?: Record<string, string>;
}

const lesson = lessonWebhook();
const progress = progressWebhook();
const withPayload = (w: typeof progress | typeof lesson, patch: Record<string, unknown>) => ({
  ...w,
  payload: { ...w.payload, ...patch },
});

const bad: Bad[] = [
  { name: "missing signature", body: progress, signature: null, status: 401, error: /signature/ },
  {
    name: "signature of another body",
    body: progress,
    signature: "other",
    status: 401,
    error: /signature/,
  },
  {
    name: "signature not hex",
    body: progress,
    signature: "zz".repeat(32),
    status: 401,
    error: /signature/,
  },
  {
    name: "signature too short",
    body: progress,
    signature: "abcd",
    status: 401,
    error: /signature/,
  },
  {
    name: "signed with another secret",
    body: progress,
    signature: "wrong-secret",
    status: 401,
    error: /signature/,
  },
  { name: "blank signature", body: progress, signature: "", status: 401, error: /signature/ },
  {
    name: "blank signature (spaces)",
    body: progress,
    signature: "   ",
    status: 401,
    error: /signature/,
  },
  {
    name: "body over MAX_BODY_BYTES",
    body: "x".repeat(2048),
    env: { MAX_BODY_BYTES: "1024" },
    status: 413,
    error: /larger than 1024 bytes/,
  },
  {
    name: "handled topic too large to store",
    body: withPayload(progress, { padding: "x".repeat(66_000) }),
    status: 413,
    error: /cannot be stored/,
  },
  {
    name: "handled topic too large to store and failing the schema (size is checked first)",
    body: withPayload(progress, { padding: "x".repeat(66_000), percentage_completed: "abc" }),
    status: 413,
    error: /cannot be stored/,
  },
  {
    name: "wrong content type",
    body: progress,
    headers: { "content-type": "text/plain" },
    status: 415,
    error: /application\/json/,
  },
  {
    name: "form content type",
    body: "a=1",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    status: 415,
    error: /Content-Type/,
  },
  { name: "not JSON", body: "{not json", status: 400, error: /not valid JSON/ },
  { name: "empty body", body: "", status: 400, error: /not valid JSON/ },
  { name: "JSON array", body: "[1,2]", status: 400, error: /JSON object/ },
  { name: "JSON null", body: "null", status: 400, error: /JSON object/ },
  { name: "JSON string", body: '"hello"', status: 400, error: /JSON object/ },
  {
    name: "invalid UTF-8",
    body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    status: 400,
    error: /UTF-8/,
  },
  {
    name: "topic header disagrees with the body",
    body: progress,
    headers: { "x-thinkific-topic": "lesson.completed" },
    status: 400,
    error: /disagrees/,
  },
  {
    name: "no resource/action",
    body: { id: "1", payload: {} },
    status: 422,
    error: /resource and action/,
  },
  { name: "missing id", body: { ...progress, id: undefined }, status: 422, error: /schema/ },
  { name: "id is an object", body: { ...progress, id: { a: 1 } }, status: 422, error: /schema/ },
  {
    name: "missing tenant_id",
    body: { ...progress, tenant_id: undefined },
    status: 422,
    error: /schema/,
  },
  {
    name: "created_at not a time",
    body: { ...progress, created_at: "yesterday" },
    status: 422,
    error: /schema/,
  },
  {
    name: "created_at number",
    body: { ...progress, created_at: 1700000000 },
    status: 422,
    error: /schema/,
  },
  {
    name: "payload missing",
    body: { ...progress, payload: undefined },
    status: 422,
    error: /schema/,
  },
  {
    name: "percentage as a number",
    body: withPayload(progress, { percentage_completed: 17.5 }),
    status: 422,
    error: /schema/,
  },
  {
    name: "percentage over 100",
    body: withPayload(progress, { percentage_completed: "100.5" }),
    status: 422,
    error: /schema/,
  },
  {
    name: "percentage negative",
    body: withPayload(progress, { percentage_completed: "-1" }),
    status: 422,
    error: /schema/,
  },
  {
    name: "percentage exponent",
    body: withPayload(progress, { percentage_completed: "1e2" }),
    status: 422,
    error: /schema/,
  },
  {
    name: "percentage empty",
    body: withPayload(progress, { percentage_completed: "" }),
    status: 422,
    error: /schema/,
  },
  {
    name: "user id a string",
    body: withPayload(progress, { user: { id: "5", email: "a@b.c" } }),
    status: 422,
    error: /schema/,
  },
  {
    name: "user id huge",
    body:
      '{"id":"1","resource":"enrollment","action":"progress","tenant_id":"1","created_at":"2026-11-02T14:15:12.334Z","payload":{"id":1,"course":{"id":1,"name":"c"},"user":{"id":1e400,"email":"a"},"percentage_completed":"1"}}',
    status: 422,
    error: /schema/,
  },
  {
    name: "course id negative",
    body: withPayload(progress, { course: { id: -4, name: "c" }, course_id: -4 }),
    status: 422,
    error: /schema/,
  },
  {
    name: "course_id disagrees with course.id",
    body: withPayload(progress, { course_id: 1 }),
    status: 422,
    error: /schema/,
  },
  {
    name: "lesson without lesson",
    body: withPayload(lesson, { lesson: undefined }),
    status: 422,
    error: /lesson.completed schema/,
  },
  {
    name: "lesson chapter name missing",
    body: withPayload(lesson, { chapter: { id: 1 } }),
    status: 422,
    error: /schema/,
  },
  {
    name: "lesson with enrollment id 0",
    body: withPayload(lesson, { enrollment: { id: 0 } }),
    status: 422,
    error: /schema/,
  },
  {
    name: "tenant id with a slash",
    body: { ...progress, tenant_id: "a/b" },
    status: 422,
    error: /schema/,
  },
];

for (const row of bad) {
  Deno.test(`intake rejects: ${row.name}`, async () => {
    const h = await harness(row.env);
    try {
      const bytes = row.body instanceof Uint8Array
        ? row.body
        : enc.encode(typeof row.body === "string" ? row.body : JSON.stringify(row.body));
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (row.signature === undefined) {
        headers["x-thinkific-hmac-sha256"] = await signBody(key, bytes);
      } else if (row.signature === "other") {
        headers["x-thinkific-hmac-sha256"] = await signBody(key, "{}");
      } else if (row.signature === "wrong-secret") {
        headers["x-thinkific-hmac-sha256"] = await signBody(
          await importSigningKey("another-secret"),
          bytes,
        );
      } else if (row.signature !== null) headers["x-thinkific-hmac-sha256"] = row.signature;
      for (const [k, v] of Object.entries(row.headers ?? {})) {
        if (v === null) delete headers[k];
        else headers[k] = v;
      }
      const res = await h.app.request("/webhooks/thinkific", {
        method: "POST",
        body: bytes,
        headers,
      });
      const json = await res.json();
      assertEquals(res.status, row.status, JSON.stringify(json));
      assertMatch(res.headers.get("content-type") ?? "", /application\/json/);
      assertEquals(typeof json.error, "string");
      assertMatch(json.error, row.error);
      if (res.status === 422) assert(Array.isArray(json.issues) && json.issues.length > 0);
      assertEquals(await dump(h.kv), [], "nothing stored");
    } finally {
      h.close();
    }
  });
}

Deno.test("intake: 422 issues carry zod's paths", async () => {
  const h = await harness();
  try {
    const r = await h.post(withPayload(progress, { percentage_completed: "abc" }));
    assertEquals(r.status, 422);
    const issues = r.json.issues as { path: unknown[] }[];
    assertEquals(issues[0].path, ["payload", "percentage_completed"]);
  } finally {
    h.close();
  }
});

/** `webhook` with a padding field making its JSON exactly `bytes` long. */
function sized(webhook: typeof progress | typeof lesson, bytes: number): string {
  const empty = JSON.stringify(withPayload(webhook, { padding: "" }));
  return JSON.stringify(withPayload(webhook, { padding: "x".repeat(bytes - empty.length) }));
}

Deno.test("intake: the stored-body limit is exactly 65,000 bytes, on both sides", async () => {
  const h = await harness();
  try {
    for (const make of [lessonWebhook, progressWebhook]) {
      const fits = sized(make(), 65_000);
      assertEquals(enc.encode(fits).byteLength, 65_000);
      const ok = await h.app.request("/webhooks/thinkific", await signedInit(fits));
      assert(ok.status === 200 || ok.status === 409, `65,000 bytes: ${ok.status}`);
      await ok.body?.cancel();

      const before = await dump(h.kv);
      const over = sized(make(), 65_001);
      const res = await h.app.request("/webhooks/thinkific", await signedInit(over));
      assertEquals(res.status, 413, "65,001 bytes");
      assertMatch((await res.json()).error, /cannot be stored/);
      assertEquals(await dump(h.kv), before, "nothing stored");
    }
  } finally {
    h.close();
  }
});

/**
 * Posts a streamed body of `chunks` chunks of 512 spaces (to an app whose limit is 1024 bytes),
 * counting the chunks the app reads; `contentLength` is declared when given.
 */
async function postStreamed(chunks: number, contentLength?: number) {
  const h = await harness({ MAX_BODY_BYTES: "1024" });
  try {
    let read = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (read >= chunks) return controller.close();
        read++;
        controller.enqueue(new Uint8Array(512).fill(0x20));
      },
    }, { highWaterMark: 0 });
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (contentLength !== undefined) headers["content-length"] = String(contentLength);
    const req = new Request("http://x/webhooks/thinkific", { method: "POST", body, headers });
    assertEquals(req.headers.get("content-length"), contentLength?.toString() ?? null);
    const res = await h.app.request(req);
    const json = await res.json();
    assertEquals(await dump(h.kv), [], "nothing stored");
    return { status: res.status, error: String(json.error), read };
  } finally {
    h.close();
  }
}

Deno.test("intake: a Content-Length over the limit is refused before the body is read", async () => {
  const r = await postStreamed(4, 2048);
  assertEquals(r.status, 413);
  assertMatch(r.error, /larger than 1024 bytes/);
  assertEquals(r.read, 0, "the body was not read");
});

Deno.test("intake: a body over the limit without Content-Length is cut off while reading", async () => {
  const r = await postStreamed(100);
  assertEquals(r.status, 413);
  assert(r.read < 100, `read ${r.read} of 100 chunks`);
});

Deno.test("intake: other topics are acknowledged and ignored, nothing stored", async () => {
  const h = await harness();
  try {
    for (
      const [resource, action] of [["order", "created"], ["user", "signup"], ["lesson", "started"]]
    ) {
      const r = await h.post({ ...progress, resource, action, payload: { anything: true } });
      assertEquals([r.status, r.json.status, r.json.topic], [
        200,
        "ignored",
        `${resource}.${action}`,
      ]);
    }
    assertEquals(await dump(h.kv), []);
  } finally {
    h.close();
  }
});

Deno.test("intake: unknown fields are accepted and the raw body is kept byte for byte", async () => {
  const h = await harness();
  try {
    const body = {
      ...progress,
      extra_top: [1, 2],
      payload: { ...progress.payload, extra: "kept" },
    };
    const init = await signedInit(body);
    const r = await h.app.request("/webhooks/thinkific", init);
    assertEquals(r.status, 409);
    const stored = (await dump(h.kv)).find((e) => e.key[0] === "events")!;
    const raw = new TextDecoder().decode((stored.value as { body: Uint8Array }).body);
    assertEquals(raw, init.body);
  } finally {
    h.close();
  }
});

Deno.test("intake: without a configured secret, unsigned deliveries are accepted", async () => {
  const h = await harness({ THINKIFIC_WEBHOOK_SECRET: "" });
  try {
    const r = await h.post(lessonWebhook(), { secret: false });
    assertEquals([r.status, r.json.status], [200, "stored"]);
  } finally {
    h.close();
  }
});

Deno.test("intake: an upper-case hex signature and a charset parameter are fine", async () => {
  const h = await harness();
  try {
    const text = JSON.stringify(lessonWebhook());
    const res = await h.app.request("/webhooks/thinkific", {
      method: "POST",
      body: text,
      headers: {
        "content-type": "application/json; charset=utf-8",
        "x-thinkific-hmac-sha256": (await signBody(key, text)).toUpperCase(),
      },
    });
    assertEquals(res.status, 200);
    await res.body?.cancel();
  } finally {
    h.close();
  }
});

Deno.test("intake: a redelivery with the same id but another time stays where it was first stored", async () => {
  const h = await harness();
  try {
    const p = progressWebhook();
    await h.post(p);
    const moved = { ...p, created_at: new Date(Date.parse(p.created_at) + 60_000).toISOString() };
    const r = await h.post(moved);
    assertEquals([r.status, r.json.attempts], [409, 2]);
    const events = (await dump(h.kv)).filter((e) => e.key[0] === "events");
    assertEquals(events.length, 1);
    const l = lessonWebhook({ at: Date.parse(p.created_at) });
    assertEquals((await h.post(l)).json.status, "collated");
  } finally {
    h.close();
  }
});

Deno.test("intake: unknown routes and methods answer JSON 404", async () => {
  const h = await harness();
  try {
    const r = await h.get("/nope");
    assertEquals(r.status, 404);
    assertMatch(String(r.json.error), /no route/);
    const g = await h.get("/webhooks/thinkific");
    assertEquals(g.status, 404);
  } finally {
    h.close();
  }
});
