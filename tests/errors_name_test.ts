/**
 * HttpError (lib/http/errors.ts): a client mistake's status, JSON body and headers, and how it
 * reads where an error is printed (a log line, a stack trace): `HttpError: <message>`.
 */
import { assertEquals } from "./_assert.ts";
import { HttpError } from "../lib/http/errors.ts";

Deno.test("errors: an HttpError names itself where it is printed, and carries its answer", () => {
  const plain = new HttpError(415, "Content-Type must be application/json");
  assertEquals(String(plain), "HttpError: Content-Type must be application/json");
  assertEquals(plain.name, "HttpError");
  assertEquals(plain.status, 415);
  assertEquals(plain.body(), { error: "Content-Type must be application/json" });
  assertEquals(plain.headers, {});
  const detailed = new HttpError(400, "query parameter limit is too large", { max: 500 }, {
    "Retry-After": "1",
  });
  assertEquals(detailed.body(), { error: "query parameter limit is too large", max: 500 });
  assertEquals(detailed.headers, { "Retry-After": "1" });
  assertEquals(detailed instanceof Error, true);
});
