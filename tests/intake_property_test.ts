/**
 * Property-based tests of the intake: whatever a client sends, the answer is never a 5xx, every
 * error is a JSON 4xx, and a rejected delivery stores nothing.
 */
import fc from "fast-check";
import { assert, assertEquals } from "./_assert.ts";
import { dump, type Harness, harness, lessonWebhook, progressWebhook, SECRET } from "./_helpers.ts";
import { importSigningKey, signBody } from "../lib/thinkific/signature.ts";

const key = await importSigningKey(SECRET);
const RUNS = 150;

/** Posts raw bytes, signed unless `signed` is false, and checks the invariants. */
async function check(
  h: Harness,
  bytes: Uint8Array<ArrayBuffer>,
  opts: { signed?: boolean; contentType?: string | null } = {},
) {
  const headers: Record<string, string> = {};
  if (opts.contentType !== null) headers["content-type"] = opts.contentType ?? "application/json";
  if (opts.signed !== false) headers["x-thinkific-hmac-sha256"] = await signBody(key, bytes);
  const before = (await dump(h.kv)).length;
  const res = await h.app.request("/webhooks/thinkific", {
    method: "POST",
    body: bytes,
    headers,
  });
  const text = await res.text();
  assert(res.status < 500, `5xx for ${new TextDecoder().decode(bytes).slice(0, 200)}: ${text}`);
  const json = JSON.parse(text);
  if (res.status >= 400) {
    assertEquals(typeof json.error, "string", text);
    assertEquals((await dump(h.kv)).length, before, "a rejected delivery stores nothing");
  }
  return { status: res.status, json };
}

const enc = new TextEncoder();

Deno.test("property: arbitrary bytes, signed or not, never 5xx and never stored", async () => {
  const h = await harness();
  try {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), fc.boolean(), async (bytes, signed) => {
        const r = await check(h, bytes, { signed });
        assert(r.status >= 400, `accepted random bytes: ${r.status}`);
      }),
      { numRuns: RUNS },
    );
    assertEquals(await dump(h.kv), []);
  } finally {
    h.close();
  }
});

Deno.test("property: arbitrary JSON never 5xx, never stored", async () => {
  const h = await harness();
  try {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (value) => {
        const r = await check(h, enc.encode(JSON.stringify(value)));
        assert(r.status >= 400 || r.json.status === "ignored", JSON.stringify(r.json));
      }),
      { numRuns: RUNS },
    );
    assertEquals(await dump(h.kv), []);
  } finally {
    h.close();
  }
});

/** Values of the wrong kind for a field that expects `kind`. */
function wrongFor(
  kind: "key" | "id" | "string" | "percentage" | "time" | "object",
): fc.Arbitrary<unknown> {
  const any = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.array(fc.integer(), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
    fc.constant({ __proto__: { polluted: true } }),
    fc.constant(JSON.parse('{"__proto__":{"id":1}}')),
  );
  switch (kind) {
    case "key": // an event or school id: a short token string, or a positive whole number
      return fc.oneof(
        any,
        fc.constant(""),
        fc.constant("a/b"),
        fc.string({ minLength: 65, maxLength: 80 }),
        fc.integer({ max: 0 }),
        fc.double({ noInteger: true }),
      );
    case "id":
      return fc.oneof(
        any,
        fc.string(),
        fc.double({ noInteger: true }),
        fc.integer({ max: 0 }),
        fc.constant(1e308),
        fc.constant(2 ** 53 + 2),
      );
    case "string":
      return fc.oneof(any, fc.integer(), fc.string({ minLength: 1001, maxLength: 1100 }));
    case "percentage":
      return fc.oneof(
        any,
        fc.double(),
        fc.string().filter((s) => !/^\d{1,3}(\.\d{1,12})?$/.test(s) || Number(s) > 100),
        fc.constant("100.01"),
        fc.constant("-0"),
        fc.constant(" 5"),
      );
    case "time":
      return fc.oneof(
        any,
        fc.integer(),
        fc.string().filter((s) => Number.isNaN(Date.parse(s))),
        fc.constant("2026-13-45T99:99:99Z"),
      );
    case "object":
      return fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.array(fc.integer()));
  }
}

