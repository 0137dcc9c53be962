/**
 * The dashboard as a newcomer meets it: a course known only from lone lessons has a page and its
 * name, "learners seen" agrees with the learners page, a bad parameter is an HTML page, and pages
 * that show emails are not stored by caches.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { courseOverview } from "../lib/store/stats.ts";

const T = BASE_TIME;
const HOUR = 3_600_000;

Deno.test("dashboard: a course known only from a lone lesson has a page and its name", async () => {
  const h = await harness({ UNMATCHED_AFTER_HOURS: "1" });
  try {
    const lone = lessonWebhook({ user: 8, course: 77, at: T });
    lone.payload.course.name = "Pottery at home";
    assertEquals((await h.post(lone)).json.status, "stored");
    h.clock.now += 2 * HOUR; // listed UNMATCHED_AFTER_HOURS after it was received
    const unmatched = await (await h.app.request("/unmatched")).text();
    assertMatch(unmatched, /<a href="\/courses\/77">Pottery at home<\/a>/);
    const page = await h.app.request("/courses/77");
    const html = await page.text();
    assertEquals(page.status, 200, html);
    assertMatch(html, /<h1>Pottery at home<\/h1>/);
    const overview = await courseOverview(h.kv, h.clock.now);
    assertEquals(overview.map((c) => [c.course_name, c.learners, c.unmatched]), [
      ["Pottery at home", 0, 1],
    ]);
  } finally {
    h.close();
  }
});

Deno.test("dashboard: learners seen counts learners with a completed lesson, as the learners page lists", async () => {
  const h = await harness();
  try {
    // User 1 completes a lesson (a record); user 2 has only a progress event, still pending.
    await h.post(lessonWebhook({ user: 1, course: 10, at: T }));
    assertEquals(
      (await h.post(progressWebhook({ user: 1, course: 10, at: T }))).json.status,
      "collated",
    );
    const pending = await h.post(progressWebhook({ user: 2, course: 10, at: T, percentage: "5" }));
    assertEquals(pending.json.status, "pending");

    await h.project();
    const [course] = await courseOverview(h.kv, h.clock.now);
    const learnersPage = await (await h.app.request("/courses/10/learners")).text();
    const rows = learnersPage.match(/<tr>/g)!.length - 1; // the header row
    assertEquals([course.learners, rows], [1, 1]);
    const coursePage = await (await h.app.request("/courses/10")).text();
    assertMatch(coursePage, /<b>1<\/b> learners seen/);

    // User 2's lesson arrives: now both count, on both pages.
    await h.post(lessonWebhook({ user: 2, course: 10, at: T }));
    await h.post(progressWebhook({ user: 2, course: 10, at: T, percentage: "5" }));
    await h.project();
    const [after] = await courseOverview(h.kv, h.clock.now);
    assertEquals(after.learners, 2);
  } finally {
    h.close();
  }
});

Deno.test("dashboard: a bad parameter is an HTML page naming it; pages are not cached", async () => {
  const h = await harness({ API_TOKEN: "tok-pages" });
  try {
    await h.post(lessonWebhook({ user: 1, course: 10, at: T }));
    await h.post(progressWebhook({ user: 1, course: 10, at: T }));
    const headers = { authorization: `Basic ${btoa("x:tok-pages")}` };
    for (
      const [path, name] of [
        ["/courses/10/learners?inactive_days=x", "inactive_days"],
        ["/courses/10/learners?cursor=abc", "cursor"],
        ["/courses/10/learners?sort=name", "sort"],
        ["/courses/10/records.csv?raw=yes", "raw"],
      ]
    ) {
      const res = await h.app.request(path, { headers });
      const text = await res.text();
      assertEquals(res.status, 400, path);
      assertMatch(res.headers.get("content-type") ?? "", /^text\/html/, path);
      assertMatch(text, /^<!DOCTYPE html>/i, path);
      assert(text.includes(name), `${path}: ${text}`);
      assert(text.includes('href="/courses/10/learners"') || path.includes("csv"), text);
    }
    for (const path of ["/", "/courses/10", "/courses/10/learners", "/unmatched", "/courses/99"]) {
      const res = await h.app.request(path, { headers });
      await res.body?.cancel();
      assertEquals(res.headers.get("cache-control"), "no-store", path);
    }
    // The 401 asking for the password is no page to keep either.
    const denied = await h.app.request("/courses/10");
    await denied.body?.cancel();
    assertEquals(denied.status, 401);
  } finally {
    h.close();
  }
});
