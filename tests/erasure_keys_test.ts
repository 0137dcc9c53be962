/**
 * Erasure, key by key: the tombstone and its time, outbox entries in every state and for every
 * destination, another school's learner with the same user id, a second erasure racing the first,
 * and a history far longer than one commit can hold (counters lowered exactly, in bounded commits).
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, dump, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { countingKv } from "./_committer.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import { factsOf, handRecord } from "./_records.ts";
import { eraseLearner, isErased, type Removed } from "../lib/store/erasure.ts";
import { saveEnrollment } from "../lib/store/enrollments.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";
import {
  courseCounterKey,
  courseDayKey,
  enrollmentKey,
  erasedKey,
  FEED_FENCE_KEY,
  learnerActivityKey,
  lessonCounterKey,
} from "../lib/store/keys.ts";
import { addLearnerProgress, learnerProgress, listLearners } from "../lib/store/learners.ts";
import { projectPending } from "../lib/store/projections.ts";
import { addOutboxEntries, leaseDue, settle } from "../lib/store/outbox.ts";
import { placeRecord, recentRecords, storeRecord } from "../lib/store/records.ts";
import { addCompletion, addLearner, courseDetail, courseLessons } from "../lib/store/stats.ts";

const T = BASE_TIME;
const A = { tenantId: "48213", userId: 1 };
const none: Removed = {
  events: 0,
  records: 0,
  enrollments: 0,
  learner_entries: 0,
  unmatched: 0,
  outbox: 0,
};

/** Posts a lesson and its progress for `user` of `tenant` (a record), checking it collated. */
async function pair(
  h: Awaited<ReturnType<typeof harness>>,
  who: { tenant?: string; user: number; course: number },
  lesson: number,
  at: number,
) {
  await h.post(lessonWebhook({ ...who, lesson, at }));
  const r = await h.post(progressWebhook({ ...who, at }));
  assertEquals(r.json.status, "collated");
}

Deno.test("erasure: the tombstone keeps the first erasure's time and names only that learner", async () => {
  const h = await harness();
  try {
    assertEquals(await isErased(h.kv, A), false);
    const first = Date.parse("2026-11-30T08:00:00.000Z");
    assertEquals(await eraseLearner(h.kv, A, { destinations: [], now: first }), none);
    assertEquals(await isErased(h.kv, A), true);
    assertEquals(await isErased(h.kv, { tenantId: "48213", userId: 2 }), false);
    assertEquals(await isErased(h.kv, { tenantId: "777", userId: 1 }), false);
    const tombstone = { erased_at: "2026-11-30T08:00:00.000Z" };
    assertEquals((await h.kv.get(erasedKey("48213", 1))).value, tombstone);
    await eraseLearner(h.kv, A, { destinations: [], now: first + 86_400_000 });
    assertEquals((await h.kv.get(erasedKey("48213", 1))).value, tombstone, "not rewritten");
    // Their deliveries are refused from now on; another learner's are not.
    assertEquals((await h.post(lessonWebhook({ user: 1 }))).json.status, "erased");
    assertEquals((await h.post(lessonWebhook({ user: 2 }))).json.status, "stored");
  } finally {
    h.close();
  }
});

Deno.test("erasure: outbox entries go whatever their state; a destination without any is skipped", async () => {
  const h = await harness();
  try {
    for (const [user, lesson] of [[1, 1], [1, 2], [1, 3], [2, 1]]) {
      await pair(h, { user, course: 10 }, lesson, T + lesson * 60_000 + user);
    }
    const now = h.clock.now;
    // Projected with no destination: the outbox entries below are made by hand.
    await projectPending(h.kv, { destinations: [], now });
    const records = await recentRecords(h.kv, {}, 10);
    assertEquals(records.length, 4);
    for (const r of records) {
      const op = h.kv.atomic();
      addOutboxEntries(op, r, ["webhook"], now);
      assert((await op.commit()).ok);
    }
    // User 1: one entry delivered, one dead, one still pending (leased). User 2's entry: dead.
    const { leased } = await leaseDue(h.kv, now, { limit: 10, take: () => true });
    assertEquals(leased.length, 4);
    const of = (user: number, lesson: number) =>
      leased.find((l) => l.value.record.user_id === user && l.value.record.lesson_id === lesson)!;
    const dead = (user: number, lesson: number) => ({
      leased: of(user, lesson),
      outcome: "failed" as const,
      error: "410 Gone",
      retryInMs: null,
    });
    const settlements = [
      { leased: of(1, 1), outcome: "delivered" as const },
      dead(1, 2),
      dead(2, 1),
    ];
    assertEquals(await settle(h.kv, settlements, now, 86_400_000), 3);

    const removed = await eraseLearner(h.kv, A, { destinations: ["webhook", "archive"], now });
    assertEquals(removed, {
      ...none,
      events: 6,
      records: 3,
      outbox: 3,
      enrollments: 1,
      learner_entries: 1,
    });
    const keys = (await dump(h.kv)).filter((e) => String(e.key[0]).startsWith("outbox"));
    const kept = `webhook:${of(2, 1).value.messageId}`;
    assertEquals(keys.map((e) => [e.key[0], e.key.at(-1)]), [
      ["outbox", kept],
      ["outbox_dead", kept],
    ]);
  } finally {
    h.close();
  }
});

