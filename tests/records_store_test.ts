/**
 * Records and the unmatched list (lib/store/records.ts), through its functions on an in-memory
 * database: reads by position, the listings' `since` and filters, the dashboard's latest records,
 * and what an unmatched entry says.
 */
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { type HandledTopic, LESSON_TOPIC, PROGRESS_TOPIC } from "../lib/config.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";
import {
  FEED_FENCE_KEY,
  feedKey,
  type RecordFilter,
  recordKeys,
  type StoredEvent,
  unmatchedKey,
} from "../lib/store/keys.ts";
import { CommitPlan } from "../lib/store/plan.ts";
import { parseWebhook } from "../lib/thinkific/schemas.ts";
import {
  feedPositionOf,
  getRecords,
  listRecords,
  listUnmatched,
  placeRecord,
  recentRecords,
  recordPages,
  recordPositionOf,
  storeRecord,
  unlistedOf,
  writeUnmatched,
} from "../lib/store/records.ts";

const T = BASE_TIME;
const iso = (ms: number) => new Date(ms).toISOString();

/** A record completed at `at` (`over` changes any field). */
function record(id: string, at: number, over: Partial<LessonProgressRecord> = {}) {
  const r: LessonProgressRecord = {
    tenant_id: "A",
    user_id: 1,
    user_email: "a@example.com",
    course_id: 10,
    course_name: "Course",
    enrollment_id: 5,
    lesson_id: 6,
    lesson_name: "Lesson",
    lesson_type: "text",
    chapter_id: 7,
    chapter_name: "Chapter",
    completed_at: iso(at),
    percentage_completed: 50,
    previous_percentage_completed: null,
    first_completion: true,
    progress_event_id: id,
    lesson_event_id: `l-${id}`,
    skew_ms: 0,
    collated_at: iso(at + 1_000),
    ...over,
  };
  return r;
}

/** Writes each record in its own commit, placed as the collator does, stored as projected. */
async function store(kv: Deno.Kv, ...records: LessonProgressRecord[]) {
  for (const r of records) {
    const fence = await kv.get<number>(FEED_FENCE_KEY);
    const plan = storeRecord(placeRecord(new CommitPlan(), r, fence), r) as CommitPlan;
    assertEquals(
      (await plan.applyTo(kv.atomic()).commit()).ok,
      true,
      `stored ${r.progress_event_id}`,
    );
  }
}

const ids = (records: LessonProgressRecord[]) => records.map((r) => r.progress_event_id);

/** An in-memory database (`real`), and a handle on it (`kv`) that notes each round trip. */
async function withKv(fn: (kv: Deno.Kv, calls: KvCall[]) => Promise<void>) {
  const real = await Deno.openKv(":memory:");
  const calls: KvCall[] = [];
  try {
    await fn(instrumentKv(real, { before: (c) => void calls.push(c) }), calls);
  } finally {
    real.close();
  }
}

Deno.test("getRecords: the records at the positions asked, in their order, past ten at a time, missing ones left out", async () => {
  await withKv(async (kv) => {
    const all = Array.from({ length: 25 }, (_, i) => record(`r${i}`, T + i * 1_000));
    await store(kv, ...all);
    const positions = all.map(recordPositionOf).reverse();
    positions.splice(12, 0, [T + 500, "A", "never-stored"]);
    const read = await getRecords(kv, positions);
    assertEquals(ids(read), all.map((r) => r.progress_event_id).reverse());
    assertEquals(read[0], all[24]);
    assertEquals(await getRecords(kv, [[T, "A", "gone"]]), []);
  });
});

