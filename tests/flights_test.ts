/**
 * Flights (`lib/store/flights.ts`): landing one (failures become outbox entries, erased records
 * and existing entries are left out, a flight expanded meanwhile is left to its expander),
 * expanding those whose lease ended, erasure taking records out, the records of a process that
 * stopped delivered by another, and what a retry of a record forwarded from a flight answers.
 */
import fc from "fast-check";
import { assert, assertEquals } from "./_assert.ts";
import { harness, progressWebhook } from "./_helpers.ts";
import { withList } from "./_committer.ts";
import { pairsLeftPending } from "./_projection.ts";
import { createApp } from "../lib/http/app.ts";
import { createForwarder, handlerDestination } from "../lib/forward/forwarder.ts";
import { eraseLearner } from "../lib/store/erasure.ts";
import {
  addFlights,
  expandFlights,
  firstFlightEnd,
  forwardedFromFlight,
  type HeldFlight,
  landFlight,
  withoutRecords,
} from "../lib/store/flights.ts";
import {
  OUTBOX_DEAD_PREFIX,
  OUTBOX_DUE_PREFIX,
  OUTBOX_FLIGHT_PREFIX,
  type OutboxEntry,
  type OutboxFlight,
  outboxIdOf,
  outboxKey,
  recordKey,
} from "../lib/store/keys.ts";
import { addOutboxEntries, messageIdOf, messageParts } from "../lib/store/outbox.ts";
import { projectBatch } from "../lib/store/projections.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { CommitPlan } from "../lib/store/plan.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";

const T0 = Date.parse("2026-11-29T10:00:00.000Z");
const LEASE = 60_000;
type H = Awaited<ReturnType<typeof harness>>;

/** `n` records of learners 1 and 2 (round robin, or `user(i)`), projected into held flights for `destinations`. */
async function inFlight(
  h: H,
  n: number,
  destinations = ["crm"],
  user = (i: number) => 1 + (i % 2),
): Promise<HeldFlight[]> {
  await pairsLeftPending(h, n, (i) => ({ user: user(i), lesson: i + 1, at: T0 + i * 60_000 }));
  const held: HeldFlight[] = [];
  const flights = { ms: LEASE, to: (f: HeldFlight[]) => void held.push(...f) };
  assertEquals((await projectBatch(h.kv, { destinations, now: T0, flights })).projected, n);
  return held;
}

const list = async <T>(kv: Deno.Kv, prefix: Deno.KvKey) =>
  await Array.fromAsync(kv.list<T>({ prefix }));
const outbox = async (kv: Deno.Kv) => (await list<OutboxEntry>(kv, ["outbox"])).map((e) => e.value);

Deno.test("flights: a flight landed writes an entry for each failure, due again or dead, and is gone", async () => {
  const h = await harness();
  try {
    const [flight] = await inFlight(h, 3);
    const [a, b, c] = flight.records;
    const failures = [
      { record: a, error: "HTTP 500", retryInMs: 10_000 },
      { record: b, error: "x".repeat(600), retryInMs: null },
    ];
    assertEquals(await landFlight(h.kv, flight, failures, T0 + 5), true);
    assertEquals(await list(h.kv, OUTBOX_FLIGHT_PREFIX), []);
    const entries = await outbox(h.kv);
    assertEquals(entries.length, 2, "nothing for the delivered record");
    const byId = new Map(entries.map((e) => [e.id, e]));
    const retried = byId.get(outboxIdOf("crm", messageIdOf(a)))!;
    assertEquals(retried, {
      id: outboxIdOf("crm", messageIdOf(a)),
      destination: "crm",
      messageId: messageIdOf(a),
      record: a,
      status: "pending",
      attempts: 1,
      dueAt: T0 + 5 + 10_000,
      lastError: "HTTP 500",
      createdAt: T0,
      deliveredAt: null,
      deadAt: null,
    });
    const dead = byId.get(outboxIdOf("crm", messageIdOf(b)))!;
    assertEquals([dead.status, dead.attempts, dead.deadAt, dead.lastError], [
      "dead",
      1,
      T0 + 5,
      "x".repeat(500),
    ]);
    assert(!byId.has(outboxIdOf("crm", messageIdOf(c))));
    const due = await list<string>(h.kv, OUTBOX_DUE_PREFIX);
    assertEquals(due.map((d) => [d.key[1], d.value]), [[T0 + 5 + 10_000, retried.id]]);
    const deadKeys = await list<string>(h.kv, OUTBOX_DEAD_PREFIX);
    assertEquals(deadKeys.map((d) => [d.key[1], d.value]), [[T0 + 5, dead.id]]);
  } finally {
    h.close();
  }
});

