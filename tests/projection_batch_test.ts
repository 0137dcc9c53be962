/**
 * One projection batch (`projectBatch`): how many entries it reads and commits, what it says is
 * left, a lost race, what it stores of a record, outbox entries that exist already, and the flights it
 * writes instead of outbox entries for the forwarder of the process that projects.
 */
import { assert, assertEquals } from "./_assert.ts";
import { harness } from "./_helpers.ts";
import { recordCommits } from "./_committer.ts";
import { pairsLeftPending } from "./_projection.ts";
import {
  projectBatch,
  PROJECTION_BATCH,
  projectPending,
  readRecord,
} from "../lib/store/projections.ts";
import { feedPositionOf, getRecords, recordPositionOf } from "../lib/store/records.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";
import { CommitPlan, fitsWithin } from "../lib/store/plan.ts";

/** `kv`, noting the kind of each call. */
function counted(real: Deno.Kv) {
  const calls: KvCall[] = [];
  return { kv: instrumentKv(real, { before: (c) => void calls.push(c) }), calls };
}
import {
  feedKey,
  OUTBOX_DUE_PREFIX,
  OUTBOX_FLIGHT_PREFIX,
  type OutboxEntry,
  type OutboxFlight,
  outboxKey,
  type Projection,
  PROJECTION_PREFIX,
  PROJECTOR_LEASE_KEY,
  recordKey,
  recordKeys,
  unmatchedKey,
} from "../lib/store/keys.ts";
import { leaseDue, messageIdOf } from "../lib/store/outbox.ts";
import { type HeldFlight, landFlight } from "../lib/store/flights.ts";

const T0 = Date.parse("2026-11-29T10:00:00.000Z");
const HOUR = 3_600_000;

type H = Awaited<ReturnType<typeof harness>>;

/**
 * `n` records of `users` learners (round robin), their projections left pending: lessons 1…n, or
 * lesson 1 again and again (`sameLesson`: a smaller projection each).
 */
const records = (h: H, n: number, users = 1, sameLesson = false) =>
  pairsLeftPending(h, n, (i) => ({
    user: 1 + (i % users),
    course: 10,
    lesson: sameLesson ? 1 : i + 1,
    at: T0 + i * HOUR,
    percentage: "50",
  }));

const pending = async (
  kv: Deno.Kv,
) => (await Array.fromAsync(kv.list<Projection>({ prefix: PROJECTION_PREFIX })));

Deno.test("projection batch: at most 64 entries, and it says when more may wait", async () => {
  const h = await harness();
  try {
    assertEquals(PROJECTION_BATCH, 64);
    await records(h, 96, 3, true);
    const opts = { destinations: [], now: T0 };
    assertEquals(await projectBatch(h.kv, opts), { projected: 64, more: true });
    assertEquals((await pending(h.kv)).length, 32);
    assertEquals(await projectBatch(h.kv, opts), { projected: 32, more: false });
    assertEquals(await projectBatch(h.kv, opts), { projected: 0, more: false });
    // Exactly a batch: more may wait, and the next batch finds none.
    await records(h, 64, 2, true);
    assertEquals(await projectBatch(h.kv, opts), { projected: 64, more: true });
    assertEquals(await projectBatch(h.kv, opts), { projected: 0, more: false });
    const lease = await h.kv.get<{ at: number; projected: number }>(PROJECTOR_LEASE_KEY);
    assertEquals(lease.value, { at: T0, projected: 64 });
  } finally {
    h.close();
  }
});

Deno.test("projection batch: a commit never holds more than Deno KV's 100 checks and 1,000 mutations", async () => {
  const h = await harness();
  const { kv, commits } = recordCommits(h.kv);
  try {
    await records(h, 100, 100); // 100 learners: each record adds a learner and a lesson
    // Two destinations: per record one check and two mutations each, on top of its views.
    const projected = await projectPending(kv, { destinations: ["crm", "lake"], now: T0 });
    assertEquals(projected, 100);
    const sizes = commits.map((c) => ({ checks: c.checks.length, mutations: c.mutations.length }));
    assert(sizes.length >= 3, `${sizes.length} commits`);
    for (const s of sizes) {
      assert(s.checks <= 100 && s.mutations <= 1000, JSON.stringify(s));
    }
    // Full commits: the checks limit (three per record: its entry and its two outbox entries, and
    // the lease's) decides.
    assertEquals(sizes[0].checks, 100);
    assertEquals((await Array.fromAsync(h.kv.list({ prefix: ["outbox"] }))).length, 200);
  } finally {
    h.close();
  }
});