Deno.test("listRecords: an unfiltered page comes whole from its one range read; a filtered one reads its records in one read of up to ten", async () => {
  await withKv(async (kv, calls) => {
    const rs = [record("a", T), record("b", T + 1_000), record("c", T + 2_000, { course_id: 11 })];
    await store(kv, ...rs);
    calls.length = 0;
    const all = await listRecords(kv, { filter: {}, limit: 10 });
    assertEquals(all, { records: rs, cursor: null });
    assertEquals(calls, ["list"]);
    calls.length = 0;
    const course = await listRecords(kv, { filter: { courseId: 10 }, limit: 10 });
    assertEquals(course, { records: rs.slice(0, 2), cursor: null });
    assertEquals(calls, ["list", "getMany"]);
    // Ten records (as many as one read takes) are still one read; none is no read.
    await store(kv, ...[3, 4, 5, 6, 7, 8, 9, 10].map((i) => record(`r${i}`, T + i * 1_000)));
    calls.length = 0;
    const ten = await listRecords(kv, { filter: { courseId: 10 }, limit: 10 });
    assertEquals(ten.records.length, 10);
    assertEquals(calls, ["list", "getMany"]);
    calls.length = 0;
    assertEquals(await listRecords(kv, { filter: { courseId: 12 }, limit: 10 }), {
      records: [],
      cursor: null,
    });
    assertEquals(calls, ["list"]);
  });
});

Deno.test("listRecords: `since` starts at that completion time; a cursor before it is overruled, one after it goes on", async () => {
  await withKv(async (kv) => {
    const [a, b, c, d] = [0, 1, 2, 3].map((i) => record(`r${i}`, T + i * 1_000));
    await store(kv, a, b, c, d);
    const list = async (since: number | undefined, after?: LessonProgressRecord) =>
      ids(
        (await listRecords(kv, {
          filter: {},
          since,
          limit: 10,
          after: after && recordPositionOf(after),
        })).records,
      );
    assertEquals(await list(T + 1_000), ["r1", "r2", "r3"], "since is inclusive");
    assertEquals(await list(T + 1_001), ["r2", "r3"]);
    assertEquals(await list(T + 2_000, a), ["r2", "r3"], "a cursor before since");
    assertEquals(await list(T + 1_000, c), ["r3"], "a cursor after since");
    assertEquals(await list(T + 2_000, c), ["r3"], "a cursor at since");
    assertEquals(await list(undefined, b), ["r2", "r3"]);
    // The same through an index, page after page.
    const pages: string[][] = [];
    for await (
      const page of recordPages(kv, { filter: { tenantId: "A" }, since: T + 1, limit: 2 })
    ) {
      pages.push(ids(page));
    }
    assertEquals(pages, [["r1", "r2"], ["r3"]]);
  });
});

Deno.test("listRecords and recentRecords: a user's records in one course, or of one school; a course's of one school", async () => {
  await withKv(async (kv) => {
    await store(
      kv,
      record("u1c10", T),
      record("u1c11", T + 1_000, { course_id: 11 }),
      record("u2c10", T + 2_000, { user_id: 2 }),
      record("u1c10B", T + 3_000, { tenant_id: "B" }),
    );
    const cases: [RecordFilter, string[]][] = [
      [{ userId: 1, courseId: 10 }, ["u1c10", "u1c10B"]],
      [{ userId: 1, tenantId: "A" }, ["u1c10", "u1c11"]],
      [{ userId: 1, courseId: 10, tenantId: "B" }, ["u1c10B"]],
      [{ courseId: 10, tenantId: "A" }, ["u1c10", "u2c10"]],
      [{ tenantId: "B" }, ["u1c10B"]],
      [{}, ["u1c10", "u1c11", "u2c10", "u1c10B"]],
    ];
    for (const [filter, expected] of cases) {
      const label = JSON.stringify(filter);
      assertEquals(ids((await listRecords(kv, { filter, limit: 10 })).records), expected, label);
      assertEquals(ids(await recentRecords(kv, filter, 10)), expected.toReversed(), label);
    }
  });
});

Deno.test("recentRecords: the latest `limit` records of the filter, newest completion first", async () => {
  await withKv(async (kv) => {
    const mine = [0, 1, 2, 3, 4].map((i) => record(`r${i}`, T + i * 1_000));
    await store(kv, ...mine, record("other-course", T + 9_000, { course_id: 11 }));
    assertEquals(ids(await recentRecords(kv, { courseId: 10 }, 3)), ["r4", "r3", "r2"]);
    assertEquals(ids(await recentRecords(kv, { userId: 1, courseId: 10 }, 2)), ["r4", "r3"]);
    assertEquals(ids(await recentRecords(kv, { courseId: 10 }, 1)), ["r4"]);
    assertEquals(ids(await recentRecords(kv, {}, 2)), ["other-course", "r4"]);
    assertEquals(await recentRecords(kv, { courseId: 10 }, 2), [mine[4], mine[3]]);
    assertEquals(ids(await recentRecords(kv, { courseId: 12 }, 3)), []);
  });
});