Deno.test("erasure: another school's learner with the same user id keeps everything, same course too", async () => {
  const h = await harness();
  try {
    // Course ids are Thinkific-wide, but nothing stops a clash: school 777's user 1, in course 10
    // after school 48213's user 1 (the course's learner entry of user 1 is now 777's).
    await pair(h, { user: 1, course: 10 }, 1, T);
    await pair(h, { user: 1, course: 10 }, 2, T + 60_000);
    await pair(h, { tenant: "777", user: 1, course: 10 }, 2, T + 120_000);
    await pair(h, { tenant: "777", user: 1, course: 10 }, 3, T + 180_000);
    await h.project();
    const lessons = async () =>
      (await courseLessons(h.kv, 10)).map((l) => [l.lesson_id, l.learners]);
    assertEquals(await lessons(), [[1, 1], [2, 2], [3, 1]]);
    assertEquals((await courseDetail(h.kv, 10, h.clock.now))?.course.learners, 2);

    const removed = await eraseLearner(h.kv, A, { destinations: [], now: h.clock.now });
    assertEquals(removed, { ...none, events: 4, records: 2, enrollments: 1 });
    assertEquals(await lessons(), [[1, 0], [2, 1], [3, 1]]);
    const detail = await courseDetail(h.kv, 10, h.clock.now);
    assertEquals([detail?.course.learners, detail?.course.completions], [1, 2]);
    const listed = await listLearners(h.kv, 10, { limit: 10 });
    assertEquals(
      listed.learners.map((l) => [l.tenant_id, l.user_id, l.lessons_completed]),
      [["777", 1, 2]],
    );
    const theirs = await recentRecords(h.kv, { userId: 1 }, 10);
    assertEquals(theirs.map((r) => [r.tenant_id, r.lesson_id]), [["777", 3], ["777", 2]]);
  } finally {
    h.close();
  }
});

Deno.test("erasure: two erasures at once report each record once and lower each counter once", async () => {
  const h = await harness();
  try {
    await pair(h, { user: 1, course: 10 }, 1, T);
    await pair(h, { user: 1, course: 10 }, 2, T + 60_000);
    await pair(h, { user: 2, course: 10 }, 1, T + 120_000);
    await h.project();
    // The rival erasure runs to its end while the first holds its records batch, read but not
    // committed (the commit that follows reading the records).
    const calls: KvCall[] = [];
    let rival: Removed | null = null;
    const kv = instrumentKv(h.kv, {
      before: (call) => void calls.push(call),
      holdCommit: async () => {
        if (rival === null && calls.slice(-4, -1).join(" ") === "getMany list getMany") {
          rival = await eraseLearner(h.kv, A, { destinations: ["webhook"], now: h.clock.now });
        }
      },
    });
    const first = await eraseLearner(kv, A, { destinations: ["webhook"], now: h.clock.now });
    assert(rival !== null, "the rival ran");
    const both = Object.fromEntries(
      Object.entries(first).map(([k, n]) => [k, n + rival![k as keyof Removed]]),
    );
    assertEquals(both, { ...none, events: 4, records: 2, enrollments: 1, learner_entries: 1 });
    const detail = await courseDetail(h.kv, 10, h.clock.now);
    assertEquals([detail?.course.learners, detail?.course.completions], [1, 1]);
    assertEquals(detail?.lessons.map((l) => [l.lesson_id, l.learners]), [[1, 1], [2, 0]]);
  } finally {
    h.close();
  }
});

