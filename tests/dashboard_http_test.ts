/**
 * The dashboard's routes (lib/http/dashboard.tsx) over HTTP: Basic auth on every page and
 * download, `no-store` on each answer, a bad parameter as an HTML 400 linking back, an unknown
 * course as an HTML 404, the course's CSV download, the course page's latest 25 completions, and
 * the learners page's filter and "Next page" link.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { BASE_TIME, type Harness, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";

const T = BASE_TIME;
const DAY = 86_400_000;
const TOKEN = "dash-token-9";
const AUTH = { authorization: `Basic ${btoa(`someone:${TOKEN}`)}` };

/** A completed lesson (one record) of `user` in `course` at `at`. */
async function complete(h: Harness, user: number, course: number, at: number, lessonName?: string) {
  await h.post(lessonWebhook({ user, course, at, lessonName }));
  const r = await h.post(progressWebhook({ user, course, at }));
  assertEquals(r.json.status, "collated");
}

/** A page's status, content type, cache-control and text. */
async function page(h: Harness, path: string, headers: Record<string, string> = AUTH) {
  const res = await h.app.request(path, { headers });
  return {
    status: res.status,
    type: res.headers.get("content-type") ?? "",
    cache: res.headers.get("cache-control"),
    disposition: res.headers.get("content-disposition"),
    text: await res.text(),
  };
}

Deno.test("dashboard http: every page and download asks for the token; none is cached", async () => {
  const h = await harness({ API_TOKEN: TOKEN });
  try {
    await complete(h, 1, 10, T);
    const paths = [
      "/",
      "/courses/10",
      "/courses/10/learners",
      "/courses/10/records.csv",
      "/unmatched",
    ];
    for (const path of paths) {
      const denied = await page(h, path, {});
      assertEquals(denied.status, 401, path);
      assertEquals(denied.cache, "no-store", path);
      const wrong = await page(h, path, { authorization: `Basic ${btoa("someone:nope")}` });
      assertEquals(wrong.status, 401, path);
      const ok = await page(h, path);
      assertEquals([ok.status, ok.cache], [200, "no-store"], path);
    }
    // The other routes are not behind the pages' password.
    assertEquals((await page(h, "/healthz", {})).status, 200);
    assertEquals((await page(h, "/api/records", AUTH)).status, 401, "the API wants a bearer");
  } finally {
    h.close();
  }
});

Deno.test("dashboard http: an unknown or malformed course is an HTML 404 naming it", async () => {
  const h = await harness();
  try {
    await complete(h, 1, 10, T);
    for (
      const [path, id] of [
        ["/courses/99", "99"],
        ["/courses/abc", "abc"],
        ["/courses/0", "0"],
        ["/courses/99/learners", "99"],
        ["/courses/1x/learners", "1x"],
        ["/courses/abc/records.csv", "abc"],
        ["/courses/1x/records.csv", "1x"],
        ["/courses/x1/records.csv", "x1"],
        ["/courses/12345678901234567/records.csv", "12345678901234567"],
      ]
    ) {
      const r = await page(h, path);
      assertEquals(r.status, 404, path);
      assertMatch(r.type, /^text\/html/, path);
      assertEquals(r.cache, "no-store", path);
      assert(r.text.includes(`No completions are known for course ${id}.`), `${path}: ${r.text}`);
    }
  } finally {
    h.close();
  }
});

