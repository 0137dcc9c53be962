/**
 * `retryWhenBusy`'s backoff (lib/store/retry.ts), on a fake clock: after the n-th busy answer it
 * waits between half and all of `min(100, 2^(n-1))` ms (jittered exponential backoff: 0.5-1 ms,
 * 1-2 ms, … 50-100 ms), and it gives up at the first busy answer more than 5 s after the first try.
 * Only "database is locked / busy" and `SQLITE_BUSY` errors are retried.
 */
import { assert, assertEquals } from "./_assert.ts";
import { isBusyError, retryWhenBusy } from "../lib/store/retry.ts";

const busy = () => new Error("database is locked");

/**
 * Runs `body` with a fake clock: `Date.now()` reads `clock.ms`, every `setTimeout` is recorded in
 * `waits`, moves the clock on by its delay and fires at once, and `Math.random()` returns `random`.
 */
async function onFakeClock<T>(
  random: number,
  body: (clock: { ms: number; waits: number[] }) => Promise<T>,
): Promise<T> {
  const clock = { ms: 1_000_000, waits: [] as number[] };
  const real = { now: Date.now, random: Math.random, setTimeout: globalThis.setTimeout };
  Date.now = () => clock.ms;
  Math.random = () => random;
  globalThis.setTimeout = ((fn: () => void, ms: number) => {
    clock.waits.push(ms);
    clock.ms += ms;
    queueMicrotask(fn);
    return 0;
  }) as unknown as typeof setTimeout;
  try {
    return await body(clock);
  } finally {
    Date.now = real.now;
    Math.random = real.random;
    globalThis.setTimeout = real.setTimeout;
  }
}

/** Fails busy `failures` times, then answers "done". */
function busyFor(failures: number) {
  let calls = 0;
  const op = () => ++calls <= failures ? Promise.reject(busy()) : Promise.resolve("done");
  return { op, calls: () => calls };
}

Deno.test("retry backoff: each busy answer waits 3/4 of a doubling cap (1, 2, 4 … 64, then 100 ms) at mid jitter", async () => {
  const { op, calls } = busyFor(10);
  const waits = await onFakeClock(0.5, async (clock) => {
    assertEquals(await retryWhenBusy(op), "done");
    return clock.waits;
  });
  assertEquals(waits, [0.75, 1.5, 3, 6, 12, 24, 48, 75, 75, 75]);
  assertEquals(calls(), 11);
});

Deno.test("retry backoff: the jitter keeps each wait between half the cap and the cap", async () => {
  const caps = [1, 2, 4, 8, 16, 32, 64, 100, 100];
  for (const [random, share] of [[0, 0.5], [0.25, 0.625], [1, 1]]) {
    const { op } = busyFor(caps.length);
    const waits = await onFakeClock(random, async (clock) => {
      await retryWhenBusy(op);
      return clock.waits;
    });
    assertEquals(waits, caps.map((cap) => cap * share), `Math.random() = ${random}`);
  }
});

Deno.test("retry backoff: a database busy for good is given up at the first busy answer past 5 s", async () => {
  let calls = 0;
  const { error, waits } = await onFakeClock(0.5, async (clock) => {
    const error = await retryWhenBusy(() => {
      calls++;
      return Promise.reject(busy());
    }).catch((e) => e);
    return { error, waits: clock.waits };
  });
  assertEquals(error.message, "database is locked");
  assertEquals(calls, waits.length + 1, "one try, then one more after each wait");
  const total = waits.reduce((a, b) => a + b, 0);
  assert(total > 5_000, `given up after ${total} ms`);
  assert(total - waits[waits.length - 1] <= 5_000, "not given up while 5 s had not passed");
  // 0.75 + 1.5 + … + 48 ms, then 75 ms waits until more than 5 s have passed.
  assertEquals(waits.length, 7 + 66);
});

Deno.test("retry backoff: exactly 5 s after the first try it still retries; a millisecond later it gives up", async () => {
  for (const [slowMs, expectedCalls] of [[5_000, 2], [5_001, 1]]) {
    let calls = 0;
    const error = await onFakeClock(0, (clock) =>
      retryWhenBusy(() => {
        calls++;
        // The first try itself takes `slowMs`, the clock moves on past 5 s after it.
        clock.ms += calls === 1 ? slowMs : 1;
        return Promise.reject(busy());
      }).catch((e) => e.message));
    assertEquals([error, calls], ["database is locked", expectedCalls], `first try ${slowMs} ms`);
  }
});

Deno.test("retry backoff: only busy errors are retried, whatever their case", async () => {
  const retried = [
    "database is locked",
    "Database is locked",
    "database is busy",
    "SQLITE_BUSY: cannot commit",
    "sqlite_busy",
    "error code 5: DATABASE IS BUSY",
  ];
  const thrown = ["disk I/O error", "database is full", "SQLITE_LOCKED", "database locked"];
  for (const message of retried) assertEquals(isBusyError(new Error(message)), true, message);
  for (const message of thrown) assertEquals(isBusyError(new Error(message)), false, message);
  // Only an Error is judged by its message.
  assertEquals(isBusyError("database is locked"), false);
  assertEquals(isBusyError({ message: "database is locked" }), false);
  for (const [message, expected] of [["SQLITE_BUSY", 2], ["database is full", 1]] as const) {
    let calls = 0;
    await onFakeClock(
      0,
      () =>
        retryWhenBusy(() =>
          ++calls === 1 ? Promise.reject(new Error(message)) : Promise.resolve("done")
        ).catch(() => {}),
    );
    assertEquals(calls, expected, message);
  }
});
