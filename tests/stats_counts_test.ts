/**
 * Dashboard counters as the dashboard reads them back: learners, completions per day and in the
 * last 7 and 30 days, lessons with their learners, unmatched events, pages of courses, course
 * names, and the backlog gauges.
 */
import { z } from "zod";
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook, withKv } from "./_helpers.ts";
import { handRecord, lessonInfo, type RecordSpec } from "./_records.ts";
import { cursorSchema } from "../lib/store/_page.ts";
import {
  type CourseInfo,
  courseInfoKey,
  outboxDueKey,
  type UnmatchedEntry,
  unmatchedKey,
} from "../lib/store/keys.ts";
import {
  addCompletion,
  addCourse,
  addLearner,
  backlog,
  courseDetail,
  courseInfo,
  courseLessons,
  courseNames,
  courseOrder,
  courseOverview,
  coursePage,
  DAY_MS,
  OUTBOX_COUNT_CAP,
} from "../lib/store/stats.ts";

const DAY = 86_400_000;

const course = (id: number, tenant = "48213"): CourseInfo => ({
  tenant_id: tenant,
  course_id: id,
  course_name: `Course ${id}`,
});

/** Commits what `build` adds to one atomic operation. */
function apply(kv: Deno.Kv, build: (op: Deno.AtomicOperation) => unknown) {
  const op = kv.atomic();
  build(op);
  return op.commit();
}

/**
 * Commits the counters of a record (`firstTime`: its lesson was new to the learner, at
 * `lesson.lessonPosition` in its course), its chapter `lesson.chapterId` if given.
 */
function complete(
  kv: Deno.Kv,
  spec: RecordSpec,
  firstTime: boolean,
  lesson: { lessonPosition?: number; chapterId?: number } = {},
) {
  const r = handRecord(spec);
  if (lesson.chapterId !== undefined) r.chapter_id = lesson.chapterId;
  const first = { lessonPosition: lesson.lessonPosition ?? null };
  return apply(kv, (op) => addCompletion(op, r, firstTime ? first : null));
}

Deno.test("stats: completions count per UTC day; the 7 and 30 days end today, edges included", async () => {
  await withKv(async (kv) => {
    assertEquals(DAY_MS, DAY);
    const now = Date.parse("2026-11-29T12:00:00.000Z");
    const midnight = Date.parse("2026-11-29T00:00:00.000Z");
    await apply(kv, (op) => addCourse(op, course(10)));
    // n completions `daysAgo` days before today: 1 today (just after midnight), 2 six days ago,
    // 4 seven days ago, 8 twenty-nine days ago, 16 thirty days ago, 32 tomorrow (a clock ahead).
    for (const [daysAgo, n] of [[0, 1], [6, 2], [7, 4], [29, 8], [30, 16], [-1, 32]]) {
      for (let i = 0; i < n; i++) {
        const at = midnight - daysAgo * DAY + i;
        await complete(kv, { course: 10, at }, false);
      }
    }
    // Another course's completions are its own.
    await complete(kv, { course: 11, at: now }, true);
    const detail = await courseDetail(kv, 10, now);
    assert(detail);
    const c = detail.course;
    assertEquals([c.completions, c.last7Days, c.last30Days], [63, 3, 15]);
    // A completion a millisecond before midnight is yesterday's: still in both windows.
    await complete(kv, { course: 10, at: midnight - 1 }, false);
    const later = (await courseDetail(kv, 10, now))!.course;
    assertEquals([later.completions, later.last7Days, later.last30Days], [64, 4, 16]);
    // Not first-time completions: no lesson listed, no learner counted.
    assertEquals(detail.lessons, []);
    assertEquals([c.learners, c.unmatched, c.lastActivity], [0, 0, null]);
    assertEquals(c.course_name, "Course 10");
  });
});

Deno.test("stats: a lesson is listed with its facts and counted once per learner new to it", async () => {
  await withKv(async (kv) => {
    const at = BASE_TIME;
    await complete(kv, { lesson: 5, at }, true, { lessonPosition: 3, chapterId: 70 });
    await complete(kv, { lesson: 5, at }, true, { lessonPosition: 3, chapterId: 70 });
    await complete(kv, { lesson: 5, at }, false, { lessonPosition: 3, chapterId: 70 });
    await complete(kv, { lesson: 6, at }, true, { chapterId: 70 });
    await apply(kv, (op) => addCourse(op, course(10)));
    assertEquals(await courseLessons(kv, 10), [
      {
        lesson_id: 5,
        lesson_name: "Lesson 5",
        lesson_type: "Video",
        position: 3,
        chapter_id: 70,
        chapter_name: "Chapter 1",
        learners: 2,
      },
      {
        lesson_id: 6,
        lesson_name: "Lesson 6",
        lesson_type: "Video",
        position: null,
        chapter_id: 70,
        chapter_name: "Chapter 1",
        learners: 1,
      },
    ]);
    const detail = await courseDetail(kv, 10, at);
    assertEquals(detail?.lessons.map((l) => [l.lesson_id, l.learners]), [[5, 2], [6, 1]]);
    assertEquals(detail?.course.completions, 4);
    assertEquals(await courseLessons(kv, 11), [], "another course has none");
  });
});

