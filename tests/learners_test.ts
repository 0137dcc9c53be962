/** Where each learner stands: entries kept in the records' commits, the page, and the unmatched page. */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { BASE_TIME, dump, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { listLearners } from "../lib/store/learners.ts";
import { learnerActivityKey } from "../lib/store/keys.ts";

const T = BASE_TIME;
const DAY = 86_400_000;
const COURSE = 2100013;

Deno.test("learners: one entry per learner, newest activity first, moved on each record", async () => {
  const h = await harness();
  try {
    h.clock.now = T + 40 * DAY;
    const ok = async (
      user: number,
      lesson: number,
      at: number,
      percentage: string,
      lessonFirst = true,
    ) => {
      const l = lessonWebhook({ user, at, lesson, lessonName: `Lesson ${lesson}` });
      const p = progressWebhook({ user, at, percentage });
      for (const body of lessonFirst ? [l, p] : [p, l]) await h.post(body);
      const again = await h.post(p);
      assertEquals(again.json.status, "collated");
    };
    await ok(1, 101, T, "10");
    await ok(2, 101, T + DAY, "10", false);
    await ok(1, 102, T + 2 * DAY, "20", false); // user 1 moves from day 0 to day 2
    await ok(3, 101, T + 3 * DAY, "10");
    await ok(1, 101, T + 4 * DAY, "20"); // a re-completion: still 2 lessons, latest activity
    await h.project();

    const page = await listLearners(h.kv, COURSE, { limit: 10 });
    assertEquals(page.learners.map((l) => l.user_id), [1, 3, 2]);
    const one = page.learners[0];
    assertEquals(
      [one.last_lesson_id, one.percentage_completed, one.lessons_completed, one.last_activity_at],
      [101, 20, 2, new Date(T + 4 * DAY).toISOString()],
    );
    // The index holds one key per learner: the old ones were moved, not left behind.
    const index = (await dump(h.kv)).filter((e) => e.key[0] === "learners_by_activity");
    assertEquals(index.length, 3);

    // Pages of one, following the cursor.
    const seen: number[] = [];
    let after: [number, number] | undefined;
    for (;;) {
      const p = await listLearners(h.kv, COURSE, { limit: 1, after });
      seen.push(...p.learners.map((l) => l.user_id));
      if (!p.cursor) break;
      after = JSON.parse(atob(p.cursor.replaceAll("-", "+").replaceAll("_", "/"))).p;
    }
    assertEquals(seen, [1, 3, 2]);

    // Stalled: no activity since day 3.5 → users 3 (day 3) and 2 (day 1).
    const stalled = await listLearners(h.kv, COURSE, { limit: 10, inactiveSince: T + 3.5 * DAY });
    assertEquals(stalled.learners.map((l) => l.user_id), [3, 2]);
  } finally {
    h.close();
  }
});

Deno.test("learners: an index key left behind is skipped when listed", async () => {
  const h = await harness();
  try {
    await h.post(lessonWebhook({ user: 7, at: T }));
    await h.post(progressWebhook({ user: 7, at: T }));
    // A stale key, as a progress without a record on another day can leave.
    await h.kv.set(learnerActivityKey(COURSE, T - 5 * DAY, 7), null);
    await h.project();
    const all = await listLearners(h.kv, COURSE, { limit: 10 });
    assertEquals(all.learners.map((l) => l.user_id), [7]);
    const stalled = await listLearners(h.kv, COURSE, { limit: 10, inactiveSince: T - DAY });
    assertEquals(stalled.learners, []);
  } finally {
    h.close();
  }
});

Deno.test("learners page: the table, the stalled filter, paging, and bad parameters", async () => {
  const h = await harness({ API_TOKEN: "tok-learners" });
  try {
    h.clock.now = T + 10 * DAY;
    for (const [user, day] of [[1, 0], [2, 5], [3, 9]]) {
      await h.post(lessonWebhook({ user, at: T + day * DAY, lessonName: `Step ${user}` }));
      await h.post(progressWebhook({ user, at: T + day * DAY, percentage: `${user}5` }));
    }
    const auth = { authorization: `Basic ${btoa("x:tok-learners")}` };
    const none = await h.app.request(`/courses/${COURSE}/learners`);
    assertEquals(none.status, 401);
    await none.body?.cancel();

    const html = await (await h.app.request(`/courses/${COURSE}/learners`, { headers: auth }))
      .text();
    const order = [3, 2, 1].map((u) => html.indexOf(`Step ${u}`));
    assert(order.every((i) => i > 0) && order[0] < order[1] && order[1] < order[2], html);
    assertMatch(html, /35%/);
    assertMatch(html, /1 day ago/);

    const stalled = await (await h.app.request(`/courses/${COURSE}/learners?inactive_days=3`, {
      headers: auth,
    })).text();
    assert(!stalled.includes("Step 3") && stalled.includes("Step 2") && stalled.includes("Step 1"));

    const first = await (await h.app.request(
      `/courses/${COURSE}/learners?inactive_days=3&limit=1`,
      { headers: auth },
    )).text();
    const next = /href="(\?[^"]+)" rel="next"/.exec(first)?.[1].replaceAll("&amp;", "&");
    assert(next && first.includes("Step 2") && !first.includes("Step 1"), first);
    const second = await (await h.app.request(`/courses/${COURSE}/learners${next}`, {
      headers: auth,
    })).text();
    assert(second.includes("Step 1") && !second.includes("Step 2") && !/rel="next"/.test(second));

    const course = await (await h.app.request(`/courses/${COURSE}`, { headers: auth })).text();
    assertMatch(course, new RegExp(`href="/courses/${COURSE}/learners"`));

    for (const q of ["inactive_days=0", "inactive_days=x", "cursor=abc", "sort=name"]) {
      const bad = await h.app.request(`/courses/${COURSE}/learners?${q}`, { headers: auth });
      assertEquals(bad.status, 400, q);
      assertMatch(bad.headers.get("content-type") ?? "", /^text\/html/, q);
      assertMatch(await bad.text(), /query parameter/);
    }
    const missing = await h.app.request("/courses/99/learners", { headers: auth });
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    h.close();
  }
});

Deno.test("unmatched page: course names, the percentage reached, one row per event", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    await h.deliver(progressWebhook({ user: 4, at: T, percentage: "42.5" }));
    await h.deliver(progressWebhook({ user: 5, at: T + 1000, percentage: "60" }));
    const html = await (await h.app.request("/unmatched")).text();
    assertMatch(html, /Watercolor for beginners/);
    assert(!html.includes(`course ${COURSE}`), "the course's name, not its id");
    assertMatch(html, /42\.5%/);
    assertMatch(html, /60%/);
    assertEquals(html.match(/<tr>/g)?.length, 3, "a header row and one row per event");
  } finally {
    h.close();
  }
});

Deno.test("unmatched page: a lesson still alone after the horizon has its own row", async () => {
  const h = await harness({ UNMATCHED_AFTER_HOURS: "1" });
  try {
    await h.post(lessonWebhook({ user: 6, at: T }));
    const before = await (await h.app.request("/unmatched")).text();
    assertMatch(before, /Nothing is waiting/);
    h.clock.now += 3_600_000;
    const html = await (await h.app.request("/unmatched")).text();
    assertMatch(html, /a lesson alone, listed/);
    assertEquals(html.match(/<tr>/g)?.length, 2, "a header row and the lesson's row");
  } finally {
    h.close();
  }
});