Deno.test("dashboard http: a bad parameter is an HTML 400 naming it, linking back to the page", async () => {
  const h = await harness();
  try {
    await complete(h, 1, 10, T);
    for (
      const [path, message, back] of [
        [
          "/courses/10/learners?inactive_days=0",
          "query parameter inactive_days must be from 1 to 3650.",
          "/courses/10/learners",
        ],
        [
          "/courses/10/learners?inactive_days=3651",
          "query parameter inactive_days must be from 1 to 3650.",
          "/courses/10/learners",
        ],
        [
          "/courses/10/learners?inactive_days=1.5",
          "query parameter inactive_days must be a whole number of days from 1 to 3650.",
          "/courses/10/learners",
        ],
        [
          "/courses/10/records.csv?raw=1",
          "query parameter raw must be true or false.",
          "/courses/10",
        ],
        [
          "/courses/10/records.csv?limit=1",
          "query parameter limit is not a known parameter.",
          "/courses/10",
        ],
      ]
    ) {
      const r = await page(h, path);
      assertEquals(r.status, 400, path);
      assertMatch(r.type, /^text\/html/, path);
      assertEquals(r.cache, "no-store", path);
      assert(r.text.includes(message), `${path}: ${r.text}`);
      assert(r.text.includes(`<a href="${back}">Start again</a>`), `${path}: ${r.text}`);
    }
  } finally {
    h.close();
  }
});

Deno.test("dashboard http: a course's CSV is its records only, as an attachment named after it", async () => {
  const h = await harness();
  try {
    await complete(h, 1, 10, T, "=SUM(A1)");
    await complete(h, 2, 20, T);
    const csv = await page(h, "/courses/10/records.csv");
    assertEquals(csv.status, 200);
    assertEquals(csv.type, "text/csv; charset=utf-8; header=present");
    assertEquals(csv.disposition, 'attachment; filename="course-10-records.csv"');
    const lines = csv.text.trim().split("\r\n");
    assertEquals(lines.length, 2, csv.text);
    assertMatch(lines[1], /,10,/);
    assertMatch(lines[1], /,'=SUM\(A1\),/, "a formula is neutralised");
    const raw = await page(h, "/courses/10/records.csv?raw=true");
    assertMatch(raw.text, /,=SUM\(A1\),/, "raw=true writes it as received");
    const none = await page(h, "/courses/30/records.csv");
    assertEquals(none.disposition, 'attachment; filename="course-30-records.csv"');
    assertEquals(none.text.trim().split("\r\n").length, 1, "the header row alone");
  } finally {
    h.close();
  }
});

Deno.test("dashboard http: the course page lists the latest 25 completions; the learners page 100 a page", async () => {
  const h = await harness();
  try {
    const n = 101;
    for (let user = 1; user <= n; user++) await complete(h, user, 10, T + user * 60_000);

    await complete(h, 999, 20, T + (n + 1) * 60_000, "Another course's lesson");
    const course = await page(h, "/courses/10");
    const recent = course.text.slice(course.text.indexOf("Recent completions"));
    assertEquals(recent.match(/<tr>/g)?.length, 1 + 25, "a header row and 25 rows");
    assert(recent.includes(`user ${n}<`), "the latest completion is listed");
    assert(!recent.includes("Another course"), "only this course's completions");
    const emailRows = (text: string) => text.match(/<tr>/g)!.length - 1;

    const first = await page(h, "/courses/10/learners");
    assertEquals(emailRows(first.text), 100);
    const next = /href="(\?[^"]+)" rel="next"/.exec(first.text)?.[1].replaceAll("&amp;", "&");
    assert(next, "a next page link");
    assertEquals([...new URLSearchParams(next).keys()], ["cursor"]);
    const second = await page(h, `/courses/10/learners${next}`);
    assertEquals([second.status, emailRows(second.text)], [200, 1]);
    assert(!/rel="next"/.test(second.text));

    const small = await page(h, "/courses/10/learners?limit=60");
    const link = /href="(\?[^"]+)" rel="next"/.exec(small.text)?.[1].replaceAll("&amp;", "&");
    assert(link);
    assertEquals([...new URLSearchParams(link).keys()], ["limit", "cursor"]);
    const rest = await page(h, `/courses/10/learners${link}`);
    assertEquals(emailRows(rest.text), 41);
  } finally {
    h.close();
  }
});

