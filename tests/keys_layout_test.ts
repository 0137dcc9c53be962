/**
 * The KV key layout (lib/store/keys.ts): the keys are the stored format, read back by later deploys
 * from data kept for years, so each is pinned to the table in the module's documentation; and the
 * orders users rely on: an enrollment's events by time within a bounded range, the unmatched list
 * by listing time, the outbox by due and dead time, records by completion time under each filter,
 * learners by activity.
 */
import { assertEquals } from "./_assert.ts";
import {
  COURSE_COUNTER_PREFIX,
  COURSE_INFO_PREFIX,
  courseCounterKey,
  courseDayKey,
  courseDayPrefix,
  courseInfoKey,
  enrollmentKey,
  enrollmentsOfLearnerPrefix,
  erasedKey,
  eventBodyKey,
  eventIdKey,
  eventIdsOfLearnerPrefix,
  eventKey,
  eventRange,
  eventsOfLearnerPrefix,
  FEED_FENCE_KEY,
  FEED_PREFIX,
  feedKey,
  learnerActivityKey,
  learnerActivityPrefix,
  learnerEventIdKey,
  learnerKey,
  lessonCounterKey,
  lessonInfoKey,
  OUTBOX_DEAD_PREFIX,
  OUTBOX_DUE_PREFIX,
  OUTBOX_FLIGHT_PREFIX,
  outboxDeadKey,
  outboxDueKey,
  outboxFlightKey,
  outboxIdOf,
  outboxIdParts,
  outboxKey,
  PROJECTION_PREFIX,
  projectionKey,
  PROJECTOR_LEASE_KEY,
  recordEntries,
  recordKey,
  recordKeys,
  recordPlan,
  type RecordPosition,
  recordsOfUserPrefix,
  UNMATCHED_PREFIX,
  unmatchedKey,
} from "../lib/store/keys.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";

const who = { tenantId: "48213", userId: 5000049, courseId: 2100013 };
const position: RecordPosition = [1_700_000_000_000, "48213", "ev-9"];

/** Each key as built, and as the table of `lib/store/keys.ts` documents it. */
const LAYOUT: [string, Deno.KvKey, Deno.KvKey][] = [
  [
    "event",
    eventKey({ ...who, topic: "lesson.completed", at: 17, id: "ev-1" }),
    ["events", "48213", 5000049, 2100013, "lesson.completed", 17, "ev-1"],
  ],
  ["a learner's events", eventsOfLearnerPrefix("48213", 5000049), ["events", "48213", 5000049]],
  ["event body", eventBodyKey("48213", "ev-1"), ["event_bodies", "48213", "ev-1"]],
  ["event id pointer", eventIdKey("48213", "ev-1"), ["event_ids", "48213", "ev-1"]],
  [
    "a learner's event id",
    learnerEventIdKey("48213", 5000049, "ev-1"),
    ["learner_event_ids", "48213", 5000049, "ev-1"],
  ],
  [
    "a learner's event ids",
    eventIdsOfLearnerPrefix("48213", 5000049),
    ["learner_event_ids", "48213", 5000049],
  ],
  ["enrollment", enrollmentKey(who), ["enrollments", "48213", 5000049, 2100013]],
  [
    "a learner's enrollments",
    enrollmentsOfLearnerPrefix("48213", 5000049),
    ["enrollments", "48213", 5000049],
  ],
  ["unmatched list", UNMATCHED_PREFIX, ["unmatched"]],
  ["unmatched entry", unmatchedKey(42, "48213", "ev-1"), ["unmatched", 42, "48213", "ev-1"]],
  ["record", recordKey(position), ["records", "all", ...position]],
  ["a user's records", recordsOfUserPrefix(5000049), ["records", "u", 5000049]],
  ["feed", FEED_PREFIX, ["feed"]],
  ["feed entry", feedKey([99, "48213", "ev-9"]), ["feed", 99, "48213", "ev-9"]],
  ["feed fence", FEED_FENCE_KEY, ["feed_fence"]],
  ["projections", PROJECTION_PREFIX, ["projection"]],
  [
    "projection entry",
    projectionKey({ tenantId: "48213", userId: 5000049, courseId: 2100013 }, 3),
    ["projection", "48213", 5000049, 2100013, 3],
  ],
  ["projector lease", PROJECTOR_LEASE_KEY, ["projector"]],
  ["outbox entry", outboxKey("d:msg_1"), ["outbox", "d:msg_1"]],
  ["outbox due list", OUTBOX_DUE_PREFIX, ["outbox_due"]],
  ["outbox due entry", outboxDueKey(5, "d:msg_1"), ["outbox_due", 5, "d:msg_1"]],
  ["outbox dead list", OUTBOX_DEAD_PREFIX, ["outbox_dead"]],
  ["outbox dead entry", outboxDeadKey(6, "d:msg_1"), ["outbox_dead", 6, "d:msg_1"]],
  ["outbox flights", OUTBOX_FLIGHT_PREFIX, ["outbox_flight"]],
  ["outbox flight", outboxFlightKey(7, "f-1"), ["outbox_flight", 7, "f-1"]],
  ["course", courseInfoKey(2100013), ["dash_course", 2100013]],
  ["courses", COURSE_INFO_PREFIX, ["dash_course"]],
  ["course counters", COURSE_COUNTER_PREFIX, ["dash_course_n"]],
  [
    "course counter",
    courseCounterKey(2100013, "learners"),
    ["dash_course_n", 2100013, "learners"],
  ],
  ["course day", courseDayKey(2100013, 20_394), ["dash_course_day", 2100013, 20_394]],
  ["course days", courseDayPrefix(2100013), ["dash_course_day", 2100013]],
  ["lesson", lessonInfoKey(2100013, 24017), ["dash_lesson", 2100013, 24017]],
  ["lesson counter", lessonCounterKey(2100013, 24017), ["dash_lesson_n", 2100013, 24017]],
  ["learner", learnerKey(2100013, 5000049), ["learners", 2100013, 5000049]],
  ["learners by activity", learnerActivityPrefix(2100013), ["learners_by_activity", 2100013]],
  [
    "learner activity",
    learnerActivityKey(2100013, 88, 5000049),
    ["learners_by_activity", 2100013, 88, 5000049],
  ],
  ["erasure tombstone", erasedKey("48213", 5000049), ["erased", "48213", 5000049]],
];

