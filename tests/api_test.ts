/** `/api/records`, `/api/unmatched`, `/healthz` and the bearer token. */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { allRecords, BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import type { Harness } from "./_helpers.ts";

const T = BASE_TIME;

/** Pairs for two schools, three users, two courses, one a minute apart. */
async function seed(h: Harness) {
  let i = 0;
  for (const tenant of ["100", "200"]) {
    for (const user of [1, 2, 3]) {
      for (const course of [10, 20]) {
        const at = T + (i++) * 60_000;
        await h.post(lessonWebhook({ tenant, user, course, at }));
        await h.post(progressWebhook({ tenant, user, course, at, percentage: String(i) }));
      }
    }
  }
  return i;
}

Deno.test("api: records filter by school, user, course and since, oldest first", async () => {
  const h = await harness();
  try {
    const total = await seed(h);
    const all = await allRecords(h);
    assertEquals(all.length, total);
    const times = all.map((r) => r.completed_at as string);
    assertEquals(times, [...times].sort());

    const cases: [string, (r: Record<string, unknown>) => boolean][] = [
      ["tenant_id=100", (r) => r.tenant_id === "100"],
      ["user_id=2", (r) => r.user_id === 2],
      ["course_id=20", (r) => r.course_id === 20],
      ["tenant_id=200&user_id=3", (r) => r.tenant_id === "200" && r.user_id === 3],
      ["tenant_id=200&course_id=10", (r) => r.tenant_id === "200" && r.course_id === 10],
      ["user_id=1&course_id=10", (r) => r.user_id === 1 && r.course_id === 10],
      [
        "tenant_id=100&user_id=1&course_id=20",
        (r) => r.tenant_id === "100" && r.user_id === 1 && r.course_id === 20,
      ],
      [
        `since=${new Date(T + 5 * 60_000).toISOString()}`,
        (r) => Date.parse(r.completed_at as string) >= T + 5 * 60_000,
      ],
      [
        `tenant_id=200&since=${new Date(T + 8 * 60_000).toISOString()}`,
        (r) => r.tenant_id === "200" && Date.parse(r.completed_at as string) >= T + 8 * 60_000,
      ],
    ];
    for (const [query, keep] of cases) {
      const got = await allRecords(h, query);
      const want = all.filter(keep);
      assert(want.length > 0, query);
      assertEquals(got, want, query);
    }
    assertEquals(await allRecords(h, "tenant_id=300"), []);
  } finally {
    h.close();
  }
});

Deno.test("api: cursor pages cover every record once", async () => {
  const h = await harness();
  try {
    const total = await seed(h);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await h.get(`/api/records?limit=5${cursor ? `&cursor=${cursor}` : ""}`);
      assertEquals(r.status, 200);
      const records = r.json.records as { progress_event_id: string }[];
      assert(records.length <= 5);
      seen.push(...records.map((x) => x.progress_event_id));
      cursor = r.json.cursor as string | null;
      pages++;
    } while (cursor);
    assertEquals(seen.length, total);
    assertEquals(new Set(seen).size, total);
    assertEquals(pages, Math.ceil(total / 5));
  } finally {
    h.close();
  }
});

Deno.test("api: any school id intake accepts filters records (acme-school, 48213)", async () => {
  const h = await harness();
  try {
    for (const tenant of ["acme-school", "48213", "school.v2_x"]) {
      await h.post(lessonWebhook({ tenant }));
      await h.post(progressWebhook({ tenant }));
    }
    for (const tenant of ["acme-school", "48213", "school.v2_x"]) {
      const r = await h.get(`/api/records?tenant_id=${tenant}`);
      assertEquals(r.status, 200, JSON.stringify(r.json));
      const records = r.json.records as { tenant_id: string }[];
      assertEquals(records.map((x) => x.tenant_id), [tenant]);
    }
  } finally {
    h.close();
  }
});

Deno.test("api: paging with since never drops or repeats a record at the since time", async () => {
  const h = await harness();
  try {
    // Five records completed at exactly T (five users), two before, two after.
    const times = [T - 2_000, T - 1_000, T, T, T, T, T, T + 1_000, T + 2_000];
    for (const [user, at] of times.entries()) {
      await h.post(lessonWebhook({ user: user + 1, at }));
      await h.post(progressWebhook({ user: user + 1, at }));
    }
    const since = new Date(T).toISOString();
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0;; pages++) {
      assert(pages < 20, `paging does not end: ${seen.length} records so far`);
      const c: string = cursor ? `&cursor=${cursor}` : "";
      const r = await h.get(`/api/records?since=${since}&limit=2${c}`);
      assertEquals(r.status, 200);
      seen.push(
        ...(r.json.records as { progress_event_id: string }[]).map((x) => x.progress_event_id),
      );
      cursor = r.json.cursor as string | null;
      if (!cursor) break;
    }
    assertEquals(seen.length, 7);
    assertEquals(new Set(seen).size, 7);
  } finally {
    h.close();
  }
});