Deno.test("projection batch: its flights count in the commit's limits, mutations and bytes", async () => {
  const h = await harness();
  const { kv, commits } = recordCommits(h.kv);
  try {
    await records(h, 24, 24);
    const flights = { ms: 60_000, to: () => {} };
    // 950 destinations: a flight each (a mutation, a key, a position per record) leaves room for
    // only a few records' mutations; 600: the flights' bytes decide first. Deno KV refuses a
    // commit over its limits, so each batch committing says they were kept.
    for (const n of [950, 600]) {
      commits.length = 0;
      const destinations = Array.from({ length: n }, (_, i) => `d${i}`);
      const batch = await projectBatch(kv, { destinations, now: T0, flights });
      assertEquals(commits.length, 1);
      const written = commits[0].mutations.filter((m) => m.key[0] === "outbox_flight");
      assertEquals(written.length, n, "a flight per destination");
      const held = (written[0] as { value: OutboxFlight }).value.records.length;
      assertEquals(batch, { projected: held, more: true });
      assert(held > 0 && held < 12, `${held} records`);
      // Within the limits as this service estimates them (from above), too.
      const plan = new CommitPlan();
      plan.checks.push(...commits[0].checks);
      plan.mutations.push(...commits[0].mutations);
      const none = { checks: 0, mutations: 0, keyBytes: 0, totalBytes: 0 };
      assert(fitsWithin(none, plan.measure().size), JSON.stringify(plan.measure().size));
    }
  } finally {
    h.close();
  }
});

