/**
 * Enrollment summaries: who counts as a course's learner, the previous percentage a record reports,
 * the bounded lists of progress, lessons and events stored without a pair, and how often a lesson's
 * learner counter was raised.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  countedLessons,
  countsAsLearner,
  previousPercentage,
  readEnrollment,
  saveEnrollment,
  withLesson,
  withLone,
  withProgress,
} from "../lib/store/enrollments.ts";
import { enrollmentKey, type EnrollmentSummary } from "../lib/store/keys.ts";
import {
  MAX_ENROLLMENT_LESSONS,
  MAX_ENROLLMENT_LONE,
  MAX_ENROLLMENT_PROGRESS,
} from "../lib/store/limits.ts";

const summary = (
  progress: [number, number][],
  lessons: number[] = [],
): EnrollmentSummary => ({ progress, lessons });

Deno.test("enrollments: a learner counts once they completed a lesson, not for progress alone", () => {
  assertEquals(countsAsLearner(null), false);
  assertEquals(countsAsLearner(summary([])), false);
  assertEquals(countsAsLearner(summary([[1, 50], [2, 60]])), false, "progress events only");
  assertEquals(countsAsLearner(summary([], [24017])), true);
  assertEquals(countsAsLearner(summary([[1, 50]], [24017, 24018])), true);
});

Deno.test("enrollments: the previous percentage is the latest one strictly before the event", () => {
  const s = summary([[1_000, 10], [2_000, 25], [3_000, 40]]);
  assertEquals(previousPercentage(null, 5_000), null);
  assertEquals(previousPercentage(summary([]), 5_000), null);
  assertEquals(previousPercentage(s, 1_000), null, "nothing strictly before the first");
  assertEquals(previousPercentage(s, 1_001), 10);
  assertEquals(previousPercentage(s, 3_000), 25, "not the event's own time");
  assertEquals(previousPercentage(s, 3_001), 40);
  // Whatever the order they are listed in, the latest time wins; at one time, the last listed.
  assertEquals(previousPercentage(summary([[3_000, 40], [1_000, 10], [2_000, 25]]), 9_000), 40);
  assertEquals(previousPercentage(summary([[2_000, 25], [2_000, 30]]), 9_000), 30);
  assertEquals(previousPercentage(summary([[2_000, 0]]), 9_000), 0, "a 0% progress is a value");
});

Deno.test("enrollments: progress is kept in time order, the latest 24, lessons untouched", () => {
  const first = withProgress(null, 5_000, 30);
  assertEquals(first, { progress: [[5_000, 30]], lessons: [] });
  const s = withProgress(summary([[1_000, 10], [9_000, 90]], [7, 8]), 5_000, 50);
  assertEquals(s, { progress: [[1_000, 10], [5_000, 50], [9_000, 90]], lessons: [7, 8] });

  let full: EnrollmentSummary | null = null;
  for (let i = MAX_ENROLLMENT_PROGRESS + 3; i >= 1; i--) full = withProgress(full, i * 1_000, i);
  assert(full);
  assertEquals(full.progress.length, MAX_ENROLLMENT_PROGRESS);
  assertEquals(full.progress[0], [4_000, 4], "the oldest ones dropped");
  assertEquals(full.progress.at(-1), [(MAX_ENROLLMENT_PROGRESS + 3) * 1_000, 27]);
  assertEquals(MAX_ENROLLMENT_PROGRESS, 24);
});

Deno.test("enrollments: a lesson is new once; the summary keeps the latest 200 lessons", () => {
  const first = withLesson(null, 101);
  assertEquals(first, { summary: { progress: [], lessons: [101] }, firstTime: true });
  const progress: [number, number][] = [[1_000, 10]];
  const second = withLesson(summary(progress, [101]), 102);
  assertEquals(second, { summary: { progress, lessons: [101, 102] }, firstTime: true });
  const again = withLesson(second.summary, 101);
  assertEquals(again, { summary: { progress, lessons: [101, 102] }, firstTime: false });

  let s: EnrollmentSummary | null = null;
  for (let l = 1; l <= MAX_ENROLLMENT_LESSONS + 1; l++) s = withLesson(s, l).summary;
  assert(s);
  assertEquals(s.lessons.length, MAX_ENROLLMENT_LESSONS);
  assertEquals([s.lessons[0], s.lessons.at(-1)], [2, MAX_ENROLLMENT_LESSONS + 1]);
  assertEquals(MAX_ENROLLMENT_LESSONS, 200);
  // Lesson 1 fell out of the summary: completing it again is new again.
  assertEquals(withLesson(s, 1).firstTime, true);
  assertEquals(withLesson(s, 2).firstTime, false);
});

Deno.test("enrollments: a lesson's counter was raised once per time it was new to the learner", () => {
  assertEquals(countedLessons([]), new Map());
  assertEquals(countedLessons([5, 6, 5, 5, 7]), new Map([[5, 1], [6, 1], [7, 1]]));
  // 201 distinct lessons push lesson 1000 out of the summary; completed again, it counted twice.
  const lessons = Array.from({ length: MAX_ENROLLMENT_LESSONS + 1 }, (_, i) => 1000 + i);
  const counted = countedLessons([...lessons, 1000, 1001]);
  assertEquals(counted.get(1000), 2);
  assertEquals(counted.get(1001), 2, "1001 fell out when 1000 came back");
  assertEquals(counted.get(1002), 1);
  assertEquals(counted.size, MAX_ENROLLMENT_LESSONS + 1);
});

Deno.test("enrollments: a summary is saved under its enrollment, checked against what was read", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const who = { tenantId: "48213", userId: 5000049, courseId: 2100013 };
    const empty = await readEnrollment(kv, who);
    assertEquals([empty.key, empty.value], [enrollmentKey(who), null]);
    const next = summary([[1_000, 10]], [24017]);
    const save = kv.atomic();
    saveEnrollment(save, empty, next);
    assert((await save.commit()).ok);
    const read = await readEnrollment(kv, who);
    assertEquals(read.value, next);
    assertEquals((await kv.get(["enrollments", "48213", 5000049, 2100013])).value, next);
    // Another learner, school or course is another summary.
    for (
      const other of [{ ...who, userId: 1 }, { ...who, tenantId: "9" }, { ...who, courseId: 3 }]
    ) {
      assertEquals((await readEnrollment(kv, other)).value, null);
    }
    // A save from the stale read loses: the summary is not overwritten.
    const stale = kv.atomic();
    saveEnrollment(stale, empty, summary([]));
    assertEquals((await stale.commit()).ok, false);
    assertEquals((await readEnrollment(kv, who)).value, next);
  } finally {
    kv.close();
  }
});

Deno.test("enrollments: the events stored without a pair are listed until paired or their pointers expire, 8 at most", () => {
  assertEquals(MAX_ENROLLMENT_LONE, 8);
  const base = summary([[1, 10]], [3]);
  const now = 1_000;
  // No list and nothing to add: the summary is left as it is, with no list.
  const same = withLone(base, now, ["x"]);
  assertEquals([same.summary, same.kept], [base, false]);
  assert(!("lone" in same.summary));
  // Added while there is room; the rest of the summary untouched.
  const one = withLone(base, now, [], ["a", 5_000]);
  assertEquals([one.summary, one.kept], [{ ...base, lone: [["a", 5_000]] }, true]);
  // Expired (until <= now) and paired ids go; the others stay in order.
  const listed: EnrollmentSummary = {
    ...base,
    lone: [["old", 1_000], ["a", 5_000], ["b", 1_001], ["c", 9_000]],
  };
  const table: [string[], [string, number] | undefined, [string, number][], boolean][] = [
    [[], undefined, [["a", 5_000], ["b", 1_001], ["c", 9_000]], false],
    [["a", "zz"], undefined, [["b", 1_001], ["c", 9_000]], false],
    [["c"], ["d", 7_000], [["a", 5_000], ["b", 1_001], ["d", 7_000]], true],
  ];
  for (const [paired, add, lone, kept] of table) {
    const got = withLone(listed, now, paired, add);
    assertEquals([got.summary.lone, got.kept], [lone, kept], JSON.stringify([paired, add]));
    assertEquals(listed.lone?.length, 4, "the summary read is not changed");
  }
  // Full: an id more is not listed (the learner's index takes it), until one leaves the list.
  const ids = Array.from({ length: 8 }, (_, i) => [`e${i}`, 9_000] as [string, number]);
  const full: EnrollmentSummary = { ...base, lone: ids };
  const over = withLone(full, now, [], ["e8", 9_000]);
  assertEquals([over.summary.lone, over.kept], [ids, false]);
  const room = withLone(full, now, ["e0"], ["e8", 9_000]);
  assertEquals([room.summary.lone?.length, room.kept], [8, true]);
  assertEquals(room.summary.lone?.at(-1), ["e8", 9_000]);
});