type Kind = Parameters<typeof wrongFor>[0];
const progressFields: [string[], Kind][] = [
  [["id"], "key"],
  [["tenant_id"], "key"],
  [["created_at"], "time"],
  [["payload"], "object"],
  [["payload", "id"], "id"],
  [["payload", "course"], "object"],
  [["payload", "course", "id"], "id"],
  [["payload", "course", "name"], "string"],
  [["payload", "user"], "object"],
  [["payload", "user", "id"], "id"],
  [["payload", "user", "email"], "string"],
  [["payload", "percentage_completed"], "percentage"],
];
const lessonFields: [string[], Kind][] = [
  [["created_at"], "time"],
  [["payload", "chapter", "id"], "id"],
  [["payload", "chapter", "name"], "string"],
  [["payload", "course", "id"], "id"],
  [["payload", "enrollment", "id"], "id"],
  [["payload", "lesson"], "object"],
  [["payload", "lesson", "id"], "id"],
  [["payload", "lesson", "name"], "string"],
  [["payload", "lesson", "type"], "string"],
  [["payload", "user", "id"], "id"],
];

function setPath(obj: Record<string, unknown>, path: string[], value: unknown) {
  const copy = structuredClone(obj);
  let node = copy as Record<string, unknown>;
  for (const p of path.slice(0, -1)) node = node[p] as Record<string, unknown>;
  Object.defineProperty(node, path.at(-1)!, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
  return copy;
}

for (
  const [topic, make, fields] of [
    ["enrollment.progress", progressWebhook, progressFields],
    ["lesson.completed", lessonWebhook, lessonFields],
  ] as const
) {
  Deno.test(`property: a valid ${topic} with one field corrupted is a 4xx, nothing stored`, async () => {
    const h = await harness();
    try {
      const field = fc.constantFrom(...fields).chain(([path, kind]) =>
        fc.tuple(fc.constant(path), wrongFor(kind))
      );
      await fc.assert(
        fc.asyncProperty(field, async ([path, value]) => {
          const body = setPath(make() as unknown as Record<string, unknown>, path, value);
          const r = await check(h, enc.encode(JSON.stringify(body)));
          assert(
            r.status >= 400 && r.status < 500,
            `${path.join(".")}=${JSON.stringify(value)}: ${r.status}`,
          );
        }),
        { numRuns: RUNS },
      );
      assertEquals(await dump(h.kv), []);
    } finally {
      h.close();
    }
  });
}

Deno.test("property: hostile shapes are 4xx with nothing stored", async () => {
  const h = await harness({ MAX_BODY_BYTES: "65536" });
  try {
    const valid = progressWebhook();
    const deep = "[".repeat(30_000) + "]".repeat(30_000);
    const cases: {
      body: string | Uint8Array<ArrayBuffer>;
      contentType?: string | null;
      signed?: boolean;
    }[] = [
      { body: deep },
      { body: `{"resource":"enrollment","action":"progress","payload":${deep}}` },
      { body: JSON.stringify({ ...valid, payload: { ...valid.payload, user: { id: 1e400 } } }) },
      { body: '{"__proto__":{"resource":"lesson","action":"completed"}}' },
      {
        body: JSON.stringify(valid).replace('"resource"', '"__proto__":{"x":1},"resource"').replace(
          '"id":"',
          '"id":1e999,"x":"',
        ),
      },
      { body: JSON.stringify(valid), contentType: "text/plain" },
      { body: JSON.stringify(valid), contentType: "multipart/form-data; boundary=x" },
      { body: JSON.stringify(valid), signed: false },
      { body: "x".repeat(70_000) },
      { body: new Uint8Array([0xef, 0xbb, 0xbf, 0xff]) },
      { body: "\u0000".repeat(10) },
    ];
    for (const c of cases) {
      const bytes = typeof c.body === "string" ? enc.encode(c.body) : c.body;
      const r = await check(h, bytes, { contentType: c.contentType, signed: c.signed });
      assert(r.status >= 400, `accepted: ${String(c.body).slice(0, 80)}`);
    }
    assertEquals(await dump(h.kv), []);
  } finally {
    h.close();
  }
});