Deno.test("flights: landing leaves out records erased meanwhile, and entries that exist", async () => {
  const h = await harness();
  try {
    const [flight] = await inFlight(h, 3);
    const [a, b, c] = flight.records;
    // `a` is taken out of the flight (as an erasure does); `b` has an entry already.
    const op = h.kv.atomic();
    assertEquals(await withoutRecords(h.kv, op, [flight.entry.value.records[0]]), 1);
    assert((await op.commit()).ok);
    const existing = h.kv.atomic();
    addOutboxEntries(existing, b, ["crm"], T0 - 1);
    assert((await existing.commit()).ok);
    const before = await h.kv.get(outboxKey(outboxIdOf("crm", messageIdOf(b))));
    const failures = [a, b, c].map((record) => ({ record, error: "HTTP 502", retryInMs: 10 }));
    assertEquals(await landFlight(h.kv, flight, failures, T0 + 5), true);
    const after = await h.kv.get(outboxKey(outboxIdOf("crm", messageIdOf(b))));
    assertEquals(after, before, "the existing entry is left as it is");
    const entries = await outbox(h.kv);
    assertEquals(entries.map((e) => e.record.lesson_id).sort(), [b.lesson_id, c.lesson_id].sort());
    assertEquals(entries.find((e) => e.record.lesson_id === c.lesson_id)?.attempts, 1);
    assertEquals(await list(h.kv, OUTBOX_FLIGHT_PREFIX), []);
  } finally {
    h.close();
  }
});

Deno.test("flights: a flight expanded by another process is not landed again", async () => {
  const h = await harness();
  try {
    const [flight] = await inFlight(h, 2);
    assertEquals(await expandFlights(h.kv, flight.until), 2);
    const failures = [{ record: flight.records[0], error: "HTTP 500", retryInMs: 10 }];
    assertEquals(await landFlight(h.kv, flight, failures, flight.until + 1), false);
    const entries = await outbox(h.kv);
    assertEquals(entries.map((e) => [e.status, e.attempts, e.dueAt]), [
      ["pending", 0, flight.until],
      ["pending", 0, flight.until],
    ], "the expander's entries, untouched");
  } finally {
    h.close();
  }
});

Deno.test("flights: only flights whose lease ended expand, without erased records or existing entries", async () => {
  const h = await harness();
  try {
    const [flight] = await inFlight(h, 3);
    assertEquals(await firstFlightEnd(h.kv), flight.until);
    assertEquals(await expandFlights(h.kv, flight.until - 1), 0, "still held");
    assertEquals((await list(h.kv, OUTBOX_FLIGHT_PREFIX)).length, 1);
    const [a, b, c] = flight.records;
    await h.kv.delete(recordKey(flight.entry.value.records[0])); // as if erased
    const existing = h.kv.atomic();
    addOutboxEntries(existing, b, ["crm"], T0 - 1);
    assert((await existing.commit()).ok);
    assertEquals(await expandFlights(h.kv, flight.until + 7), 1);
    assertEquals(await firstFlightEnd(h.kv), null);
    const entries = await outbox(h.kv);
    const made = entries.find((e) => e.record.lesson_id === c.lesson_id)!;
    assertEquals([made.status, made.attempts, made.dueAt, made.createdAt], [
      "pending",
      0,
      flight.until + 7,
      T0,
    ]);
    assertEquals(entries.find((e) => e.record.lesson_id === b.lesson_id)?.createdAt, T0 - 1);
    assert(!entries.some((e) => e.record.lesson_id === a.lesson_id));
  } finally {
    h.close();
  }
});