Deno.test("projection batch: entries another process projected between its list and its read of the lease are not projected again", async () => {
  const h = await harness();
  try {
    await records(h, 3);
    let other: Promise<unknown> | null = null;
    // The list is read before the other process's batch commits, the lease after it.
    const otherBatch = () =>
      other ??= projectPending(h.kv, { destinations: [], now: T0 + 1, flights: noFlights() });
    const kv = new Proxy(h.kv, {
      get(target, prop) {
        if (prop === "list") {
          return (...args: Parameters<Deno.Kv["list"]>) =>
            (async function* () {
              const listed = await Array.fromAsync(target.list(...args));
              await otherBatch();
              yield* listed;
            })();
        }
        if (prop === "get") {
          return async (key: Deno.KvKey) => {
            await otherBatch();
            return await target.get(key);
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const handed: number[] = [];
    const flights = { ms: 60_000, to: (f: HeldFlight[]) => void handed.push(f.length) };
    assertEquals(await projectBatch(kv, { destinations: ["webhook"], now: T0, flights }), {
      projected: 0,
      more: true,
    });
    assertEquals(handed, [], "no flight of records projected already");
    const lease = await h.kv.get<{ at: number; projected: number }>(PROJECTOR_LEASE_KEY);
    assertEquals(lease.value, { at: T0 + 1, projected: 3 }, "the other's batch");
    assertEquals((await Array.fromAsync(h.kv.list({ prefix: ["feed"] }))).length, 3, "once each");
  } finally {
    h.close();
  }
});

/** Flights to nowhere: the records are projected, their flights not handed to anyone. */
const noFlights = () => ({ ms: 60_000, to: () => {} });

Deno.test("projection batch: one that loses to another process projects nothing and says more", async () => {
  const h = await harness();
  try {
    await records(h, 3);
    let raced = false;
    const kv = instrumentKv(h.kv, {
      before() {},
      holdCommit: async () => {
        if (raced) return;
        raced = true;
        // Another process's batch commits first.
        await projectPending(h.kv, { destinations: [], now: T0 + 1 });
      },
    });
    assertEquals(await projectBatch(kv, { destinations: [], now: T0 }), {
      projected: 0,
      more: true,
    });
    assertEquals((await pending(h.kv)).length, 0);
    const lease = await h.kv.get<{ at: number; projected: number }>(PROJECTOR_LEASE_KEY);
    assertEquals(lease.value, { at: T0 + 1, projected: 3 }, "the winner's");
  } finally {
    h.close();
  }
});

Deno.test("projection batch: a record is stored by its batch, with its feed entry, its indexes and the end of its unmatched entries", async () => {
  const h = await harness();
  try {
    await records(h, 2);
    const [first, second] = await pending(h.kv);
    const { record, unlisted } = first.value;
    const at = recordPositionOf(record);
    const keys = [
      ...recordKeys(at, record.user_id, record.course_id),
      feedKey(feedPositionOf(record)),
    ];
    // The lesson came first, alone: its unmatched entry waits for the record's batch.
    assertEquals(unlisted.length, 1);
    const listed = unmatchedKey(unlisted[0][0], record.tenant_id, unlisted[0][1]);
    assertEquals(unlisted[0][1], record.lesson_event_id);
    const before = await h.kv.getMany([...keys, listed]);
    assertEquals(before.map((e) => e.versionstamp !== null), [...keys.map(() => false), true]);
    assertEquals(await projectBatch(h.kv, { destinations: [], now: T0 }), {
      projected: 2,
      more: false,
    });
    const after = await h.kv.getMany([...keys, listed]);
    assertEquals(after.map((e) => e.versionstamp !== null), [...keys.map(() => true), false]);
    assertEquals(after.map((e) => e.value).slice(0, 4), [
      record,
      null,
      record.course_id,
      record.user_id,
    ]);
    assertEquals(after[4].value, at, "the feed entry says where the record is");
    const [stored] = await getRecords(h.kv, [recordPositionOf(second.value.record)]);
    assertEquals(stored, second.value.record);
  } finally {
    h.close();
  }
});

Deno.test("projection batch: entries left by the previous version (the record stored already) are projected from their record, or dropped when it is gone", async () => {
  const h = await harness();
  try {
    await records(h, 2);
    await records(h, 1, 2); // and a new entry beside them
    // As the previous version left them: each record stored in its own commit, and an entry that
    // says where it is.
    const [kept, gone, fresh] = await pending(h.kv);
    for (const e of [kept, gone]) {
      const { record, unlisted: _, ...rest } = e.value;
      const at = recordPositionOf(record);
      const op = h.kv.atomic().set(e.key, { ...rest, position: at })
        .set(recordKey(at), record).set(feedKey(feedPositionOf(record)), at);
      assert((await op.commit()).ok);
    }
    await h.kv.delete(recordKey(recordPositionOf(gone.value.record)));
    const { kv, commits } = recordCommits(h.kv);
    assertEquals(await projectBatch(kv, { destinations: ["crm"], now: T0 }), {
      projected: 3,
      more: false,
    });
    assertEquals((await pending(h.kv)).length, 0);
    const outbox = await Array.fromAsync(h.kv.list<OutboxEntry>({ prefix: ["outbox"] }));
    const forwarded = outbox.map((e) => e.value.record.progress_event_id).sort();
    const expected = [kept, fresh].map((e) => e.value.record.progress_event_id).sort();
    assertEquals(forwarded, expected, "the gone one: nothing");
    const [stored] = await getRecords(h.kv, [recordPositionOf(kept.value.record)]);
    assertEquals(stored, kept.value.record);
    const courseIndex = await Array.fromAsync(h.kv.list({ prefix: ["records", "c"] }));
    assertEquals(courseIndex.length, 2, "the kept and the new record's index only");
    const days = await Array.fromAsync(h.kv.list<Deno.KvU64>({ prefix: ["dash_course_day"] }));
    assertEquals(days.reduce((n, e) => n + e.value.value, 0n), 2n, "two completions counted");
    // A legacy entry's unmatched entries were ended by its own commit: only the new one's go.
    const unlisted = commits.flatMap((c) => c.mutations)
      .filter((m) => m.type === "delete" && m.key[0] === "unmatched").map((m) => m.key.at(-1));
    assertEquals(unlisted, fresh.value.unlisted.map(([, id]) => id));
  } finally {
    h.close();
  }
});

Deno.test("projection batch: outbox entries that exist already are left as they are, the rest written", async () => {
  const h = await harness();
  try {
    await records(h, 6, 2);
    const recs = (await pending(h.kv)).map((e) => e.value.record);
    // Entries of "crm" exist for records 0, 2 and 5 (delivered); "lake" has none.
    const existing = [0, 2, 5].map((i) => recs[i]);
    for (const r of existing) {
      const id = `crm:${messageIdOf(r)}`;
      await h.kv.set(outboxKey(id), { id, status: "delivered" });
    }
    const projected = await projectPending(h.kv, { destinations: ["crm", "lake"], now: T0 });
    assertEquals(projected, 6);
    const outbox = await Array.fromAsync(h.kv.list<{ id: string; status: string }>({
      prefix: ["outbox"],
    }));
    assertEquals(outbox.length, 12);
    const delivered = outbox.filter((e) => e.value.status === "delivered").map((e) => e.value.id);
    assertEquals(delivered.sort(), existing.map((r) => `crm:${messageIdOf(r)}`).sort());
    const due = await Array.fromAsync(h.kv.list({ prefix: ["outbox_due"] }));
    assertEquals(due.length, 9, "the new entries only");
  } finally {
    h.close();
  }
});

Deno.test("projection batch: with flights it writes one flight per destination instead of outbox entries, handed over with its version", async () => {
  const h = await harness();
  try {
    await records(h, 3);
    const handed: HeldFlight[][] = [];
    const flights = { ms: 60_000, to: (f: HeldFlight[]) => void handed.push(f) };
    assertEquals(await projectBatch(h.kv, { destinations: ["crm", "lake"], now: T0, flights }), {
      projected: 3,
      more: false,
    });
    assertEquals(handed.length, 1, "one hand-over per committed batch");
    const [held] = handed;
    assertEquals(held.map((f) => f.entry.value.destination), ["crm", "lake"]);
    const stored = await getRecords(h.kv, held[0].entry.value.records);
    for (const f of held) {
      const got = await h.kv.get<OutboxFlight>(f.entry.key);
      assertEquals(got.versionstamp, f.entry.versionstamp, "the version stored");
      assertEquals(got.value, f.entry.value);
      assertEquals([f.entry.key[0], f.entry.key[1], f.until], [
        "outbox_flight",
        T0 + 60_000,
        T0 + 60_000,
      ]);
      assertEquals(f.entry.value.createdAt, T0);
      assertEquals(f.records, stored, "the records as stored, in the flight's order");
      assertEquals(f.entry.value.records, f.records.map(recordPositionOf));
    }
    assertEquals(stored.length, 3);
    // No outbox entry and no due key: the flight stands for them.
    assertEquals(await Array.fromAsync(h.kv.list({ prefix: ["outbox"] })), []);
    assertEquals(await Array.fromAsync(h.kv.list({ prefix: OUTBOX_DUE_PREFIX })), []);
    // Landed as held (every attempt delivered), the flights leave nothing behind.
    for (const f of held) assertEquals(await landFlight(h.kv, f, [], T0 + 1), true);
    assertEquals(await Array.fromAsync(h.kv.list({ prefix: OUTBOX_FLIGHT_PREFIX })), []);
  } finally {
    h.close();
  }
});

Deno.test("projection batch: without flights the entries are due at once; with flights but no destination nothing is handed over", async () => {
  const h = await harness();
  try {
    await records(h, 2);
    const opts = { destinations: ["crm"], now: T0 };
    assertEquals(await projectBatch(h.kv, opts), { projected: 2, more: false });
    const { leased } = await leaseDue(h.kv, T0, { limit: 10, take: () => true });
    assertEquals(leased.length, 2, "both due at the projection's time");
    // With flights but no destination, there is nothing to hand over.
    await records(h, 1);
    let calls = 0;
    const none = { destinations: [], now: T0, flights: { ms: 60_000, to: () => void calls++ } };
    assertEquals(await projectBatch(h.kv, none), { projected: 1, more: false });
    assertEquals(calls, 0);
    assertEquals(await Array.fromAsync(h.kv.list({ prefix: OUTBOX_FLIGHT_PREFIX })), []);
  } finally {
    h.close();
  }
});

Deno.test("projection batch: a list that fails at once leaves no read running behind it", async () => {
  const real = await Deno.openKv(":memory:");
  const calls: string[] = [];
  const kv = instrumentKv(real, {
    before(call) {
      calls.push(call);
      if (call === "list") throw new Error("injected list failure");
    },
  });
  const failed = await projectBatch(kv, { destinations: [], now: T0 }).then(() => null, String);
  // A read of the lease started before the list would still run when the database closes.
  real.close();
  assertEquals(failed, "Error: injected list failure");
  assertEquals(calls, ["list"]);
});

Deno.test("readRecord: a paired event's record, stored or still in its projection entry, in one read", async () => {
  const h = await harness();
  const { kv, calls } = counted(h.kv);
  try {
    await records(h, 1);
    const [entry] = await pending(h.kv);
    const { record } = entry.value;
    const event = {
      tenantId: record.tenant_id,
      userId: record.user_id,
      courseId: record.course_id,
      recordAt: recordPositionOf(record),
      recordNumber: entry.key.at(-1) as number,
    };
    assertEquals(await readRecord(kv, event), record, "pending");
    assertEquals(calls.splice(0), ["getMany"]);
    // Paired before records were stored by the projector: only the stored record is read.
    const legacy = { ...event, recordNumber: undefined };
    assertEquals(await readRecord(kv, legacy), null, "a legacy event reads no projection entry");
    await projectPending(h.kv, { destinations: [], now: T0 });
    assertEquals(await readRecord(kv, event), record, "stored");
    assertEquals(await readRecord(kv, legacy), record, "stored, legacy");
    assertEquals(calls.splice(0), ["getMany", "getMany", "getMany"]);
    // Neither (its learner erased), or not paired: none.
    await h.kv.delete(recordKey(event.recordAt));
    assertEquals(await readRecord(kv, event), null);
    assertEquals(await readRecord(kv, { ...event, recordAt: null }), null);
  } finally {
    h.close();
  }
});
