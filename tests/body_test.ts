/**
 * Reading a webhook's body (lib/http/_body.ts) through the endpoint: a body in several chunks is
 * assembled in order, `MAX_BODY_BYTES` itself is allowed (declared or not), a Content-Length that is
 * not a plain number is not trusted, and a body that cannot be read is a 400 saying so.
 */
import { assertEquals, assertMatch } from "./_assert.ts";
import { harness, lessonWebhook, signedInit } from "./_helpers.ts";

const enc = new TextEncoder();

/** A stream of `text` in `parts` chunks (of about equal size); `fail` errors it after the chunks. */
function chunked(text: string, parts: number, fail = false): ReadableStream<Uint8Array> {
  const bytes = enc.encode(text);
  const size = Math.ceil(bytes.byteLength / parts);
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.byteLength) {
        return fail ? controller.error(new Error("connection reset")) : controller.close();
      }
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  }, { highWaterMark: 0 });
}

/** Posts `text`, signed, as a stream of `parts` chunks, with extra headers. */
async function post(
  text: string,
  opts: { parts?: number; env?: Record<string, string>; headers?: Record<string, string> } = {},
) {
  const h = await harness(opts.env);
  try {
    const init = await signedInit(text);
    const headers = { ...init.headers as Record<string, string>, ...opts.headers };
    const req = new Request("http://x/webhooks/thinkific", {
      method: "POST",
      body: chunked(text, opts.parts ?? 1),
      headers,
    });
    const res = await h.app.request(req);
    return { status: res.status, json: await res.json() };
  } finally {
    h.close();
  }
}

Deno.test("body: a webhook arriving in several chunks is assembled in order", async () => {
  const text = JSON.stringify(lessonWebhook());
  const r = await post(text, { parts: 7 });
  assertEquals(r.status, 200, JSON.stringify(r.json));
  assertEquals(r.json.status, "stored");
});

/** A lesson webhook padded to exactly `bytes` bytes of JSON. */
function sized(bytes: number): string {
  const w = lessonWebhook();
  const empty = JSON.stringify({ ...w, payload: { ...w.payload, padding: "" } });
  const padding = "x".repeat(bytes - enc.encode(empty).byteLength);
  return JSON.stringify({ ...w, payload: { ...w.payload, padding } });
}

Deno.test("body: exactly MAX_BODY_BYTES is accepted, declared or not; one more byte is 413", async () => {
  const text = sized(2000);
  const max = String(enc.encode(text).byteLength);
  const exact = await post(text, { parts: 3, env: { MAX_BODY_BYTES: max } });
  assertEquals(exact.status, 200, `streamed: ${JSON.stringify(exact.json)}`);
  const declared = await post(text, {
    env: { MAX_BODY_BYTES: max },
    headers: { "content-length": max },
  });
  assertEquals(declared.status, 200, `declared: ${JSON.stringify(declared.json)}`);
  const smaller = String(Number(max) - 1);
  for (const headers of [{}, { "content-length": max }] as Record<string, string>[]) {
    const over = await post(text, { parts: 3, env: { MAX_BODY_BYTES: smaller }, headers });
    assertEquals(over.status, 413);
    assertEquals(over.json.error, `body is larger than ${smaller} bytes`);
  }
});

Deno.test("body: a Content-Length that is not a plain number is not trusted: the bytes count", async () => {
  const text = JSON.stringify(lessonWebhook());
  for (const declared of ["+99999", "99999.0", "1e9", "0x1ffff"]) {
    const r = await post(text, {
      env: { MAX_BODY_BYTES: "4096" },
      headers: { "content-length": declared },
    });
    assertEquals(r.status, 200, `Content-Length ${declared}: ${JSON.stringify(r.json)}`);
  }
});

Deno.test("body: a body that breaks off while being read is a 400 saying so", async () => {
  const text = JSON.stringify(lessonWebhook());
  const h = await harness();
  try {
    const init = await signedInit(text);
    const req = new Request("http://x/webhooks/thinkific", {
      method: "POST",
      body: chunked(text, 2, true),
      headers: init.headers,
    });
    const res = await h.app.request(req);
    assertEquals(res.status, 400);
    assertEquals((await res.json()).error, "the request body could not be read");
  } finally {
    h.close();
  }
});

Deno.test("body: no body at all is read as empty: not JSON, not a read failure", async () => {
  const h = await harness();
  try {
    const init = await signedInit("");
    const req = new Request("http://x/webhooks/thinkific", {
      method: "POST",
      headers: init.headers,
    });
    assertEquals(req.body, null);
    const res = await h.app.request(req);
    const json = await res.json();
    assertEquals(res.status, 400);
    assertMatch(json.error, /JSON/);
  } finally {
    h.close();
  }
});