Deno.test("flights: the first flight's end is the earliest lease", async () => {
  const h = await harness();
  try {
    assertEquals(await firstFlightEnd(h.kv), null);
    const flight: OutboxFlight = { destination: "crm", records: [], createdAt: T0 };
    await h.kv.set([...OUTBOX_FLIGHT_PREFIX, T0 + 9, "b"], flight);
    await h.kv.set([...OUTBOX_FLIGHT_PREFIX, T0 + 3, "a"], flight);
    assertEquals(await firstFlightEnd(h.kv), T0 + 3);
  } finally {
    h.close();
  }
});

Deno.test("flights: an erasure takes its learner's records out of every flight", async () => {
  const h = await harness();
  try {
    // Learner 1 has lessons 1 and 3, learner 2 lesson 2; two destinations, a flight each.
    const held = await inFlight(h, 3, ["crm", "lake"]);
    assertEquals(held.length, 2);
    const removed = await eraseLearner(h.kv, { tenantId: "48213", userId: 1 }, {
      destinations: ["crm", "lake"],
      now: T0 + 1,
    });
    assertEquals([removed.records, removed.outbox], [2, 4], "two records, in two flights each");
    for (const f of await list<OutboxFlight>(h.kv, OUTBOX_FLIGHT_PREFIX)) {
      assertEquals(f.value.records.map((p) => p[2]), [
        held[0].records.find((r) => r.user_id === 2)!.progress_event_id,
      ]);
    }
    // Landed with every attempt failed, only learner 2's record gets entries.
    for (const f of held) {
      const failures = f.records.map((record) => ({ record, error: "HTTP 500", retryInMs: 10 }));
      assertEquals(await landFlight(h.kv, f, failures, T0 + 2), true);
    }
    assertEquals((await outbox(h.kv)).map((e) => [e.destination, e.record.user_id]).sort(), [
      ["crm", 2],
      ["lake", 2],
    ]);
    // A flight of the learner's records alone is deleted.
    const [only] = await inFlight(h, 1, ["crm"], () => 3);
    await eraseLearner(h.kv, { tenantId: "48213", userId: 3 }, { destinations: [], now: T0 + 3 });
    assertEquals((await h.kv.get(only.entry.key)).value, null);
  } finally {
    h.close();
  }
});

Deno.test("flights: the records of a process that stopped mid-flight are delivered by another once the lease ends", async () => {
  const h = await harness();
  const got: number[] = [];
  const clock = { now: T0 + 1 };
  const other = createForwarder({
    kv: h.kv,
    destinations: [handlerDestination("crm", (r) => Promise.resolve(void got.push(r.lesson_id)))],
    now: () => clock.now,
    log: () => {},
  });
  try {
    const [flight] = await inFlight(h, 2); // never landed: its process stopped
    assertEquals(await other.sweep(), 0, "held by its process");
    clock.now = flight.until;
    assertEquals(await other.sweep(), 2);
    assertEquals(got.sort(), [1, 2]);
    assertEquals(await list(h.kv, OUTBOX_FLIGHT_PREFIX), []);
    assertEquals((await outbox(h.kv)).map((e) => e.status), ["delivered", "delivered"]);
  } finally {
    await other.close();
    h.close();
  }
});

Deno.test("flights: a message id gives back the school and event id it was made of", () => {
  const part = fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/);
  fc.assert(
    fc.property(part, part, (tenant, event) => {
      const id = messageIdOf({ tenant_id: tenant, progress_event_id: event });
      const got = messageParts(id);
      return got?.tenantId === tenant && got.eventId === event;
    }),
    { numRuns: 1000 },
  );
  assertEquals(messageParts("msg_a_b_c"), null, "three parts");
  assertEquals(messageParts("nope_a_b"), null);
  assertEquals(messageParts("xmsg_a_b"), null, "from its start");
});

