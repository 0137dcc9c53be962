/**
 * Query parameters (lib/http/_query.ts and the API's schemas): each bad value is a 400 whose error
 * names the parameter and says what is wrong; `since` with a UTC offset is the same instant; a
 * padded school id filters as the school.
 */
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";

const bad: [string, string, unknown][] = [
  ["user_id=0", "query parameter user_id must be a positive integer", [{
    path: ["user_id"],
    message: "must be a positive integer",
  }]],
  ["user_id=12abc", "query parameter user_id must be a positive integer", undefined],
  ["course_id=9999999999999999", "query parameter course_id must be a positive integer", undefined],
  ["limit=0", "query parameter limit must be from 1 to 500", [{
    path: ["limit"],
    message: "must be from 1 to 500",
  }]],
  ["limit=501", "query parameter limit must be from 1 to 500", undefined],
  ["limit=12x", "query parameter limit must be a whole number from 1 to 500", undefined],
  ["limit=x12", "query parameter limit must be a whole number from 1 to 500", undefined],
  ["foo=1&bar=2", "query parameter foo, bar is not a known parameter", [{
    path: [],
    message: 'Unrecognized keys: "foo", "bar"',
  }]],
  ["user_id=1&user_id=2", "query parameter user_id is given more than once", undefined],
  [
    "since=yesterday",
    "query parameter since must be an ISO time such as 2026-11-02T14:15:12.334Z",
    undefined,
  ],
];

for (const [query, error, issues] of bad) {
  Deno.test(`query: ${query} → 400 "${error}"`, async () => {
    const h = await harness();
    try {
      const r = await h.get(`/api/records?${query}`);
      assertEquals(r.status, 400);
      assertEquals(r.json.error, error);
      if (issues !== undefined) assertEquals(r.json.issues, issues);
    } finally {
      h.close();
    }
  });
}

Deno.test("query: limit 1 and 500 are allowed", async () => {
  const h = await harness();
  try {
    for (const limit of ["1", "500"]) {
      assertEquals((await h.get(`/api/records?limit=${limit}`)).status, 200, `limit=${limit}`);
    }
  } finally {
    h.close();
  }
});

Deno.test("query: since with a UTC offset, and a padded school id, filter as meant", async () => {
  const h = await harness();
  try {
    for (const [i, lesson] of [[0, 1], [10, 2]]) {
      const at = BASE_TIME + i * 60_000;
      assertEquals((await h.post(lessonWebhook({ at, lesson }))).status, 200);
      assertEquals((await h.deliver(progressWebhook({ at }))).status, 200);
    }
    // BASE_TIME + 5 min, written in New York time.
    const local = new Date(BASE_TIME + 5 * 60_000 - 5 * 3_600_000).toISOString()
      .replace("Z", "-05:00");
    const since = await h.get(`/api/records?since=${encodeURIComponent(local)}`);
    assertEquals(since.status, 200);
    const lessons = (since.json.records as { lesson_id: number }[]).map((r) => r.lesson_id);
    assertEquals(lessons, [2]);
    const padded = await h.get(`/api/records?tenant_id=${encodeURIComponent(" 48213 ")}`);
    assertEquals(padded.status, 200);
    assertEquals((padded.json.records as unknown[]).length, 2);
  } finally {
    h.close();
  }
});

Deno.test("query: the CSV export's raw flag is true or false, and the download is never cached", async () => {
  const h = await harness();
  try {
    const bad = await h.app.request("/api/records.csv?raw=yes");
    assertEquals(bad.status, 400);
    assertEquals((await bad.json()).error, "query parameter raw must be true or false");
    const ok = await h.app.request("/api/records.csv?raw=true");
    assertEquals(ok.status, 200);
    assertEquals(ok.headers.get("cache-control"), "no-store");
    await ok.body?.cancel();
  } finally {
    h.close();
  }
});