Deno.test("dashboard http: inactive_days keeps the learners idle that many days or more, and pages with them", async () => {
  const h = await harness();
  try {
    h.clock.now = T + 10 * DAY;
    // Idle for 10 days, 5 days and an hour, 1 day, 6 days and an hour.
    for (
      const [user, at] of [[1, T], [2, T + 5 * DAY - 3_600_000], [3, T + 9 * DAY], [
        4,
        T + 4 * DAY - 3_600_000,
      ]]
    ) {
      await complete(h, user, 10, at, `Step ${user}`);
    }
    const shown = (text: string) => [1, 2, 3, 4].filter((u) => text.includes(`Step ${u}<`));
    assertEquals(shown((await page(h, "/courses/10/learners")).text), [1, 2, 3, 4]);
    assertEquals(shown((await page(h, "/courses/10/learners?inactive_days=5")).text), [1, 2, 4]);
    assertEquals(shown((await page(h, "/courses/10/learners?inactive_days=6")).text), [1, 4]);
    assertEquals(shown((await page(h, "/courses/10/learners?inactive_days=11")).text), []);
    // Idle exactly N days counts as idle N days.
    assertEquals(shown((await page(h, "/courses/10/learners?inactive_days=10")).text), [1]);
    assertEquals(shown((await page(h, "/courses/10/learners?inactive_days=1")).text), [1, 2, 3, 4]);

    const first = await page(h, "/courses/10/learners?inactive_days=6&limit=1");
    const link = /href="(\?[^"]+)" rel="next"/.exec(first.text)?.[1].replaceAll("&amp;", "&");
    assert(link, first.text);
    assertEquals([...new URLSearchParams(link).keys()], ["inactive_days", "limit", "cursor"]);
    const second = await page(h, `/courses/10/learners${link}`);
    assertEquals([...shown(first.text), ...shown(second.text)].sort(), [1, 4]);
  } finally {
    h.close();
  }
});

Deno.test("dashboard http: the overview, course and learners pages count time by the service's clock", async () => {
  const h = await harness();
  try {
    h.clock.now = T + 2 * DAY;
    await complete(h, 1, 10, T);
    await complete(h, 2, 10, T - 20 * DAY);
    const overview = await page(h, "/");
    const cells = [...overview.text.matchAll(/<td class="num">(\d+)<\/td>/g)].map((m) => m[1]);
    assertEquals(cells, ["2", "1", "2", "0"], "learners, 7 days, 30 days, unmatched");
    const course = await page(h, "/courses/10");
    assertMatch(course.text, /<b>1<\/b> in the last 7 days/);
    const learners = await page(h, "/courses/10/learners");
    assertMatch(learners.text, /<td>2 days ago<div/);
    assertMatch(learners.text, /<td>22 days ago<div/);
  } finally {
    h.close();
  }
});

Deno.test("dashboard http: inactive_days takes 1 to 3650; a cursor of another course's page is a 400", async () => {
  const h = await harness();
  try {
    h.clock.now = T + 10 * DAY;
    for (const user of [1, 2]) {
      await complete(h, user, 10, T + user * 60_000);
      await complete(h, user, 20, T + user * 60_000);
    }
    const users = (text: string) => text.match(/<div class="muted">user \d+<\/div>/g)?.length ?? 0;
    const one = await page(h, "/courses/10/learners?inactive_days=1");
    assertEquals([one.status, users(one.text)], [200, 2]);
    const most = await page(h, "/courses/10/learners?inactive_days=3650");
    assertEquals([most.status, users(most.text)], [200, 0]);

    const first = await page(h, "/courses/10/learners?limit=1");
    const cursor = /[?&;]cursor=([^"&]+)"/.exec(first.text)?.[1];
    assert(cursor, first.text);
    assertEquals((await page(h, `/courses/10/learners?cursor=${cursor}`)).status, 200);
    const other = await page(h, `/courses/20/learners?cursor=${cursor}`);
    assertEquals(other.status, 400);
    assert(other.text.includes("query parameter cursor is a cursor of"), other.text);
  } finally {
    h.close();
  }
});
