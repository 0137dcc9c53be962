/**
 * The learners index: the entry a record writes (latest progress, its percentage, lessons done),
 * the index key it moves, every key of a learner found for an erasure, and pages of many learners
 * with keys left behind among them.
 */
import { z } from "zod";
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, dump, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import { handRecord as record } from "./_records.ts";
import { cursorSchema } from "../lib/store/_page.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { type EnrollmentSummary, learnerActivityKey } from "../lib/store/keys.ts";
import {
  addLearnerProgress,
  learnerActivityKeys,
  type LearnerPosition,
  learnerProgress,
  listLearners,
} from "../lib/store/learners.ts";

const T = BASE_TIME;
const COURSE = 2100013;

/** The index keys of `course`, as `[at, user]`. */
async function index(kv: Deno.Kv, course = COURSE) {
  return (await dump(kv)).filter((e) => e.key[0] === "learners_by_activity" && e.key[1] === course)
    .map((e) => e.key.slice(2));
}

Deno.test("learners: the index key follows the progress when it came before its lesson, skewed", async () => {
  const h = await harness();
  try {
    await h.post(lessonWebhook({ user: 1, at: T }));
    await h.post(progressWebhook({ user: 1, at: T, percentage: "10" }));
    await h.project();
    assertEquals(await index(h.kv), [[T, 1]]);
    const at = T + 3_600_000;
    // The next progress is 400 ms after its lesson and is delivered first (it waits for it); an
    // inexact pair is made on its redelivery, a minute later.
    const p = progressWebhook({ user: 1, at: at + 400, percentage: "30" });
    assertEquals((await h.post(p)).json.status, "pending");
    assertEquals((await h.post(lessonWebhook({ user: 1, at, lesson: 2 }))).json.status, "stored");
    h.clock.now += 60_000;
    assertEquals((await h.post(p)).json.status, "collated");
    await h.project();
    assertEquals(await index(h.kv), [[at + 400, 1]], "moved, none left behind");
    const [entry] = (await listLearners(h.kv, COURSE, { limit: 10 })).learners;
    assertEquals(
      [entry.last_activity_at, entry.percentage_completed, entry.lessons_completed],
      [new Date(at + 400).toISOString(), 30, 2],
    );
  } finally {
    h.close();
  }
});

Deno.test("learners: the entry shows the latest progress seen, even one still waiting for its lesson", async () => {
  const h = await harness();
  try {
    // Two progress events wait; the lesson pairs with the first. The later one is the latest seen.
    await h.post(progressWebhook({ user: 1, at: T, percentage: "10" }));
    await h.post(progressWebhook({ user: 1, at: T + 30_000, percentage: "20" }));
    const r = await h.post(lessonWebhook({ user: 1, at: T }));
    assertEquals(r.json.status, "collated");
    await h.project();
    const [entry] = (await listLearners(h.kv, COURSE, { limit: 10 })).learners;
    assertEquals(
      [entry.percentage_completed, entry.last_activity_at],
      [20, new Date(T + 30_000).toISOString()],
    );
    assertEquals(await index(h.kv), [[T + 30_000, 1]]);
  } finally {
    h.close();
  }
});

/** Commits the learner entry of `r`, given the summary before and after its commit. */
async function progress(
  kv: Deno.Kv,
  r: LessonProgressRecord,
  before: EnrollmentSummary | null,
  after: EnrollmentSummary,
) {
  const op = kv.atomic();
  addLearnerProgress(op, r, learnerProgress(r, before, after));
  assert((await op.commit()).ok);
}

Deno.test("learners: a record's entry, from its own progress when the summary has none", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await progress(kv, record({ lesson: 5, skew: 2_000 }), null, { progress: [], lessons: [5, 6] });
    assertEquals((await listLearners(kv, 10, { limit: 10 })).learners, [{
      tenant_id: "48213",
      user_id: 1,
      user_email: "user1@example.com",
      course_id: 10,
      last_lesson_id: 5,
      last_lesson_name: "Lesson 5",
      last_chapter_name: "Chapter 1",
      percentage_completed: 50,
      lessons_completed: 2,
      last_activity_at: new Date(T + 2_000).toISOString(),
    }]);
    assertEquals(await index(kv, 10), [[T + 2_000, 1]]);
  } finally {
    kv.close();
  }
});