/** A stored event that found no counterpart, delivered three times. */
function lone(topic: HandledTopic): StoredEvent {
  const who = { id: `${topic}-1`, at: T, tenant: "A", user: 1, course: 10 };
  const body = topic === PROGRESS_TOPIC
    ? progressWebhook({ ...who, percentage: "40" })
    : lessonWebhook(who);
  const parsed = parseWebhook(body, null);
  if (parsed.kind !== "event") throw new Error(`not an event: ${parsed.kind}`);
  return {
    ...parsed.event,
    receivedAt: T,
    deliveries: 3,
    gaveUpAt: null,
    pairedWith: null,
    recordAt: null,
  };
}

Deno.test("writeUnmatched: the entry is listed from `listedAt`, says the event, its attempts and a progress's percentage, and expires with it", async () => {
  await withKv(async (kv) => {
    const plan = new CommitPlan();
    writeUnmatched(plan, lone(LESSON_TOPIC), T + 60_000, 5_000_000);
    writeUnmatched(plan, lone(PROGRESS_TOPIC), T + 120_000, 6_000_000);
    assertEquals(
      plan.mutations.map((m) => [m.key, m.type === "set" ? m.expireIn : undefined]),
      [
        [unmatchedKey(T + 60_000, "A", `${LESSON_TOPIC}-1`), 5_000_000],
        [unmatchedKey(T + 120_000, "A", `${PROGRESS_TOPIC}-1`), 6_000_000],
      ],
    );
    assertEquals((await plan.applyTo(kv.atomic()).commit()).ok, true);
    const entry = (topic: HandledTopic, gaveUp: number, percentage: number | null) => ({
      event_id: `${topic}-1`,
      topic,
      tenant_id: "A",
      user_id: 1,
      course_id: 10,
      created_at: iso(T),
      attempts: 3,
      gave_up_at: iso(gaveUp),
      percentage_completed: percentage,
    });
    const now = (ms: number) => listUnmatched(kv, { limit: 10, now: ms });
    assertEquals((await now(T + 59_999)).events, []);
    assertEquals((await now(T + 60_000)).events, [entry(LESSON_TOPIC, T + 60_000, null)]);
    assertEquals((await now(T + 120_000)).events, [
      entry(LESSON_TOPIC, T + 60_000, null),
      entry(PROGRESS_TOPIC, T + 120_000, 40),
    ]);
  });
});

Deno.test("storeRecord: the record, its three index entries and its feed entry, and the unmatched entries its events' unlistedOf names", () => {
  const r = record("p1", T);
  const at = recordPositionOf(r);
  const keys = (plan: CommitPlan) =>
    plan.mutations.map((m) => `${m.type} ${JSON.stringify(m.key)}`);
  const alone = storeRecord(new CommitPlan(), r) as CommitPlan;
  assertEquals(keys(alone), [
    ...recordKeys(at, r.user_id, r.course_id).map((k) => `set ${JSON.stringify(k)}`),
    `set ${JSON.stringify(feedKey(feedPositionOf(r)))}`,
  ]);
  // A lesson listed at T + 5 s and a progress that gave up at T + 9 s; a third event never listed.
  const listed = { ...lone(LESSON_TOPIC), id: "l1", listedAt: T + 5_000, gaveUpAt: null };
  const gaveUp = { ...lone(PROGRESS_TOPIC), id: "p1", listedAt: undefined, gaveUpAt: T + 9_000 };
  const never = { ...lone(LESSON_TOPIC), id: "l2", listedAt: null, gaveUpAt: null };
  const unlisted = unlistedOf([listed, gaveUp, never]);
  assertEquals(unlisted, [[T + 5_000, "l1"], [T + 9_000, "p1"]]);
  assertEquals(unlistedOf([]), []);
  const plan = storeRecord(new CommitPlan(), r, unlisted) as CommitPlan;
  assertEquals(keys(plan), [
    `delete ${JSON.stringify(unmatchedKey(T + 5_000, r.tenant_id, "l1"))}`,
    `delete ${JSON.stringify(unmatchedKey(T + 9_000, r.tenant_id, "p1"))}`,
    ...keys(alone),
  ]);
});
