/**
 * Query parameters shared by the API's lists: `limit` is 100 when not given; an id is any positive
 * integer JSON keeps exact (up to 16 digits, 2^53 - 1), and nothing beyond.
 */
import { assertEquals } from "./_assert.ts";
import { z } from "zod";
import { limit, parseQuery, positiveInt } from "../lib/http/_query.ts";
import { HttpError } from "../lib/http/errors.ts";

Deno.test("redteam http: a list's limit is 100 when not given, as given otherwise", () => {
  const schema = z.strictObject({ limit });
  assertEquals(parseQuery("http://x/api/records", schema), { limit: 100 });
  assertEquals(parseQuery("http://x/api/records?limit=7", schema), { limit: 7 });
});

Deno.test("redteam http: an id parameter takes every safe integer, 16 digits included, and no more", () => {
  const schema = z.strictObject({ user_id: positiveInt.optional() });
  const max = String(Number.MAX_SAFE_INTEGER);
  assertEquals(max.length, 16);
  assertEquals(parseQuery(`http://x/?user_id=${max}`, schema), {
    user_id: Number.MAX_SAFE_INTEGER,
  });
  assertEquals(parseQuery("http://x/?user_id=1000000000000000", schema), { user_id: 1e15 });
  for (const bad of ["9007199254740992", "10000000000000000", "0", "01"]) {
    let status = 0;
    try {
      parseQuery(`http://x/?user_id=${bad}`, schema);
    } catch (e) {
      if (e instanceof HttpError) status = e.status;
    }
    assertEquals(status, 400, bad);
  }
});
