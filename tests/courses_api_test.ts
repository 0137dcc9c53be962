/**
 * `GET /api/courses` and `GET /api/courses/:courseId/lessons`: the dashboard's figures as JSON, with
 * the conventions of `/api/records` (bearer token, limit and cursor, 400 naming a bad parameter), and
 * exact after erasures.
 */
import { assert, assertEquals } from "./_assert.ts";
import { type Harness, harness, lessonWebhook, progressWebhook, type Webhook } from "./_helpers.ts";

const DAY = 86_400_000;

type Json = Record<string, unknown>;

/** Every course, following cursors (`query` without `limit`: pages of `limit`). */
async function allCourses(h: Harness, limit: number, query = ""): Promise<Json[]> {
  const out: Json[] = [];
  let cursor: string | null = null;
  do {
    const c: string = cursor ? `&cursor=${cursor}` : "";
    const r = await h.get(`/api/courses?limit=${limit}${query}${c}`);
    assertEquals(r.status, 200, JSON.stringify(r.json));
    const page = r.json.courses as Json[];
    assert(page.length <= limit);
    out.push(...page);
    cursor = r.json.cursor as string | null;
  } while (cursor);
  return out;
}

Deno.test("courses api: the overview's figures per course, paged in course id order", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    const now = h.clock.now;
    const pair = async (user: number, course: number, lesson: number, at: number) => {
      await h.post(lessonWebhook({ user, course, lesson, at }));
      const r = await h.post(progressWebhook({ user, course, at, percentage: "10" }));
      assertEquals(r.json.status, "collated");
    };
    await pair(1, 30, 1, now - 2 * DAY);
    await pair(2, 30, 1, now - 20 * DAY); // in the 30 days, not the 7
    await pair(2, 30, 2, now - 40 * DAY); // in neither
    await pair(1, 10, 5, now - DAY);
    await pair(1, 20, 5, now - 3 * DAY);
    await h.post(lessonWebhook({ tenant: "777", user: 9, course: 40, at: now - DAY })); // lone
    const lone = progressWebhook({ user: 3, course: 30, at: now - 5 * DAY });
    await h.deliver(lone); // gives up: unmatched

    const all = await allCourses(h, 500);
    // A course known only from a lone lesson is listed too (it has a page, with no learner yet).
    assertEquals(all.map((c) => c.course_id), [10, 20, 30, 40]);
    assertEquals(all[3].learners, 0);
    assertEquals(all[2], {
      tenant_id: "48213",
      course_id: 30,
      course_name: "Watercolor for beginners",
      learners: 2, // users 1 and 2: user 3's lone progress completed no lesson
      completions_7d: 1,
      completions_30d: 2,
      unmatched: 1,
      last_activity_at: new Date(now - 2 * DAY).toISOString(),
    });
    // Pages of one, then of two: the same courses once each.
    assertEquals((await allCourses(h, 1)).map((c) => c.course_id), [10, 20, 30, 40]);
    assertEquals(await allCourses(h, 2), all);
    // One school's courses.
    assertEquals((await allCourses(h, 10, "&tenant_id=777")).map((c) => c.course_id), [40]);
    assertEquals((await allCourses(h, 10, "&tenant_id=48213")).length, 3);

    const lessons = await h.get("/api/courses/30/lessons");
    assertEquals(lessons.status, 200);
    assertEquals(lessons.json, {
      lessons: [1, 2].map((id) => ({
        lesson_id: id,
        lesson_name: `Lesson ${id}`,
        chapter_id: 7013,
        chapter_name: "Mixing colours",
        learners: id === 1 ? 2 : 1,
      })),
    });
  } finally {
    h.close();
  }
});

Deno.test("courses api: bad parameters are 400s naming them, an unknown course a 404, the token applies", async () => {
  const h = await harness({ API_TOKEN: "courses-token" });
  try {
    const auth = { authorization: "Bearer courses-token" };
    await h.post(lessonWebhook({ course: 10 }));
    await h.post(progressWebhook({ course: 10 }));
    for (const path of ["/api/courses", "/api/courses/10/lessons"]) {
      assertEquals((await h.get(path)).status, 401, path);
      assertEquals((await h.get(path, auth)).status, 200, path);
    }
    for (
      const [path, name] of [
        ["/api/courses?limit=0", "limit"],
        ["/api/courses?limit=501", "limit"],
        ["/api/courses?cursor=nope", "cursor"],
        ["/api/courses?tenant_id=a%20b", "tenant_id"],
        ["/api/courses?course=1", "course"],
        ["/api/courses?limit=1&limit=2", "limit"],
        ["/api/courses/abc/lessons", "courseId"],
        ["/api/courses/0/lessons", "courseId"],
        ["/api/courses/10/lessons?limit=1", "limit"],
      ]
    ) {
      const r = await h.get(path, auth);
      assertEquals(r.status, 400, path);
      assert(String(r.json.error).includes(name), `${path}: ${r.json.error}`);
    }
    const unknown = await h.get("/api/courses/99/lessons", auth);
    assertEquals(unknown.status, 404);
    assert(String(unknown.json.error).includes("99"), String(unknown.json.error));
  } finally {
    h.close();
  }
});