Deno.test("flights: a retry of a record forwarded from a flight is a 409; of an unknown one a 404", async () => {
  const h = await harness();
  try {
    const [flight] = await inFlight(h, 1);
    assertEquals(await landFlight(h.kv, flight, [], T0 + 1), true);
    const [record] = flight.records;
    const id = outboxIdOf("crm", messageIdOf(record));
    assertEquals(await forwardedFromFlight(h.kv, messageIdOf(record)), true);
    const lesson = messageIdOf({ ...record, progress_event_id: record.lesson_event_id });
    assertEquals(await forwardedFromFlight(h.kv, lesson), false, "a lesson's id is no message");
    assertEquals(await forwardedFromFlight(h.kv, "msg_48213_nope"), false);
    assertEquals(await forwardedFromFlight(h.kv, "nope"), false);
    const retry = async (app: ReturnType<typeof createApp>, id: string) => {
      const res = await app.request(`/api/outbox/${id}/retry`, { method: "POST" });
      return { status: res.status, error: (await res.json()).error };
    };
    const crm = handlerDestination("crm", () => Promise.resolve());
    const forwarder = createForwarder({ kv: h.kv, destinations: [crm], log: () => {} });
    try {
      const app = createApp({ kv: h.kv, config: h.config, log: () => {}, forwarder });
      assertEquals(await retry(app, id), {
        status: 409,
        error:
          `outbox entry ${id} has no attempt to retry: its record was delivered, or is being forwarded`,
      });
      assertEquals(await retry(app, "crm:msg_48213_nope"), {
        status: 404,
        error: "no outbox entry crm:msg_48213_nope",
      });
      // Not a destination of this process, nor without forwarding: no such entry.
      const lake = outboxIdOf("lake", messageIdOf(record));
      assertEquals((await retry(app, lake)).status, 404);
      const plain = createApp({ kv: h.kv, config: h.config, log: () => {} });
      assertEquals((await retry(plain, id)).status, 404);
    } finally {
      await forwarder.close();
    }
  } finally {
    h.close();
  }
});

Deno.test("flights: one flight per destination and 64 records; none for no record", () => {
  const record = (i: number) =>
    ({
      completed_at: new Date(T0 + i).toISOString(),
      tenant_id: "48213",
      progress_event_id: `p${i}`,
    }) as LessonProgressRecord;
  const count = (n: number, destinations: string[]) => {
    const op = new CommitPlan();
    const made = addFlights(
      op,
      Array.from({ length: n }, (_, i) => record(i)),
      destinations,
      T0,
      T0 + LEASE,
    );
    assertEquals(op.mutations.length, made.length, "one key each");
    return made.map((f) => [f.value.destination, f.records.length, f.value.records.length]);
  };
  assertEquals(count(0, ["crm"]), []);
  assertEquals(count(64, ["crm"]), [["crm", 64, 64]]);
  assertEquals(count(65, ["crm", "lake"]), [
    ["crm", 64, 64],
    ["crm", 1, 1],
    ["lake", 64, 64],
    ["lake", 1, 1],
  ]);
});

Deno.test("flights: an expansion that finds its flight gone meanwhile (another process's) writes nothing", async () => {
  const h = await harness();
  try {
    const [flight] = await inFlight(h, 2);
    let raced = false;
    const kv = instrumentKv(h.kv, {
      before() {},
      holdCommit: async () => {
        if (raced) return;
        raced = true;
        assertEquals(await expandFlights(h.kv, flight.until), 2, "the rival's");
      },
    });
    assertEquals(await expandFlights(kv, flight.until), 0);
    assertEquals((await outbox(h.kv)).length, 2, "the rival's entries only");
  } finally {
    h.close();
  }
});