Deno.test("api: a bad parameter is a 400 naming it", async () => {
  const h = await harness();
  try {
    const cases: [string, RegExp][] = [
      ["user_id=abc", /user_id/],
      ["user_id=0", /user_id/],
      ["user_id=-3", /user_id/],
      ["tenant_id=a%2Fb", /tenant_id/],
      ["tenant_id=", /tenant_id/],
      ["course_id=99999999999999999999", /course_id/],
      ["limit=0", /limit/],
      ["limit=501", /limit/],
      ["limit=ten", /limit/],
      ["since=yesterday", /since/],
      ["cursor=not-a-cursor", /cursor/],
      [`cursor=${btoa("[1,2,3]")}`, /cursor/],
      ["userId=1", /userId/],
      ["limit=1&limit=2", /limit/],
      ["feed?cursor=not-a-cursor", /cursor/],
      [`feed?cursor=${btoa('["x"]')}`, /cursor/],
      ["feed?limit=501", /limit/],
      ["feed?since=2026-01-01", /since/],
    ];
    for (const [query, name] of cases) {
      const path = query.startsWith("feed?") ? `/api/${query}` : `/api/records?${query}`;
      const r = await h.get(path);
      assertEquals(r.status, 400, path);
      assertMatch(String(r.json.error), name);
    }
    assertEquals((await h.get("/api/unmatched?limit=x")).status, 400);
    assertEquals((await h.get("/api/unmatched?since=2026-01-01")).status, 400);
  } finally {
    h.close();
  }
});

Deno.test("api: unmatched lists the fields of the contract, and pages", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    const lone = [1, 2, 3].map((u) => progressWebhook({ user: u, at: T + u }));
    for (const p of lone) await h.deliver(p);
    const page1 = await h.get("/api/unmatched?limit=2");
    const events = page1.json.events as Record<string, unknown>[];
    assertEquals(events.length, 2);
    assertEquals(Object.keys(events[0]).sort(), [
      "attempts",
      "course_id",
      "created_at",
      "event_id",
      "gave_up_at",
      "percentage_completed",
      "tenant_id",
      "topic",
      "user_id",
    ]);
    assertEquals(events[0].attempts, 2);
    assertEquals(events[0].topic, "enrollment.progress");
    assertEquals(events[0].percentage_completed, 17.5);
    const page2 = await h.get(`/api/unmatched?limit=2&cursor=${page1.json.cursor}`);
    const rest = page2.json.events as Record<string, unknown>[];
    assertEquals(rest.length, 1);
    assertEquals(page2.json.cursor, null);
    assertEquals(
      [...events, ...rest].map((e) => e.event_id).sort(),
      lone.map((p) => p.id).sort(),
    );
  } finally {
    h.close();
  }
});

Deno.test("api: API_TOKEN guards /api/* and nothing else", async () => {
  const h = await harness({ API_TOKEN: "s3cret-token-value" });
  try {
    for (const path of ["/api/records", "/api/unmatched", "/api/anything"]) {
      const none = await h.get(path);
      assertEquals(none.status, 401, path);
      assertMatch(String(none.json.error), /token/);
      assertEquals((await h.get(path, { authorization: "Bearer wrong" })).status, 401);
      assertEquals((await h.get(path, { authorization: "Bearer s3cret-token-valu" })).status, 401);
      assertEquals((await h.get(path, { authorization: "Basic s3cret-token-value" })).status, 401);
    }
    const ok = await h.get("/api/records", { authorization: "Bearer s3cret-token-value" });
    assertEquals(ok.status, 200);
    assertEquals((await h.get("/healthz")).status, 200);
    const res = await h.app.request("/api/records");
    assertEquals(res.headers.get("www-authenticate"), 'Bearer realm="api"');
    await res.body?.cancel();
  } finally {
    h.close();
  }
});

Deno.test("api: healthz", async () => {
  const h = await harness();
  try {
    assertEquals(await h.get("/healthz"), { status: 200, json: { status: "ok" } });
  } finally {
    h.close();
  }
});

Deno.test("api: a lesson paired after it was stored is never listed unmatched later", async () => {
  const h = await harness({ UNMATCHED_AFTER_HOURS: "1" });
  try {
    await h.post(lessonWebhook({ user: 41 })); // its listing is written for an hour from now
    h.clock.now += 60_000;
    assertEquals((await h.post(progressWebhook({ user: 41 }))).json.status, "collated");
    h.clock.now += 2 * 3_600_000;
    const listed = await h.get("/api/unmatched");
    assertEquals(listed.json.events, [], "the pairing removed the lesson's listing");
  } finally {
    h.close();
  }
});
