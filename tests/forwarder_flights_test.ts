/**
 * A sweep forwards the records it projects itself from flights (lib/store/flights.ts): the
 * projection's commit writes a flight instead of outbox entries (lib/store/projections.ts,
 * `flights`), the attempts start at once, and the flight is landed when they have ended
 * (lib/forward/forwarder.ts). They still wait for a free slot, and a record that waited until its
 * attempt could outlive the flight's lease leaves the flight to expand when the lease ends. A
 * destination sees each record's entry as the outbox would hold it; another process's flight is
 * expanded by a sweep (its timer's, not a kick's) once its lease ends; a landing that fails is
 * logged.
 */
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, harness } from "./_helpers.ts";
import { pairsLeftPending } from "./_projection.ts";
import { withList } from "./_committer.ts";
import {
  ATTEMPT_TIMEOUT_MS,
  createForwarder,
  type ForwarderOptions,
  handlerDestination,
} from "../lib/forward/forwarder.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";
import {
  OUTBOX_FLIGHT_PREFIX,
  type OutboxEntry,
  type OutboxFlight,
  outboxIdOf,
} from "../lib/store/keys.ts";
import { LEASE_MS, messageIdOf } from "../lib/store/outbox.ts";
import { projectBatch, projectPending } from "../lib/store/projections.ts";

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
const flights = (kv: Deno.Kv) =>
  Array.fromAsync(kv.list<OutboxFlight>({ prefix: OUTBOX_FLIGHT_PREFIX }));

/** A forwarder on `kv` to one destination, "crm", that notes each record's lesson in `got`. */
function collecting(kv: Deno.Kv, opts: Omit<ForwarderOptions, "kv" | "destinations"> = {}) {
  const got: number[] = [];
  const crm = handlerDestination("crm", (r) => Promise.resolve(void got.push(r.lesson_id)));
  return { got, forwarder: createForwarder({ log: () => {}, ...opts, kv, destinations: [crm] }) };
}

Deno.test("forwarder flights: a sweep delivers what it projects without a lease pass or an outbox entry", async () => {
  const real = await Deno.openKv(":memory:");
  const calls: KvCall[] = [];
  const kv = instrumentKv(real, { before: (c) => void calls.push(c) });
  const { got, forwarder } = collecting(kv);
  try {
    await newRecords(real, 3);
    assertEquals(await forwarder.sweep(), 3);
    assertEquals(got.sort(), [100, 101, 102]);
    // No lease pass found them, and the projection reads no record back: no read of values at
    // all. Two commits: the projection's (with the flight) and the landing's.
    const trips = calls.join(" ");
    assertEquals(calls.filter((c) => c === "getMany").length, 0, `round trips: ${trips}`);
    assertEquals(calls.filter((c) => c === "commit").length, 2, `round trips: ${trips}`);
    assertEquals(trips.slice(trips.indexOf("list get ")).indexOf("list get commit"), 0, trips);
    assertEquals(await entries(real), [], "delivered at once: no outbox entry");
    assertEquals(await flights(real), [], "the flight landed");
  } finally {
    await forwarder.close();
    real.close();
  }
});