Deno.test("stats: many lessons keep their own learner counts, in course order", async () => {
  await withKv(async (kv) => {
    // 23 lessons (more than one read batch), lesson n completed by n learners, listed backwards.
    for (let n = 23; n >= 1; n--) {
      for (let i = 0; i < n; i++) {
        await complete(kv, { lesson: n }, true, { lessonPosition: 100 - n });
      }
    }
    await complete(kv, { course: 12, lesson: 50 }, true);
    const lessons = await courseLessons(kv, 10);
    const expected = Array.from({ length: 23 }, (_, i) => 23 - i);
    assertEquals(lessons.map((l) => l.lesson_id), expected, "by position");
    assertEquals(lessons.map((l) => l.learners), expected);
  });
});

Deno.test("stats: a course's learners are its counter; an unknown course has no detail", async () => {
  await withKv(async (kv) => {
    assertEquals(await courseInfo(kv, 10), null);
    assertEquals(await courseDetail(kv, 10, BASE_TIME), null);
    await apply(kv, (op) => addLearner(op, course(10)));
    await apply(kv, (op) => addLearner(op, course(10)));
    await apply(kv, (op) => addLearner(op, course(11)));
    await apply(kv, (op) => addCourse(op, course(12, "777")));
    assertEquals(await courseInfo(kv, 10), course(10));
    assertEquals(await courseInfo(kv, 12), course(12, "777"));
    const overview = await courseOverview(kv, BASE_TIME);
    assertEquals(
      overview.map((c) => [c.course_id, c.tenant_id, c.learners]).sort(),
      [[10, "48213", 2], [11, "48213", 1], [12, "777", 0]],
    );
    // A course seen again keeps its counter (its info is rewritten, not its learners).
    await apply(kv, (op) => addCourse(op, { ...course(10), course_name: "Renamed" }));
    const detail = await courseDetail(kv, 10, BASE_TIME);
    assertEquals([detail?.course.course_name, detail?.course.learners], ["Renamed", 2]);
  });
});

Deno.test("stats: the overview lists courses newest activity first, with their unmatched events", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    const now = h.clock.now;
    const pair = async (user: number, courseId: number, at: number) => {
      await h.post(lessonWebhook({ user, course: courseId, at }));
      const r = await h.post(progressWebhook({ user, course: courseId, at }));
      assertEquals(r.json.status, "collated");
    };
    await pair(1, 10, now - 3 * DAY);
    await pair(2, 10, now - 5 * DAY); // older: course 10's latest activity stays 3 days ago
    await pair(1, 20, now - DAY);
    await pair(1, 30, now - 2 * DAY);
    // Course 5 (listed first by id): only a progress that gave up (no record, no activity), twice.
    await h.deliver(progressWebhook({ user: 3, course: 5, at: now - DAY }));
    await h.deliver(progressWebhook({ user: 4, course: 5, at: now - DAY }));
    await h.deliver(progressWebhook({ user: 6, course: 40, at: now - DAY })); // and course 40
    await h.deliver(progressWebhook({ user: 5, course: 10, at: now - DAY }));
    await h.project();

    const overview = await courseOverview(h.kv, h.clock.now); // after the give-ups
    assertEquals(
      overview.map((c) => [c.course_id, c.lastActivity, c.unmatched, c.learners]),
      [
        [20, new Date(now - DAY).toISOString(), 0, 1],
        [30, new Date(now - 2 * DAY).toISOString(), 0, 1],
        [10, new Date(now - 3 * DAY).toISOString(), 1, 2],
        [5, null, 2, 0],
        [40, null, 1, 0],
      ],
    );
    // The unmatched count is of events listed by `now`: before the first gave up, none were.
    const before = await courseOverview(h.kv, now);
    assertEquals(before.map((c) => c.unmatched), [0, 0, 0, 0, 0]);
    const detail = await courseDetail(h.kv, 5, h.clock.now);
    assertEquals([detail?.course.unmatched, detail?.course.learners], [2, 0]);
    const page = await coursePage(h.kv, { limit: 10, now: h.clock.now });
    assertEquals(page.courses.map((c) => [c.course_id, c.unmatched]), [
      [5, 2],
      [10, 1],
      [20, 0],
      [30, 0],
      [40, 1],
    ]);
    assertEquals((await backlog(h.kv)).unmatched, 4);
  } finally {
    h.close();
  }
});