Deno.test("courses api: after erasures the counts are those of a database that never saw them", async () => {
  const full = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  const without = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    const now = full.clock.now;
    const deliveries: [user: number, body: Webhook][] = [];
    const add = (user: number, body: Webhook) => deliveries.push([user, body]);
    // Users 1 and 2 are erased, 3 and 4 stay. Course 10: everyone; 11: user 1 has 210 lessons
    // (more than the summary keeps), the others a few; 12: user 2 only has a lone lesson; 13: only
    // user 1, with a lone lesson and a progress that gives up.
    for (const user of [1, 2, 3, 4]) {
      for (let i = 0; i < 3; i++) {
        const at = now - (user + i * 5) * DAY + user;
        add(user, lessonWebhook({ user, course: 10, lesson: 100 + i + (user % 2), at }));
        add(user, progressWebhook({ user, course: 10, at, percentage: String(10 * (i + 1)) }));
      }
    }
    for (let i = 0; i < 210; i++) {
      const at = now - 10 * DAY + i * 60_000;
      add(1, lessonWebhook({ user: 1, course: 11, lesson: 1000 + i, at }));
      add(1, progressWebhook({ user: 1, course: 11, at, percentage: (i / 3).toFixed(1) }));
    }
    for (const user of [3, 4]) {
      const at = now - 2 * DAY + user;
      add(user, lessonWebhook({ user, course: 11, lesson: 1000 + user, at }));
      add(user, progressWebhook({ user, course: 11, at, percentage: "50" }));
    }
    add(2, lessonWebhook({ user: 2, course: 12, at: now - DAY }));
    add(3, lessonWebhook({ user: 3, course: 12, lesson: 7, at: now - 3 * DAY }));
    add(3, progressWebhook({ user: 3, course: 12, at: now - 3 * DAY }));
    add(2, lessonWebhook({ user: 2, course: 11, at: now - DAY })); // lone, in a counted course
    add(1, lessonWebhook({ user: 1, course: 13, at: now - DAY }));
    const gaveUp = progressWebhook({ user: 1, course: 13, at: now - 4 * DAY });
    add(1, gaveUp);
    add(1, structuredClone(gaveUp));
    const lone = progressWebhook({ user: 3, course: 10, at: now - 6 * DAY });
    add(3, lone);
    add(3, structuredClone(lone)); // user 3 keeps an unmatched progress

    for (const [user, body] of deliveries) {
      const r = await full.post(body);
      assert([200, 409].includes(r.status), JSON.stringify(r.json));
      if (user > 2) await without.post(body);
    }
    for (const user of [1, 2]) {
      const r = await full.app.request(`/api/learners/48213/${user}`, { method: "DELETE" });
      assertEquals(r.status, 200);
      await r.body?.cancel();
    }

    const expected = new Map((await allCourses(without, 500)).map((c) => [c.course_id, c]));
    const got = await allCourses(full, 2);
    assert(got.length >= expected.size);
    for (const course of got) {
      // A course only the erased learners made known keeps its name, and counts nothing.
      assertEquals(
        course,
        expected.get(course.course_id) ?? {
          ...course,
          learners: 0,
          completions_7d: 0,
          completions_30d: 0,
          unmatched: 0,
          last_activity_at: null,
        },
      );
      const lessons = (await full.get(`/api/courses/${course.course_id}/lessons`)).json
        .lessons as Json[];
      const kept = expected.has(course.course_id)
        ? ((await without.get(`/api/courses/${course.course_id}/lessons`)).json.lessons as Json[])
        : [];
      const ids = new Set(kept.map((l) => l.lesson_id));
      assertEquals(lessons.filter((l) => ids.has(l.lesson_id)), kept);
      for (const l of lessons.filter((l) => !ids.has(l.lesson_id))) assertEquals(l.learners, 0);
    }
    assertEquals((expected.get(10) as Json).learners, 2);
    assertEquals((expected.get(11) as Json).learners, 2);
  } finally {
    full.close();
    without.close();
  }
});