/**
 * Stores a learner's records in collation order as the collator does: each record with its
 * completion counted, and its lesson's learner counter raised when `counted` says it was new to
 * the learner; then the enrollment summary `lessons`, the course's learner count, their entry.
 */
async function storeHistory(
  kv: Deno.Kv,
  records: LessonProgressRecord[],
  counted: (r: LessonProgressRecord, i: number) => boolean,
  lessons: number[],
) {
  const fence = { key: FEED_FENCE_KEY, value: null, versionstamp: null };
  for (const [i, r] of records.entries()) {
    const op = kv.atomic();
    placeRecord(op, r, fence);
    storeRecord(op, r);
    addCompletion(op, r, counted(r, i) ? factsOf(r) : null);
    assert((await op.commit()).ok);
  }
  const last = records.at(-1)!;
  const op = kv.atomic();
  const summary = { progress: [], lessons };
  saveEnrollment(
    op,
    await kv.get(enrollmentKey({ ...A, userId: last.user_id, courseId: 10 })),
    summary,
  );
  addLearner(op, { tenant_id: "48213", course_id: 10, course_name: "Course 10" });
  addLearnerProgress(op, last, learnerProgress(last, null, summary));
  assert((await op.commit()).ok);
}

/** The database to compare: no tombstone, no zero counter, course and lesson names as `names`. */
async function comparable(kv: Deno.Kv, names?: Set<string>) {
  return (await dump(kv))
    .filter((e) => e.key[0] !== "erased")
    .filter((e) => !(e.value instanceof Deno.KvU64 && e.value.value === 0n))
    .filter((e) => !names || e.key[0] !== "dash_lesson" || names.has(JSON.stringify(e.key)))
    .map((e) => [e.key, e.value instanceof Deno.KvU64 ? e.value.value : e.value]);
}

Deno.test("erasure: a history longer than a commit holds is erased in bounded commits, counts exact", async () => {
  const { kv, real, calls } = await countingKv();
  const other = await Deno.openKv(":memory:");
  try {
    // User 2: lessons 1 and 2. Stored alike in both databases.
    const theirs = [
      handRecord({ user: 2, lesson: 1 }),
      handRecord({ user: 2, lesson: 2, at: T + 1 }),
    ];
    for (const db of [real, other]) await storeHistory(db, theirs, () => true, [1, 2]);
    // User 1: 1,001 distinct lessons, then lesson 1 again, completed early (between lessons 1 and
    // 2) but collated last: by then lesson 1 had left the summary's 200, so it counted twice.
    const n = 1001;
    const mine = Array.from(
      { length: n },
      (_, i) => handRecord({ lesson: i + 1, at: T + i * 1000 }),
    );
    mine.push(handRecord({ lesson: 1, at: T + 500, collatedAt: T + n * 1000 }));
    const summary = [...Array.from({ length: 199 }, (_, i) => n - 198 + i), 1];
    await storeHistory(real, mine, (r, i) => r.lesson_id !== 1 || i === 0 || i === n, summary);
    // And 1,001 activity index keys left behind by progress that never made a record.
    for (let i = 0; i < n; i += 500) {
      const op = real.atomic();
      for (let k = i; k < Math.min(i + 500, n); k++) {
        op.set(learnerActivityKey(10, T - (k + 1) * 60_000, 1), null);
      }
      await op.commit();
    }
    const counter = async (key: Deno.KvKey) => (await real.get<Deno.KvU64>(key)).value?.value ?? 0n;
    assertEquals(await counter(lessonCounterKey(10, 1)), 3n, "twice user 1, once user 2");
    assertEquals(await counter(courseCounterKey(10, "learners")), 2n);

    calls.commit = 0;
    const removed = await eraseLearner(kv, A, { destinations: [], now: T + 86_400_000 });
    assertEquals(removed, { ...none, records: n + 1, enrollments: 1, learner_entries: 1 });
    // One commit per 25 keys or counters at most (3,000 of them here), none over Deno KV's limits.
    assert(calls.commit <= 3 * n / 25, `${calls.commit} commits`);
    assertEquals(await counter(lessonCounterKey(10, 1)), 1n);
    assertEquals(await counter(courseDayKey(10, Math.floor(T / 86_400_000))), 2n);

    const expected = await comparable(other);
    assertEquals(
      await comparable(real, new Set(expected.map(([k]) => JSON.stringify(k)))),
      expected,
    );
  } finally {
    real.close();
    other.close();
  }
});