Deno.test("flights: an erasure checks the flights it rewrites, and leaves the others as they are", async () => {
  const h = await harness();
  try {
    // Learners 1 and 2 share a flight; learner 3 has one of their own.
    const [theirs] = await inFlight(h, 2);
    const [others] = await inFlight(h, 1, ["crm"], () => 3);
    // The erasure's commit (taking learner 1's record out of the shared flight) waits while that
    // flight lands: its rewrite must not bring the flight back.
    let landed = false;
    const calls: string[] = [];
    const kv = instrumentKv(h.kv, {
      before: (call) => void calls.push(call),
      holdCommit: async () => {
        // The records' commit: after reading them, listing flights and reading outbox entries.
        if (landed || calls.slice(-4, -1).join(" ") !== "getMany list getMany") return;
        landed = true;
        assertEquals(await landFlight(h.kv, theirs, [], T0 + 1), true);
      },
    });
    await eraseLearner(kv, { tenantId: "48213", userId: 1 }, {
      destinations: ["crm"],
      now: T0 + 2,
    });
    assert(landed);
    assertEquals((await h.kv.get(theirs.entry.key)).value, null, "not brought back");
    const still = await h.kv.get(others.entry.key);
    assertEquals(
      still.versionstamp,
      others.entry.versionstamp,
      "another learner's flight untouched",
    );
  } finally {
    h.close();
  }
});

Deno.test("flights: a progress event stored alone, or whose event has expired, was not forwarded", async () => {
  const h = await harness();
  try {
    const lone = progressWebhook({ user: 7, at: T0 });
    const res = await h.post(lone);
    assertEquals(res.status, 409, JSON.stringify(res.json));
    const id = messageIdOf({ tenant_id: "48213", progress_event_id: lone.id });
    assertEquals(await forwardedFromFlight(h.kv, id), false, "stored, not paired");
    const [flight] = await inFlight(h, 1);
    const [record] = flight.records;
    const paired = messageIdOf(record);
    assertEquals(await forwardedFromFlight(h.kv, paired), true);
    const events = await list(h.kv, ["events"]);
    for (const e of events) await h.kv.delete(e.key); // expired, their pointers kept a while longer
    assertEquals(await forwardedFromFlight(h.kv, paired), false);
  } finally {
    h.close();
  }
});

/** `kv` whose first list of the flights first runs `before` (a rival's commit at that moment). */
function beforeFlightList(kv: Deno.Kv, before: () => Promise<unknown>): Deno.Kv {
  let ran = false;
  return withList(kv, (selector, options, real) => {
    const flights = "prefix" in selector && selector.prefix[0] === OUTBOX_FLIGHT_PREFIX[0];
    if (ran || !flights) return real.list(selector, options);
    ran = true;
    return (async function* () {
      await before();
      yield* real.list(selector, options);
    })();
  });
}

Deno.test("flights: a landing that writes a failed record's entry just before an erasure lists the flights leaves no entry of the learner", async () => {
  const h = await harness();
  try {
    const [flight] = await inFlight(h, 2); // learners 1 and 2
    const failures = flight.records.map((record) => ({ record, error: "HTTP 500", retryInMs: 10 }));
    const kv = beforeFlightList(h.kv, () => landFlight(h.kv, flight, failures, T0 + 1));
    await eraseLearner(kv, { tenantId: "48213", userId: 1 }, {
      destinations: ["crm"],
      now: T0 + 2,
    });
    assertEquals((await outbox(h.kv)).map((e) => e.record.user_id), [2]);
    assertEquals(await list(h.kv, OUTBOX_FLIGHT_PREFIX), []);
  } finally {
    h.close();
  }
});

Deno.test("flights: an expansion that read before an erasure committed writes no entry of the erased learner", async () => {
  const h = await harness();
  try {
    const [flight] = await inFlight(h, 2); // learners 1 and 2
    let erased = false;
    const kv = instrumentKv(h.kv, {
      before() {},
      holdCommit: async () => {
        if (erased) return;
        erased = true;
        await eraseLearner(h.kv, { tenantId: "48213", userId: 1 }, {
          destinations: ["crm"],
          now: T0 + 1,
        });
      },
    });
    assertEquals(await expandFlights(kv, flight.until), 1, "learner 2's record only");
    assert(erased);
    assertEquals((await outbox(h.kv)).map((e) => e.record.user_id), [2]);
  } finally {
    h.close();
  }
});
