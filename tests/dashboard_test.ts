/** Dashboard counters (projected from the records) and the server-rendered pages. */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { courseDetail, courseOrder, courseOverview } from "../lib/store/stats.ts";
import { lessonInfo } from "./_records.ts";

const T = BASE_TIME;
const DAY = 86_400_000;

Deno.test("dashboard: counters follow the records, distinct learners per lesson", async () => {
  const h = await harness();
  try {
    h.clock.now = T + 2 * DAY;
    const pair = async (user: number, lesson: number, at: number, course = 10) => {
      await h.post(lessonWebhook({ user, lesson, at, course }));
      const r = await h.post(progressWebhook({ user, at, course, percentage: String(lesson) }));
      assertEquals(r.json.status, "collated");
    };
    await pair(1, 1, T);
    await pair(1, 2, T + 60_000);
    await pair(1, 1, T + 120_000); // a re-completion: not a new learner of lesson 1
    await pair(2, 1, T + 180_000);
    await pair(3, 1, T - 20 * DAY); // 20 days ago: in the 30-day window, not the 7-day one
    await pair(1, 5, T, 20); // another course

    await h.project();
    const detail = await courseDetail(h.kv, 10, h.clock.now);
    assert(detail);
    assertEquals(detail.lessons.map((l) => [l.lesson_id, l.learners]), [[1, 3], [2, 1]]);
    assertEquals(
      [detail.course.learners, detail.course.completions, detail.course.unmatched],
      [3, 5, 0],
    );
    assertEquals([detail.course.last7Days, detail.course.last30Days], [4, 5]);

    // A lone progress gives up (+1 unmatched), then a late lesson resolves it (−1).
    const lone = progressWebhook({ user: 4, at: T + 300_000, course: 10 });
    await h.deliver(lone);
    assertEquals((await courseDetail(h.kv, 10, h.clock.now))!.course.unmatched, 1);
    await h.post(lessonWebhook({ user: 4, lesson: 2, at: T + 300_010, course: 10 }));
    await h.project();
    const after = (await courseDetail(h.kv, 10, h.clock.now))!;
    assertEquals([after.course.unmatched, after.course.learners], [0, 4]);
    assertEquals(after.lessons.find((l) => l.lesson_id === 2)!.learners, 2);

    const overview = await courseOverview(h.kv, h.clock.now);
    assertEquals(overview.map((c) => c.course_id), [10, 20], "newest activity first");
  } finally {
    h.close();
  }
});

Deno.test("dashboard: lessons in course order, grouped by chapter", () => {
  const l = lessonInfo;
  const ordered = courseOrder([l(5, 2, 4), l(1, 1, 1), l(9, 3, null), l(3, 1, 3), l(4, 2, 2)]);
  assertEquals(ordered.map((x) => x.lesson_id), [1, 3, 4, 5, 9]);
  // Positions restarting in each chapter: chapters fall back to their ids.
  const perChapter = courseOrder([l(7, 20, 1), l(6, 10, 2), l(8, 20, 2), l(2, 10, 1)]);
  assertEquals(perChapter.map((x) => x.lesson_id), [2, 6, 7, 8]);
});

Deno.test("dashboard: pages render names and an SVG chart; Basic auth when API_TOKEN is set", async () => {
  const h = await harness({ API_TOKEN: "page-token-123" });
  try {
    await h.post(lessonWebhook({ lesson: 24017, lessonName: "Wet on wet & <tools>" }));
    await h.post(progressWebhook());
    const auth = { authorization: `Basic ${btoa("anyone:page-token-123")}` };

    for (const path of ["/", "/courses/2100013", "/unmatched"]) {
      const none = await h.app.request(path);
      assertEquals(none.status, 401, path);
      assertMatch(none.headers.get("www-authenticate") ?? "", /^Basic /);
      await none.body?.cancel();
      const wrong = await h.app.request(path, {
        headers: { authorization: `Basic ${btoa("anyone:nope")}` },
      });
      assertEquals(wrong.status, 401);
      await wrong.body?.cancel();
    }
    const home = await h.app.request("/", { headers: auth });
    assertEquals(home.status, 200);
    assertMatch(home.headers.get("content-type") ?? "", /text\/html/);
    const homeHtml = await home.text();
    assertMatch(homeHtml, /Watercolor for beginners/);
    assertMatch(homeHtml, /href="\/courses\/2100013"/);

    const course = await (await h.app.request("/courses/2100013", { headers: auth })).text();
    assertMatch(course, /<svg class="chart"/);
    assertMatch(course, /Wet on wet &amp; &lt;tools&gt;/, "names are escaped");
    assertMatch(course, /ada@example.com/);

    const missing = await h.app.request("/courses/42", { headers: auth });
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
    const unmatched = await (await h.app.request("/unmatched", { headers: auth })).text();
    assertMatch(unmatched, /Nothing is waiting/);
  } finally {
    h.close();
  }
});