Deno.test("learners: the latest progress is the latest in time, the last listed of equal times", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const latest = async (user: number, list: [number, number][]) => {
      const absolute = list.map(([at, p]): [number, number] => [T + at, p]);
      await progress(kv, record({ user }), null, { progress: absolute, lessons: [1] });
      const entry = (await kv.get<{ percentage_completed: number; last_activity_at: string }>([
        "learners",
        10,
        user,
      ])).value!;
      return [Date.parse(entry.last_activity_at) - T, entry.percentage_completed];
    };
    assertEquals(await latest(1, [[0, 10], [5_000, 50], [9_000, 90]]), [9_000, 90]);
    assertEquals(await latest(2, [[9_000, 90], [0, 10], [5_000, 50]]), [9_000, 90]);
    assertEquals(await latest(3, [[5_000, 50], [5_000, 55]]), [5_000, 55]);
    // The key left for the previous progress moves (not the record's own progress, at `except`).
    await progress(kv, record({ user: 4 }), null, { progress: [[1_000, 5]], lessons: [1] });
    await progress(kv, record({ user: 4, lesson: 2, at: T + 8_000 }), {
      progress: [[1_000, 5], [T + 8_000, 9]],
      lessons: [1],
    }, {
      progress: [[1_000, 5], [T + 8_000, 9]],
      lessons: [1, 2],
    });
    assertEquals(
      (await index(kv, 10)).filter(([, u]) => u === 4),
      [[T + 8_000, 4]],
    );
  } finally {
    kv.close();
  }
});

Deno.test("learners: every index key of one learner in one course, stale ones too, no one else's", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const [course, at, user] of [[10, 5, 1], [10, 3, 2], [10, 1, 1], [10, 9, 1], [11, 4, 1]]) {
      await kv.set(learnerActivityKey(course, at, user), null);
    }
    assertEquals(await learnerActivityKeys(kv, 10, 1), [
      learnerActivityKey(10, 1, 1),
      learnerActivityKey(10, 5, 1),
      learnerActivityKey(10, 9, 1),
    ]);
    assertEquals(await learnerActivityKeys(kv, 10, 2), [learnerActivityKey(10, 3, 2)]);
    assertEquals(await learnerActivityKeys(kv, 12, 1), []);
  } finally {
    kv.close();
  }
});

Deno.test("learners: 25 learners with keys left behind come in full pages, newest first, once each", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // Learner u last active at T + u s; every third also has a key left at T + u s − 0.5 s, and
    // every learner one older than everybody's activity (at T − u s).
    for (let u = 1; u <= 25; u++) {
      const at = T + u * 1000;
      await progress(kv, record({ user: u, at }), null, { progress: [[at, u]], lessons: [1] });
      if (u % 3 === 0) await kv.set(learnerActivityKey(10, at - 500, u), null);
      await kv.set(learnerActivityKey(10, T - u * 1000, u), null);
    }
    const newestFirst = Array.from({ length: 25 }, (_, i) => 25 - i);
    assertEquals(
      (await listLearners(kv, 10, { limit: 100 })).learners.map((l) => l.user_id),
      newestFirst,
    );
    const cursor = cursorSchema("learners/10", z.tuple([z.number(), z.number()]));
    const pages: number[][] = [];
    let after: LearnerPosition | undefined;
    for (;;) {
      const page = await listLearners(kv, 10, { limit: 5, after });
      pages.push(page.learners.map((l) => l.user_id));
      if (page.cursor === null) break;
      after = cursor.parse(page.cursor);
      assertEquals(after, [T + (25 - 5 * pages.length + 1) * 1000, 25 - 5 * pages.length + 1]);
    }
    assertEquals(pages, [0, 1, 2, 3, 4].map((p) => newestFirst.slice(5 * p, 5 * p + 5)));

    // Stalled since T + 12.5 s: learners 12 to 1, in pages of 4.
    const stalled: number[] = [];
    after = undefined;
    for (let n = 0;; n++) {
      const page = await listLearners(kv, 10, { limit: 4, inactiveSince: T + 12_500, after });
      assertEquals(page.learners.length, 4);
      stalled.push(...page.learners.map((l) => l.user_id));
      if (page.cursor === null) break;
      after = cursor.parse(page.cursor);
      assert(n < 5);
    }
    assertEquals(stalled, newestFirst.slice(13));
    assertEquals((await listLearners(kv, 10, { limit: 4, inactiveSince: T })).learners, []);
    // Last active exactly at `inactiveSince`: kept.
    const atEdge = await listLearners(kv, 10, { limit: 100, inactiveSince: T + 12_000 });
    assertEquals(atEdge.learners.map((l) => l.user_id), newestFirst.slice(13));
    assertEquals(await listLearners(kv, 11, { limit: 4 }), { learners: [], cursor: null });
  } finally {
    kv.close();
  }
});

Deno.test("learners: a page costs the learners shown, not the course's learners", async () => {
  const real = await Deno.openKv(":memory:");
  try {
    for (let u = 1; u <= 300; u++) {
      await progress(real, record({ user: u, at: T + u }), null, {
        progress: [[T + u, 1]],
        lessons: [1],
      });
    }
    const reads = { getMany: 0 };
    const kv = instrumentKv(real, { before: (c) => void (c === "getMany" && reads.getMany++) });
    const page = await listLearners(kv, 10, { limit: 5 });
    assertEquals(page.learners.map((l) => l.user_id), [300, 299, 298, 297, 296]);
    assert(page.cursor !== null);
    assert(reads.getMany <= 2, `${reads.getMany} reads of entries for a page of 5 (of 300)`);
  } finally {
    real.close();
  }
});