Deno.test("keys: an outbox id gives back the destination and message id it was made of", () => {
  assertEquals(outboxIdOf("crm", "msg_48213_2026"), "crm:msg_48213_2026");
  assertEquals(outboxIdParts("crm:msg_48213_2026"), {
    destination: "crm",
    messageId: "msg_48213_2026",
  });
  // A destination name has no ":"; a message id is kept whole after the first one.
  assertEquals(outboxIdParts("d:a:b"), { destination: "d", messageId: "a:b" });
});

Deno.test("keys: every key is written as the documented layout reads it", () => {
  for (const [name, built, documented] of LAYOUT) assertEquals(built, documented, name);
  const record = { user_id: 5000049, course_id: 2100013 } as LessonProgressRecord;
  assertEquals(recordEntries(record, position), [
    [["records", "all", ...position], record],
    [["records", "t", "48213", ...position], null],
    [["records", "u", 5000049, ...position], 2100013],
    [["records", "c", 2100013, ...position], 5000049],
  ]);
  assertEquals(
    recordKeys(position, 5000049, 2100013),
    recordEntries(record, position).map((e) => e[0]),
  );
});

/** A KV holding `keys` (value: the key's index), and a lister of what a selector finds. */
async function kvWith(keys: Deno.KvKey[]) {
  const kv = await Deno.openKv(":memory:");
  for (const [i, key] of keys.entries()) await kv.set(key, i);
  const list = async (selector: Deno.KvListSelector) =>
    (await Array.fromAsync(kv.list<number>(selector))).map((e) => e.value);
  return { kv, list };
}

Deno.test("keys: an enrollment's event range holds that topic's events from `from` to `to`, both included", async () => {
  const at = (n: number, topic: "lesson.completed" | "enrollment.progress" = "lesson.completed") =>
    eventKey({ ...who, topic, at: n, id: `ev-${n}` });
  const { kv, list } = await kvWith([
    at(99), // 0: before
    at(100), // 1: from
    at(150), // 2
    at(200), // 3: to
    at(201), // 4: after
    at(150, "enrollment.progress"), // 5: another topic
    eventKey({ ...who, courseId: 7, topic: "lesson.completed", at: 150, id: "x" }), // 6
    eventKey({ ...who, userId: 8, topic: "lesson.completed", at: 150, id: "y" }), // 7
  ]);
  try {
    assertEquals(await list(eventRange(who, "lesson.completed", 100, 200)), [1, 2, 3]);
    assertEquals(await list(eventRange(who, "lesson.completed", 150, 150)), [2]);
    assertEquals(await list(eventRange(who, "enrollment.progress", 0, 1_000)), [5]);
    // A learner's prefix holds all their events, and only theirs.
    assertEquals(
      await list({ prefix: eventsOfLearnerPrefix(who.tenantId, who.userId) }),
      [6, 5, 0, 1, 2, 3, 4],
    );
  } finally {
    kv.close();
  }
});

