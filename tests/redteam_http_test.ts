/**
 * Query parameters shared by the API's lists: `limit` is 100 when not given.
 */
import { assertEquals } from "./_assert.ts";
import { z } from "zod";
import { limit, parseQuery } from "../lib/http/_query.ts";

Deno.test("redteam http: a list's limit is 100 when not given, as given otherwise", () => {
  const schema = z.strictObject({ limit });
  assertEquals(parseQuery("http://x/api/records", schema), { limit: 100 });
  assertEquals(parseQuery("http://x/api/records?limit=7", schema), { limit: 7 });
});
