/**
 * The forwarder's own timer (lib/forward/forwarder.ts), between cron ticks: after a sweep a running
 * process sets one timer for the next due entry, so a failed attempt is retried on the schedule
 * without waiting for the cron (10 s after the first failure, then 30 s); the timer waits at least
 * 250 ms and at most a minute, is not set when nothing is pending, is gone after `close()`, and
 * never keeps the process alive. Also the deadlines: 30 s for an attempt, 10 s for a webhook request.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  evalChild,
  harness,
  lessonWebhook,
  libImport,
  progressWebhook,
  signedInit,
} from "./_helpers.ts";
import { projectPending } from "../lib/store/projections.ts";
import { createApp } from "../lib/http/app.ts";
import {
  ATTEMPT_TIMEOUT_MS,
  createForwarder,
  handlerDestination,
  webhookDestination,
} from "../lib/forward/forwarder.ts";
import { createSigner } from "../lib/forward/standard_webhooks.ts";
import type { OutboxEntry } from "../lib/store/keys.ts";

/**
 * Watches `setTimeout` and `clearTimeout` until disposed: `pending()` lists the delays of the
 * timers set and neither fired nor cleared; `fire()` runs the only pending one now (and awaits it).
 */
function watchTimers() {
  // Called as plain functions: Deno 2.5's refuse another `this`.
  const [realSet, realClear] = [globalThis.setTimeout, globalThis.clearTimeout];
  type Id = ReturnType<typeof setTimeout>;
  const timers = new Map<Id, { ms: number; run: () => unknown }>();
  globalThis.setTimeout = ((run: () => unknown, ms = 0) => {
    const id: Id = realSet(() => (timers.delete(id), run()), ms);
    timers.set(id, { ms, run });
    return id;
  }) as unknown as typeof setTimeout;
  globalThis.clearTimeout = ((id?: Id) => {
    if (id !== undefined) timers.delete(id);
    realClear(id);
  }) as typeof clearTimeout;
  return {
    pending: () => [...timers.values()].map((t) => t.ms),
    async fire() {
      assertEquals(timers.size, 1, "one timer pending");
      const [[id, { run }]] = timers;
      timers.delete(id);
      realClear(id);
      await run();
    },
    [Symbol.dispose]() {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    },
  };
}

/**
 * A forwarder whose `webhook` destination fails `failures` times (each attempt answering once
 * `answer` resolves), on a clock the test moves.
 */
async function failingForwarder(failures: number, answer = Promise.resolve()) {
  const kv = await Deno.openKv(":memory:");
  const h = await harness({}, kv);
  const attempts: number[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [
      handlerDestination("webhook", async () => {
        attempts.push(h.clock.now);
        await answer;
        if (attempts.length <= failures) throw new Error("down");
      }),
    ],
    now: () => h.clock.now,
    log: () => {},
  });
  // Records are written by an app that does not kick: the test sweeps.
  const app = createApp({
    kv,
    config: h.config,
    forwarder: { ...forwarder, kick() {} },
    log: () => {},
    now: () => h.clock.now,
  });
  const writeRecord = async () => {
    for (const body of [lessonWebhook(), progressWebhook()]) {
      const res = await app.request("/webhooks/thinkific", await signedInit(body));
      await res.body?.cancel();
    }
    await projectPending(kv, { destinations: forwarder.destinations, now: h.clock.now });
  };
  return {
    kv,
    forwarder,
    clock: h.clock,
    attempts,
    writeRecord,
    async [Symbol.asyncDispose]() {
      await forwarder.close();
      kv.close();
    },
  };
}

Deno.test("forwarder schedule exact: a running process retries 10 s, then 30 s after the failures, on its own timer", async () => {
  using timers = watchTimers();
  await using f = await failingForwarder(2);
  const t0 = f.clock.now;
  assertEquals(await f.forwarder.sweep(), 0);
  assertEquals(timers.pending(), [], "nothing pending, no timer");
  await f.writeRecord();
  assertEquals(await f.forwarder.sweep(), 1);
  assertEquals(timers.pending(), [10_000]);
  // A second sweep replaces the timer, it does not add one.
  await f.forwarder.sweep();
  assertEquals(timers.pending(), [10_000]);
  f.clock.now += 10_000;
  await timers.fire();
  assertEquals(f.attempts, [t0, t0 + 10_000]);
  assertEquals(timers.pending(), [30_000]);
  f.clock.now += 30_000;
  await timers.fire();
  assertEquals(f.attempts, [t0, t0 + 10_000, t0 + 40_000], "delivered at the third attempt");
  assertEquals(timers.pending(), [], "nothing pending any more");
});