Deno.test("forwarder flights: the records it projects wait for a free slot", async () => {
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
    assertEquals(await entries(kv), []);
    assertEquals(await flights(kv), []);
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

Deno.test("forwarder flights: a record that waited until its attempt could outlive the lease leaves its flight to expand", async () => {
  // The flight's lease ends in exactly the attempt's deadline: the second attempt could outlive it.
  await using w = await secondWaits(BASE_TIME + LEASE_MS - ATTEMPT_TIMEOUT_MS);
  assertEquals(await w.swept, 1, "only the first was attempted");
  const [held] = await flights(w.kv);
  assertEquals(held.key[1], BASE_TIME + LEASE_MS, "the flight stays, until its lease ends");
  assertEquals(held.value.records.length, 2);
  assertEquals(await entries(w.kv), []);
  // When its lease ends, a sweep expands it and delivers both (at least once: the first again).
  w.clock.now = BASE_TIME + LEASE_MS;
  assertEquals(await w.forwarder.sweep(), 2);
  assertEquals(w.started.length, 3);
  assertEquals([w.started[0], ...w.started.slice(1).sort()], [100, 100, 101]);
  assertEquals(await flights(w.kv), []);
  assertEquals((await entries(w.kv)).map((e) => [e.status, e.attempts]), [
    ["delivered", 1],
    ["delivered", 1],
  ]);
});

Deno.test("forwarder flights: with a millisecond more of lease left, the waiting record is started", async () => {
  await using w = await secondWaits(BASE_TIME + LEASE_MS - ATTEMPT_TIMEOUT_MS - 1);
  assertEquals(await w.swept, 2);
  assertEquals(w.started, [100, 101]);
  assertEquals(await entries(w.kv), []);
  assertEquals(await flights(w.kv), []);
});

Deno.test("forwarder flights: a destination gets each record's entry as the outbox would hold it", async () => {
  const kv = await Deno.openKv(":memory:");
  const seen: OutboxEntry[] = [];
  const clock = { now: BASE_TIME };
  const forwarder = createForwarder({
    kv,
    destinations: [{ name: "crm", deliver: (entry) => Promise.resolve(void seen.push(entry)) }],
    now: () => clock.now,
    log: () => {},
  });
  try {
    await newRecords(kv, 1);
    assertEquals(await forwarder.sweep(), 1);
    const [entry] = seen;
    assertEquals(entry, {
      id: outboxIdOf("crm", messageIdOf(entry.record)),
      destination: "crm",
      messageId: messageIdOf(entry.record),
      record: entry.record,
      status: "pending",
      attempts: 0,
      dueAt: BASE_TIME + LEASE_MS,
      lastError: null,
      createdAt: BASE_TIME,
      deliveredAt: null,
      deadAt: null,
    });
    assertEquals(entry.record.lesson_id, 100);
  } finally {
    await forwarder.close();
    kv.close();
  }
});

/** A flight of `n` new records left by another process, held for `ms` from now. */
async function strayFlight(kv: Deno.Kv, n: number, ms: number) {
  await newRecords(kv, n);
  const flights = { ms, to: () => {} };
  assertEquals(
    (await projectBatch(kv, { destinations: ["crm"], now: Date.now(), flights })).projected,
    n,
  );
}

Deno.test("forwarder flights: another process's flight is delivered when its lease ends, by the sweep's own timer", async () => {
  const kv = await Deno.openKv(":memory:");
  const { got, forwarder } = collecting(kv);
  try {
    await strayFlight(kv, 2, 400);
    assertEquals(await forwarder.sweep(), 0, "held by its process");
    // No other call: the timer set for the flight's end sweeps, expands and delivers.
    await until("both are delivered", () => got.length === 2);
    assertEquals(got.sort(), [100, 101]);
    assertEquals(await flights(kv), []);
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder flights: a kick forwards new records without expanding flights; a sweep expands them", async () => {
  const kv = await Deno.openKv(":memory:");
  const { got, forwarder } = collecting(kv);
  try {
    await strayFlight(kv, 1, -1); // its lease has ended
    await pairsLeftPending(await harness({}, kv), 1, () => ({
      user: 5000050,
      lesson: 200,
      at: BASE_TIME,
    }));
    forwarder.kick();
    await until("the new record is delivered", () => got.includes(200));
    assertEquals((await flights(kv)).length, 1, "the expired flight is left to a sweep");
    await forwarder.sweep();
    assertEquals(got.sort(), [100, 200]);
    assertEquals(await flights(kv), []);
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder flights: a landing that fails is logged, and leaves its flight to expand", async () => {
  const real = await Deno.openKv(":memory:");
  let commits = 0;
  const kv = instrumentKv(real, {
    before: (call) => {
      if (call === "commit" && ++commits === 2) throw new Error("disk I/O error");
    },
  });
  const logs: Record<string, unknown>[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [handlerDestination("crm", () => Promise.resolve())],
    log: (line) => logs.push(line),
  });
  try {
    await newRecords(real, 2);
    assertEquals(await forwarder.sweep(), 2);
    const failed = logs.filter((l) => l.msg === "forward settle failed");
    assertEquals(failed.length, 1);
    assertEquals([failed[0].level, failed[0].entries], ["error", 2]);
    assertEquals(String(failed[0].error), "Error: disk I/O error");
    assertEquals((await flights(real)).length, 1, "left to expand when its lease ends");
  } finally {
    await forwarder.close();
    real.close();
  }
});

Deno.test("forwarder flights: an expansion that fails is logged and holds up no retry", async () => {
  const real = await Deno.openKv(":memory:");
  // Every look for expired flights fails; everything else works.
  const kv = withList(real, (selector, options, db) => {
    if ("start" in selector && selector.start[0] === OUTBOX_FLIGHT_PREFIX[0]) {
      throw new Error("disk I/O error");
    }
    return db.list(selector, options);
  });
  const logs: Record<string, unknown>[] = [];
  const { got, forwarder } = collecting(kv, { log: (line) => logs.push(line) });
  try {
    await newRecords(real, 1);
    // Projected by a reader: an outbox entry, due now.
    await projectPending(real, { destinations: ["crm"], now: Date.now() });
    assertEquals(await forwarder.sweep(), 1);
    assertEquals(got, [100]);
    const failed = logs.filter((l) => l.msg === "forward expansion failed");
    assertEquals(failed.map((l) => [l.level, l.error]), [["error", "Error: disk I/O error"]]);
  } finally {
    await forwarder.close();
    real.close();
  }
});
