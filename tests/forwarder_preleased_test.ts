/**
 * A sweep forwards the records it projects itself without leasing them: their outbox entries are
 * made already leased in the projection's commit (lib/store/projections.ts, `lease`) and start
 * at once (lib/forward/forwarder.ts). They still wait for a free slot, and one that waited until
 * its attempt could outlive its lease is left to the sweep that finds it due.
 */
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, harness } from "./_helpers.ts";
import { pairsLeftPending } from "./_projection.ts";
import {
  ATTEMPT_TIMEOUT_MS,
  createForwarder,
  handlerDestination,
} from "../lib/forward/forwarder.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";
import { LEASE_MS } from "../lib/store/outbox.ts";
import type { OutboxEntry } from "../lib/store/keys.ts";

/** `n` pairs (lessons 100…, a minute apart) whose projections are left pending. */
async function newRecords(kv: Deno.Kv, n: number) {
  await pairsLeftPending(await harness({}, kv), n, (i) => ({
    user: 5000049,
    lesson: 100 + i,
    at: BASE_TIME + i * 60_000,
  }));
}

async function until(what: string, cond: () => boolean, ms = 3_000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const entries = async (kv: Deno.Kv) =>
  (await Array.fromAsync(kv.list<OutboxEntry>({ prefix: ["outbox"] }))).map((e) => e.value);

Deno.test("forwarder pre-leased: a sweep delivers what it projects without a lease pass", async () => {
  const real = await Deno.openKv(":memory:");
  const calls: KvCall[] = [];
  const kv = instrumentKv(real, { before: (c) => void calls.push(c) });
  const got: number[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [handlerDestination("crm", (r) => Promise.resolve(void got.push(r.lesson_id)))],
    log: () => {},
  });
  try {
    await newRecords(real, 3);
    assertEquals(await forwarder.sweep(), 3);
    assertEquals(got.sort(), [100, 101, 102]);
    // No lease pass found them, and the projection reads no record back (its entries hold
    // them): no read of values at all. A lease would read the entries back and commit them again.
    const trips = calls.join(" ");
    assertEquals(calls.filter((c) => c === "getMany").length, 0, `round trips: ${trips}`);
    assertEquals(trips.slice(0, trips.indexOf("commit")), "list get ", "the projection");
    for (const e of await entries(real)) {
      assertEquals([e.status, e.attempts], ["delivered", 1], e.id);
    }
  } finally {
    await forwarder.close();
    real.close();
  }
});

Deno.test("forwarder pre-leased: the entries it projects wait for a free slot", async () => {
  const kv = await Deno.openKv(":memory:");
  const gate = Promise.withResolvers<void>();
  const state = { running: 0, started: 0 };
  const forwarder = createForwarder({
    kv,
    destinations: [handlerDestination("crm", async () => {
      state.started++;
      state.running++;
      await gate.promise;
      state.running--;
    })],
    maxInFlight: 2,
    log: () => {},
  });
  try {
    await newRecords(kv, 5);
    const swept = forwarder.sweep();
    await until("two attempts run", () => state.running === 2);
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(state.started, 2, "no third attempt while both slots are taken");
    gate.resolve();
    assertEquals(await swept, 5);
    assertEquals(state.started, 5);
    assertEquals((await entries(kv)).map((e) => e.status), Array(5).fill("delivered"));
  } finally {
    gate.resolve();
    await forwarder.close();
    kv.close();
  }
});

/**
 * Two new records and one slot: a sweep starts the first record's attempt, which holds the slot
 * until the clock reads `then`; `swept` is that sweep, `started` the lessons attempted.
 */
async function secondWaits(then: number) {
  const kv = await Deno.openKv(":memory:");
  const gate = Promise.withResolvers<void>();
  const clock = { now: BASE_TIME };
  const started: number[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [handlerDestination("crm", async (r) => {
      started.push(r.lesson_id);
      if (started.length === 1) await gate.promise;
    })],
    maxInFlight: 1,
    now: () => clock.now,
    log: () => {},
  });
  await newRecords(kv, 2);
  const swept = forwarder.sweep();
  await until("the first attempt runs", () => started.length === 1);
  clock.now = then;
  gate.resolve();
  return {
    kv,
    clock,
    forwarder,
    started,
    swept,
    async [Symbol.asyncDispose]() {
      await forwarder.close();
      kv.close();
    },
  };
}

Deno.test("forwarder pre-leased: one that waited until its attempt could outlive its lease is left to the sweep that finds it due", async () => {
  // The second entry's lease ends in exactly the attempt's deadline: it could outlive it.
  await using w = await secondWaits(BASE_TIME + LEASE_MS - ATTEMPT_TIMEOUT_MS);
  assertEquals(await w.swept, 1, "only the first was attempted");
  const waiting = (await entries(w.kv)).find((e) => e.status === "pending")!;
  assertEquals([waiting.attempts, waiting.dueAt], [0, BASE_TIME + LEASE_MS]);
  // When its lease ends, a sweep finds it due and delivers it.
  w.clock.now = BASE_TIME + LEASE_MS;
  assertEquals(await w.forwarder.sweep(), 1);
  assertEquals(w.started.length, 2);
  assertEquals((await entries(w.kv)).map((e) => e.status), ["delivered", "delivered"]);
});

Deno.test("forwarder pre-leased: with a millisecond more of lease left, the waiting entry is started", async () => {
  await using w = await secondWaits(BASE_TIME + LEASE_MS - ATTEMPT_TIMEOUT_MS - 1);
  assertEquals(await w.swept, 2);
  assertEquals((await entries(w.kv)).map((e) => e.status), ["delivered", "delivered"]);
});