Deno.test("forwarder schedule exact: the timer waits a minute at most (the cron's period) and 250 ms at least", async () => {
  using timers = watchTimers();
  await using f = await failingForwarder(3);
  await f.writeRecord();
  await f.forwarder.sweep();
  f.clock.now += 10_000;
  await timers.fire();
  f.clock.now += 30_000;
  await timers.fire();
  // The third failure waits 2 minutes: the timer looks again after one.
  assertEquals(timers.pending(), [60_000]);
  f.clock.now += 60_000;
  await timers.fire();
  assertEquals(f.attempts.length, 3, "not due yet");
  assertEquals(timers.pending(), [60_000]);
  f.clock.now += 59_900;
  await timers.fire();
  assertEquals(timers.pending(), [250], "100 ms early: it looks again in 250 ms");
  f.clock.now += 250;
  await timers.fire();
  assertEquals(f.attempts.length, 4);
});

Deno.test("forwarder schedule exact: close() leaves no timer, even when the sweep in flight ends after it", async () => {
  using timers = watchTimers();
  await using f = await failingForwarder(1);
  await f.writeRecord();
  await f.forwarder.sweep();
  assertEquals(timers.pending(), [10_000]);
  await f.forwarder.close();
  assertEquals(timers.pending(), [], "closed: the retry timer is cleared");

  // A sweep whose attempt is still running when the forwarder closes, and fails after.
  const answer = Promise.withResolvers<void>();
  await using g = await failingForwarder(1, answer.promise);
  await g.writeRecord();
  const swept = g.forwarder.sweep();
  while (g.attempts.length === 0) await new Promise((r) => setTimeout(r, 2));
  const closing = g.forwarder.close();
  answer.resolve();
  await closing;
  assertEquals(await swept, 1);
  assertEquals(timers.pending(), [], "no timer set after close()");
});

Deno.test("forwarder schedule exact: an attempt's deadline is 30 s by default; a webhook request's 10 s, or timeoutMs", async () => {
  {
    using timers = watchTimers();
    const answer = Promise.withResolvers<void>();
    await using f = await failingForwarder(0, answer.promise);
    await f.writeRecord();
    const swept = f.forwarder.sweep();
    while (f.attempts.length === 0) await new Promise((r) => setTimeout(r, 2));
    assertEquals(timers.pending(), [ATTEMPT_TIMEOUT_MS], "the running attempt's deadline");
    assertEquals(ATTEMPT_TIMEOUT_MS, 30_000);
    answer.resolve();
    assertEquals(await swept, 1);
    assertEquals(timers.pending(), [], "delivered: no deadline, no retry");
  }
  await using f = await failingForwarder(0);
  await f.writeRecord();
  const [{ value: entry }] = await Array.fromAsync(f.kv.list<OutboxEntry>({ prefix: ["outbox"] }));
  const sign = createSigner(`whsec_${btoa("k".repeat(32))}`);
  const never = new AbortController().signal;
  using timers = watchTimers();
  // The deadline is pending while the request runs, and cleared as soon as it answers.
  const inFlight: number[][] = [];
  const ok = () => (inFlight.push(timers.pending()), Promise.resolve(new Response(null)));
  await webhookDestination("https://crm.example/hook", sign, { fetch: ok }).deliver(entry, never);
  const opts = { fetch: ok, timeoutMs: 2_500 };
  await webhookDestination("https://crm.example/hook", sign, opts).deliver(entry, never);
  assertEquals(inFlight, [[10_000], [2_500]]);
  assertEquals(timers.pending(), [], "no timer left once answered");
  // When it fires, the request is aborted with a TimeoutError.
  const hanging = (_url: string | URL | Request, init?: RequestInit) =>
    new Promise<Response>((_, reject) => {
      const signal = init!.signal!;
      signal.addEventListener("abort", () => reject(signal.reason));
    });
  const slow = webhookDestination("https://crm.example/hook", sign, { fetch: hanging });
  const failed = slow.deliver(entry, never).then(() => null, (e: DOMException) => e);
  await timers.fire();
  const error = await failed;
  assertEquals([error?.name, error?.message], ["TimeoutError", "no answer within 10000 ms"]);
  assertEquals(timers.pending(), []);
});

Deno.test("forwarder schedule exact: a retry's timer does not keep the process alive", async () => {
  // A process whose one entry fails: a retry is due in 10 s, and it does not close its forwarder.
  const code = `
    import { createForwarder, handlerDestination } from ${libImport("forward/forwarder.ts")};
    import { addOutboxEntries } from ${libImport("store/outbox.ts")};
    const kv = await Deno.openKv(":memory:");
    const op = kv.atomic();
    addOutboxEntries(op, { tenant_id: "1", progress_event_id: "2" }, ["webhook"], Date.now());
    await op.commit();
    const down = handlerDestination("webhook", () => Promise.reject(new Error("down")));
    console.log(await createForwarder({ kv, destinations: [down] }).sweep());
  `;
  const run = await evalChild(code, { killAfterMs: 5_000 });
  assertEquals([run.code, run.stdout], [0, "1"], run.stderr);
  assert(run.ms < 5_000, "the process ended without waiting for the retry");
});
