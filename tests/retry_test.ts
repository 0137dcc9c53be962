/**
 * `retryWhenBusy` (lib/store/retry.ts): a busy database is retried until it answers, for at most
 * 5 s; any other error is thrown at once.
 */
import { assertEquals } from "./_assert.ts";
import { retryWhenBusy } from "../lib/store/retry.ts";

const busy = () => new Error("database is locked");

Deno.test("retry: a busy database is tried again until it answers", async () => {
  let calls = 0;
  const result = await retryWhenBusy(() => {
    calls++;
    return calls < 4 ? Promise.reject(busy()) : Promise.resolve("done");
  });
  assertEquals([result, calls], ["done", 4]);
});

Deno.test("retry: another error is thrown at once", async () => {
  let calls = 0;
  const error = await retryWhenBusy(() => {
    calls++;
    return Promise.reject(new Error("disk full"));
  }).catch((e) => e.message);
  assertEquals([error, calls], ["disk full", 1]);
});

Deno.test("retry: a database busy for good is given up, with its error", async () => {
  let calls = 0;
  const error = await retryWhenBusy(() => {
    calls++;
    return Promise.reject(busy());
  }).catch((e) => e.message);
  assertEquals(error, "database is locked");
  assertEquals(calls > 10, true, `retried ${calls} times`);
});