Deno.test("stats: courses come in pages of the limit, in id order, one school's when asked", async () => {
  await withKv(async (kv) => {
    // 24 courses: even ids of school A, odd of school B.
    for (let id = 1; id <= 24; id++) {
      await apply(kv, (op) => addLearner(op, course(id, id % 2 ? "B" : "A")));
    }
    const now = BASE_TIME;
    const first = await coursePage(kv, { limit: 5, now });
    assertEquals(first.courses.map((c) => c.course_id), [1, 2, 3, 4, 5]);
    assert(first.cursor);
    // The cursor is the courses listing's, at the page's last course.
    assertEquals(cursorSchema("courses", z.tuple([z.number()])).parse(first.cursor), [5]);
    const next = await coursePage(kv, { limit: 5, after: [5], now });
    assertEquals(next.courses.map((c) => c.course_id), [6, 7, 8, 9, 10]);
    const last = await coursePage(kv, { limit: 5, after: [20], now });
    assertEquals(last.courses.map((c) => c.course_id), [21, 22, 23, 24]);
    assertEquals(last.cursor, null);
    // A page larger than one read batch: every course summarised, with its counter.
    const all = await coursePage(kv, { limit: 30, now });
    assertEquals(all.courses.map((c) => c.course_id), Array.from({ length: 24 }, (_, i) => i + 1));
    assert(all.courses.every((c) => c.learners === 1 && c.completions === 0));
    assertEquals(all.cursor, null);
    const a = await coursePage(kv, { limit: 30, tenantId: "A", now });
    assertEquals(
      a.courses.map((c) => c.course_id),
      Array.from({ length: 12 }, (_, i) => 2 * i + 2),
    );
    assert(a.courses.every((c) => c.tenant_id === "A"));
    const b = await coursePage(kv, { limit: 3, tenantId: "B", after: [7], now });
    assertEquals(b.courses.map((c) => c.course_id), [9, 11, 13]);
  });
});

Deno.test("stats: course names for the ids the dashboard knows, each id once", async () => {
  await withKv(async (kv) => {
    for (let id = 1; id <= 15; id++) await apply(kv, (op) => addCourse(op, course(id)));
    assertEquals(await courseNames(kv, []), new Map());
    const names = await courseNames(kv, [3, 99, 3, ...Array.from({ length: 15 }, (_, i) => i + 1)]);
    assertEquals(names.size, 15);
    assertEquals([names.get(3), names.get(15), names.has(99)], ["Course 3", "Course 15", false]);
    assertEquals((await kv.get(courseInfoKey(99))).value, null);
  });
});

Deno.test("stats: the backlog counts listed unmatched events and pending outbox entries, capped", async () => {
  await withKv(async (kv) => {
    assertEquals(await backlog(kv), { unmatched: 0, outboxPending: 0 });
    const entry = (id: string, courseId: number): UnmatchedEntry => ({
      event_id: id,
      topic: "enrollment.progress",
      tenant_id: "48213",
      user_id: 1,
      course_id: courseId,
      created_at: new Date(BASE_TIME).toISOString(),
      attempts: 2,
      gave_up_at: new Date(BASE_TIME).toISOString(),
    });
    const past = Date.now() - DAY;
    await kv.set(unmatchedKey(past, "48213", "a"), entry("a", 10));
    await kv.set(unmatchedKey(past, "48213", "b"), entry("b", 10));
    await kv.set(unmatchedKey(past, "48213", "c"), entry("c", 11));
    // Listed only tomorrow (a lesson still within the unmatched horizon): not yet a backlog.
    await kv.set(unmatchedKey(Date.now() + DAY, "48213", "d"), entry("d", 11));
    for (let i = 0; i < 3; i++) await kv.set(outboxDueKey(BASE_TIME + i, `webhook:${i}`), "x");
    await kv.set(["outbox", "webhook:9"], "not a due entry");
    assertEquals(await backlog(kv), { unmatched: 3, outboxPending: 3 });

    assertEquals(OUTBOX_COUNT_CAP, 10_000);
    for (let i = 3; i <= OUTBOX_COUNT_CAP; i += 1000) {
      const op = kv.atomic();
      for (let j = i; j < Math.min(i + 1000, OUTBOX_COUNT_CAP + 1); j++) {
        op.set(outboxDueKey(BASE_TIME + j, `webhook:${j}`), "x");
      }
      await op.commit();
    }
    assertEquals((await backlog(kv)).outboxPending, OUTBOX_COUNT_CAP, "10,001 pending, capped");
  });
});

Deno.test("stats: chapters come in the order of their first lesson's position, lessons by position", () => {
  const l = lessonInfo;
  // Chapter 9 starts at position 1 (its lessons 30 and 10 at 1 and 8), chapter 2 at position 3;
  // chapter 5's lessons have no position (last, by lesson id); 4 and 3 share chapter 4's place.
  const ordered = courseOrder([
    l(20, 2, 3),
    l(10, 9, 8),
    l(77, 5, null),
    l(30, 9, 1),
    l(21, 2, 4),
    l(66, 5, null),
    l(55, 5, null),
    l(4, 4, 5),
    l(3, 4, 5),
  ]);
  assertEquals(ordered.map((x) => x.lesson_id), [30, 10, 20, 21, 3, 4, 55, 66, 77]);
});
