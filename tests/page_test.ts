/**
 * Cursors and pages (lib/store/_page.ts): a cursor is URL-safe text that comes back as the same
 * position; a cursor that is not one, is for another listing, or comes from an earlier version is a
 * 400 saying which; a page stops before `before` and reports the positions of its items.
 */
import { assert, assertEquals } from "./_assert.ts";
import { cursorSchema, encodeCursor, listPage, timeIdPosition } from "../lib/store/_page.ts";

const records = cursorSchema("records", timeIdPosition);
const b64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replaceAll(
    "=",
    "",
  );
const raw = (text: string) => b64url(new TextEncoder().encode(text));
const errorOf = (schema: typeof records, cursor: string) => {
  const r = schema.safeParse(cursor);
  assert(!r.success, `accepted: ${cursor}`);
  return r.error.issues[0].message;
};

Deno.test("page: cursors are URL-safe and come back as the same position", () => {
  let sawBoth = false;
  for (let i = 0; i < 64; i++) {
    const position: [number, string] = [1_700_000_000_000 + i, "ÿþ?>~".repeat(1 + (i % 5)) + i];
    const cursor = encodeCursor("records", position);
    assertEquals(/^[A-Za-z0-9_-]+$/.test(cursor), true, cursor);
    const plain = btoa(String.fromCharCode(...new TextEncoder().encode(
      JSON.stringify({ k: "records", p: position }),
    )));
    if (plain.includes("+") && plain.includes("/")) sawBoth = true;
    assertEquals(records.parse(cursor), position);
  }
  assert(sawBoth, "some cursors needed both replacements");
});

Deno.test("page: a cursor of another listing says which, and how to go on", () => {
  const learners = encodeCursor("learners/42", [1, "u"]);
  assertEquals(
    errorOf(records, learners),
    "is a cursor of the learners page of course 42, not of /api/records: start again without cursor",
  );
  const dead = encodeCursor("outbox/dead", [1, "x"]);
  assertEquals(
    errorOf(records, dead),
    "is a cursor of /api/outbox?status=dead, not of /api/records: start again without cursor",
  );
  const ofCourse = cursorSchema("learners/7", timeIdPosition);
  assertEquals(
    errorOf(ofCourse, encodeCursor("records", [1, "r"])),
    "is a cursor of /api/records, not of the learners page of course 7: start again without cursor",
  );
});

Deno.test("page: what is not a cursor of this API is refused as such", () => {
  const notOne = "is not a cursor returned by this API";
  assertEquals(errorOf(records, "garbage!"), notOne);
  assertEquals(errorOf(records, raw('{"k":"records","p":"nonsense"}')), notOne);
  assertEquals(errorOf(records, raw('["only one"]')), notOne);
  // Not UTF-8: refused, not read with replacement characters.
  const bytes = new TextEncoder().encode('{"k":"records","p":[1,"?"]}');
  bytes[bytes.indexOf("?".charCodeAt(0))] = 0xff;
  assertEquals(errorOf(records, b64url(bytes)), notOne);
});

Deno.test("page: an untagged cursor of an earlier version is refused unless the listing accepts it", () => {
  const old = raw(JSON.stringify([5, "id"]));
  assertEquals(
    errorOf(records, old),
    "is a cursor of an earlier version of this service, which did not say which listing it is " +
      "for: start again without cursor",
  );
  const lenient = cursorSchema("feed", timeIdPosition, { acceptUntagged: true });
  assertEquals(lenient.parse(old), [5, "id"]);
});

Deno.test("page: a page stops before `before`, and its positions are its items'", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (let i = 1; i <= 6; i++) await kv.set(["p", i, `id${i}`], i);
    const all = await listPage<number>(kv, ["p"], { kind: "records", limit: 10, before: [4] });
    assertEquals(all.items, [1, 2, 3]);
    assertEquals(all.positions, [[1, "id1"], [2, "id2"], [3, "id3"]]);
    assertEquals(all.cursor, null);
    const from = await listPage<number>(kv, ["p"], {
      kind: "records",
      limit: 10,
      from: [2],
      before: [5],
    });
    assertEquals(from.items, [2, 3, 4]);
    const first = await listPage<number>(kv, ["p"], { kind: "records", limit: 2 });
    assertEquals(first.items, [1, 2]);
    assertEquals(records.parse(first.cursor!), [2, "id2"]);
    const next = await listPage<number>(kv, ["p"], {
      kind: "records",
      limit: 2,
      after: records.parse(first.cursor!),
      before: [6],
    });
    assertEquals([next.items, next.cursor], [[3, 4], encodeCursor("records", [4, "id4"])]);
  } finally {
    kv.close();
  }
});