Deno.test("keys: the unmatched list and the outbox's due and dead lists are in time order, apart", async () => {
  const { kv, list } = await kvWith([
    unmatchedKey(300, "a", "e1"), // 0
    unmatchedKey(100, "z", "e2"), // 1
    unmatchedKey(200, "m", "e3"), // 2
    outboxKey("d:m1"), // 3
    outboxDueKey(50, "d:m2"), // 4
    outboxDueKey(20, "d:m3"), // 5
    outboxDeadKey(70, "d:m4"), // 6
    outboxDeadKey(10, "d:m5"), // 7
    feedKey([30, "a", "e1"]), // 8
    feedKey([10, "b", "e2"]), // 9
    FEED_FENCE_KEY, // 10
  ]);
  try {
    assertEquals(await list({ prefix: UNMATCHED_PREFIX }), [1, 2, 0]);
    assertEquals(await list({ prefix: OUTBOX_DUE_PREFIX }), [5, 4]);
    assertEquals(await list({ prefix: OUTBOX_DEAD_PREFIX }), [7, 6]);
    assertEquals(await list({ prefix: ["outbox"] }), [3]);
    assertEquals(await list({ prefix: FEED_PREFIX }), [9, 8]);
  } finally {
    kv.close();
  }
});

Deno.test("keys: each record filter lists its records, and only those, by completion time", async () => {
  const records: [RecordPosition, number, number][] = [
    [[300, "s1", "p1"], 1, 10], // 0
    [[100, "s2", "p2"], 1, 10], // 1
    [[200, "s1", "p3"], 2, 10], // 2
    [[150, "s1", "p4"], 1, 20], // 3
    [[250, "s2", "p5"], 2, 20], // 4
  ];
  const kv = await Deno.openKv(":memory:");
  try {
    for (const [i, [pos, user, course]] of records.entries()) {
      const r = { user_id: user, course_id: course } as LessonProgressRecord;
      for (const [key, value] of recordEntries(r, pos)) {
        await kv.set(key, key[1] === "all" ? { ...r, i } : value);
      }
    }
    const find = async (filter: Parameters<typeof recordPlan>[0]) => {
      const { prefix, keep } = recordPlan(filter);
      const found: number[] = [];
      for await (const e of kv.list({ prefix })) {
        const pos = e.key.slice(prefix.length) as RecordPosition;
        if (!keep(pos, e.value)) continue;
        const index = records.findIndex(([p]) => p[2] === pos[2]);
        found.push(index);
      }
      return found;
    };
    assertEquals(await find({}), [1, 3, 2, 4, 0]);
    assertEquals(await find({ tenantId: "s1" }), [3, 2, 0]);
    assertEquals(await find({ userId: 1 }), [1, 3, 0]);
    assertEquals(await find({ userId: 1, tenantId: "s1" }), [3, 0]);
    assertEquals(await find({ userId: 1, courseId: 10 }), [1, 0]);
    assertEquals(await find({ userId: 2, courseId: 20, tenantId: "s2" }), [4]);
    assertEquals(await find({ courseId: 20 }), [3, 4]);
    assertEquals(await find({ courseId: 10, tenantId: "s2" }), [1]);
    // Erasing a record's keys (from what the user index holds) leaves none of its entries.
    for (const key of recordKeys(records[0][0], 1, 10)) await kv.delete(key);
    assertEquals(await find({}), [1, 3, 2, 4]);
    assertEquals(await find({ tenantId: "s1" }), [3, 2]);
    assertEquals(await find({ userId: 1 }), [1, 3]);
    assertEquals(await find({ courseId: 10 }), [1, 2]);
  } finally {
    kv.close();
  }
});

Deno.test("keys: a course's learners list newest activity last, its days in order, apart from other courses", async () => {
  const { kv, list } = await kvWith([
    learnerActivityKey(1, 500, 7), // 0
    learnerActivityKey(1, 100, 9), // 1
    learnerActivityKey(2, 300, 7), // 2
    courseDayKey(1, 20_001), // 3
    courseDayKey(1, 20_000), // 4
    courseDayKey(2, 19_999), // 5
    courseInfoKey(2), // 6
    courseInfoKey(1), // 7
    courseCounterKey(1, "learners"), // 8
  ]);
  try {
    assertEquals(await list({ prefix: learnerActivityPrefix(1) }), [1, 0]);
    assertEquals(await list({ prefix: courseDayPrefix(1) }), [4, 3]);
    assertEquals(await list({ prefix: COURSE_INFO_PREFIX }), [7, 6]);
    assertEquals(await list({ prefix: COURSE_COUNTER_PREFIX }), [8]);
  } finally {
    kv.close();
  }
});
