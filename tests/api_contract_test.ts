/**
 * The `/api` routes (lib/http/api.ts) as the README's contract states them: the CSV download's
 * headers and filters, erasing a learner, the feed's visibility delay, a course's lessons, and the
 * outbox listing and its retry, each status with its JSON error naming what is wrong.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import {
  BASE_TIME,
  dump,
  harness,
  idleForwarder,
  lessonWebhook,
  progressWebhook,
  SECRET,
  signedInit,
} from "./_helpers.ts";
import { createProjector } from "../lib/projector.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import { leaseDue, settle } from "../lib/store/outbox.ts";

const T = BASE_TIME;
const DAY = 86_400_000;

/** The app with a forwarder to "webhook" that never sweeps but counts its kicks, on a clock. */
async function forwardingService() {
  const kv = await Deno.openKv(":memory:");
  const forwarder = idleForwarder();
  const kicks = { n: 0 };
  forwarder.kick = () => void kicks.n++;
  const clock = { now: T + DAY };
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
  const projector = createProjector({
    kv,
    destinations: forwarder.destinations,
    onProjected: () => forwarder.kick(),
    now: () => clock.now,
  });
  const app = createApp({ kv, config, forwarder, projector, log: () => {}, now: () => clock.now });
  const request = async (path: string, method = "GET") => {
    const res = await app.request(path, { method });
    return { status: res.status, json: await res.json() };
  };
  /** Posts a pair for `user`: one record, one outbox entry (once projected, awaited here). */
  const pair = async (user: number, at = T) => {
    for (const body of [lessonWebhook({ user, at }), progressWebhook({ user, at })]) {
      const res = await app.request("/webhooks/thinkific", await signedInit(body));
      await res.body?.cancel();
    }
    await projector.drain();
  };
  return { kv, app, kicks, clock, request, pair };
}

/** Ends the first delivery attempt of every due entry: failed for good, or delivered. */
async function settleAll(kv: Deno.Kv, now: number, outcome: "dead" | "delivered") {
  const { leased } = await leaseDue(kv, now, { limit: 100, take: () => true });
  const settlements = leased.map((l) =>
    outcome === "dead"
      ? { leased: l, outcome: "failed" as const, error: "receiver down", retryInMs: null }
      : { leased: l, outcome: "delivered" as const }
  );
  await settle(kv, settlements, now, DAY);
  return leased.map((l) => l.value.id);
}

Deno.test("api: the CSV download is an attachment named records.csv, filtered like /api/records", async () => {
  const h = await harness();
  try {
    for (const user of [1, 2]) {
      await h.post(lessonWebhook({ user }));
      await h.post(progressWebhook({ user }));
    }
    const res = await h.app.request("/api/records.csv?user_id=2");
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "text/csv; charset=utf-8; header=present");
    assertEquals(res.headers.get("content-disposition"), 'attachment; filename="records.csv"');
    const lines = (await res.text()).trim().split("\r\n");
    assertEquals(lines.length, 2, "the header and user 2's record");
    assertMatch(lines[1], /,2,/);
    const lateOnly = await h.app.request(`/api/records.csv?since=${new Date(T + 1).toISOString()}`);
    assertEquals((await lateOnly.text()).trim().split("\r\n").length, 1, "the header row alone");
    for (const [query, name] of [["limit=5", "limit"], ["cursor=x", "cursor"], ["x=1", "x"]]) {
      const bad = await h.get(`/api/records.csv?${query}`);
      assertEquals(bad.status, 400, query);
      assertEquals(bad.json.error, `query parameter ${name} is not a known parameter`);
    }
  } finally {
    h.close();
  }
});

Deno.test("api: the CSV download neutralises formulas unless raw=true", async () => {
  const h = await harness();
  try {
    await h.post(lessonWebhook({ lessonName: "=1+2" }));
    await h.post(progressWebhook());
    const text = async (path: string) => await (await h.app.request(path)).text();
    assertMatch(await text("/api/records.csv"), /,'=1\+2,/);
    assertMatch(await text("/api/records.csv?raw=false"), /,'=1\+2,/);
    assertMatch(await text("/api/records.csv?raw=true"), /,=1\+2,/);
  } finally {
    h.close();
  }
});

Deno.test("api: since takes a date alone, as that day's midnight UTC", async () => {
  const h = await harness();
  try {
    for (
      const [user, at] of [[1, Date.parse("2026-11-02T23:59:59.999Z")], [
        2,
        Date.parse("2026-11-03T00:00:00.000Z"),
      ]]
    ) {
      await h.post(lessonWebhook({ user, at }));
      await h.post(progressWebhook({ user, at }));
    }
    const r = await h.get("/api/records?since=2026-11-03");
    assertEquals(r.status, 200);
    assertEquals((r.json.records as { user_id: number }[]).map((x) => x.user_id), [2]);
  } finally {
    h.close();
  }
});

Deno.test("api: erasing a learner answers what was removed, outbox included, and keeps the time", async () => {
  const s = await forwardingService();
  try {
    await s.pair(1);
    await s.pair(2);
    const r = await s.request("/api/learners/48213/1", "DELETE");
    assertEquals(r, {
      status: 200,
      json: {
        status: "erased",
        tenant_id: "48213",
        user_id: 1,
        removed: {
          events: 2,
          records: 1,
          enrollments: 1,
          learner_entries: 1,
          unmatched: 0,
          outbox: 1,
        },
      },
    });
    const tombstone = await s.kv.get(["erased", "48213", 1]);
    assertEquals(tombstone.value, { erased_at: new Date(s.clock.now).toISOString() });
    const left = (await s.request("/api/outbox?status=pending")).json.entries;
    assertEquals(left.map((e: { record: { user_id: number } }) => e.record.user_id), [2]);
  } finally {
    s.kv.close();
  }
});

Deno.test("api: a bad learner path is a 400 naming the parameter, nothing erased", async () => {
  const h = await harness();
  try {
    const cases: [string, string][] = [
      ["a%2Fb/1", "path parameter tenantId"],
      ["48213/0", "path parameter userId must be a positive integer"],
      ["48213/x", "path parameter userId must be a positive integer"],
    ];
    for (const [path, error] of cases) {
      const res = await h.app.request(`/api/learners/${path}`, { method: "DELETE" });
      assertEquals(res.status, 400, path);
      const json = await res.json();
      assert(String(json.error).startsWith(error), `${path}: ${json.error}`);
    }
    assertEquals(await dump(h.kv), []);
  } finally {
    h.close();
  }
});

Deno.test("api: the feed shows a record FEED_DELAY_MS after it was made, not before", async () => {
  const h = await harness({ FEED_DELAY_MS: "100" });
  try {
    await h.post(lessonWebhook());
    const made = (await h.post(progressWebhook())).json.record as Record<string, unknown>;
    assertEquals(made.collated_at, new Date(h.clock.now).toISOString());
    const first = await h.get("/api/feed");
    assertEquals([first.status, first.json.records], [200, []]);
    h.clock.now += 90;
    const early = await h.get(`/api/feed?cursor=${first.json.cursor}`);
    assertEquals(early.json.records, [], "90 ms after: not yet");
    h.clock.now += 60; // 150 ms after: the fence moves by 100 ms steps (FEED_DELAY_MS < 1 s)
    const later = await h.get(`/api/feed?cursor=${early.json.cursor}`);
    const records = later.json.records as { progress_event_id: string }[];
    assertEquals(records.map((r) => r.progress_event_id), [made.progress_event_id]);
  } finally {
    h.close();
  }
});

Deno.test("api: a course's lessons with their learners; an unknown course is a 404 naming it", async () => {
  const h = await harness();
  try {
    await h.post(lessonWebhook({ course: 10, lesson: 7, lessonName: "Brushes" }));
    await h.post(progressWebhook({ course: 10 }));
    assertEquals(await h.get("/api/courses/10/lessons"), {
      status: 200,
      json: {
        lessons: [{
          lesson_id: 7,
          lesson_name: "Brushes",
          chapter_id: 7013,
          chapter_name: "Mixing colours",
          learners: 1,
        }],
      },
    });
    assertEquals(await h.get("/api/courses/11/lessons"), {
      status: 404,
      json: { error: "no course 11" },
    });
    const bad = await h.get("/api/courses/10/lessons?x=1");
    assertEquals([bad.status, bad.json.error], [400, "query parameter x is not a known parameter"]);
    const path = await h.get("/api/courses/1x/lessons");
    assertEquals(
      [path.status, path.json.error],
      [400, "path parameter courseId must be a positive integer"],
    );
  } finally {
    h.close();
  }
});

Deno.test("api: the outbox lists dead entries by default, pending ones on request, and pages", async () => {
  const s = await forwardingService();
  try {
    await s.pair(1, T);
    await s.pair(2, T + 60_000);
    await s.pair(3, T + 120_000);
    assertEquals((await s.request("/api/outbox")).json, { entries: [], cursor: null });
    const first = await s.request("/api/outbox?status=pending&limit=2");
    assertEquals(first.status, 200);
    const users = (p: { json: { entries: { record: { user_id: number } }[] } }) =>
      p.json.entries.map((e) => e.record.user_id);
    assertEquals(users(first), [1, 2]);
    const rest = await s.request(`/api/outbox?status=pending&limit=2&cursor=${first.json.cursor}`);
    assertEquals([users(rest), rest.json.cursor], [[3], null]);

    const wrong = await s.request(`/api/outbox?status=dead&cursor=${first.json.cursor}`);
    assertEquals(wrong.status, 400);
    assertMatch(wrong.json.error, /^query parameter cursor is a cursor of/);
    assertEquals(wrong.json.issues.map((i: { path: string[] }) => i.path), [["cursor"]]);
    const bogus = await s.request("/api/outbox?status=gone");
    assertEquals(bogus.status, 400);
    assertMatch(bogus.json.error, /^query parameter status /);

    const dead = await settleAll(s.kv, s.clock.now, "dead");
    assertEquals(dead.length, 3);
    const listed = await s.request("/api/outbox?limit=1");
    assertEquals(listed.json.entries.length, 1);
    assertEquals(listed.json.entries[0].status, "dead");
    assertEquals(listed.json.entries[0].lastError, "receiver down");
    const next = await s.request(`/api/outbox?cursor=${listed.json.cursor}`);
    assertEquals(next.json.entries.length, 2);
    const onPending = await s.request(`/api/outbox?status=pending&cursor=${listed.json.cursor}`);
    assertEquals(onPending.status, 400);
  } finally {
    s.kv.close();
  }
});

Deno.test("api: retrying a dead outbox entry queues it (202) and kicks the forwarder", async () => {
  const s = await forwardingService();
  try {
    await s.pair(1);
    const [id] = await settleAll(s.kv, s.clock.now, "dead");
    const kicksBefore = s.kicks.n;
    const r = await s.request(`/api/outbox/${id}/retry`, "POST");
    assertEquals(r, { status: 202, json: { status: "pending", id, attempts: 1 } });
    assertEquals(s.kicks.n, kicksBefore + 1);
    const pending = await s.request("/api/outbox?status=pending");
    assertEquals(pending.json.entries.map((e: { id: string }) => e.id), [id]);
    assertEquals((await s.request("/api/outbox?status=dead")).json.entries, []);

    await settleAll(s.kv, s.clock.now, "delivered");
    const again = await s.request(`/api/outbox/${id}/retry`, "POST");
    assertEquals(again, {
      status: 409,
      json: { error: `outbox entry ${id} was already delivered` },
    });
    assertEquals(s.kicks.n, kicksBefore + 1, "no kick for a delivered entry");
  } finally {
    s.kv.close();
  }
});

Deno.test("api: a dead entry can be retried by a process that no longer forwards", async () => {
  const s = await forwardingService();
  const h = await harness({}, s.kv);
  try {
    await s.pair(1);
    const [id] = await settleAll(s.kv, s.clock.now, "dead");
    const r = await h.app.request(`/api/outbox/${id}/retry`, { method: "POST" });
    assertEquals([r.status, (await r.json()).status], [202, "pending"]);
  } finally {
    s.kv.close();
  }
});

Deno.test("api: an outbox id that is not one is a 400, an unknown one a 404, each naming it", async () => {
  const s = await forwardingService();
  try {
    const unknown = ["webhook:msg_1_2", "a:msg_x.uy_z..w-1", `${"d".repeat(32)}:msg_1_2`];
    for (const id of unknown) {
      assertEquals(await s.request(`/api/outbox/${id}/retry`, "POST"), {
        status: 404,
        json: { error: `no outbox entry ${id}` },
      }, id);
    }
    const invalid = [
      ":msg_1_2",
      `${"d".repeat(33)}:msg_1_2`,
      "webhook:msg_1",
      "webhook:msg_1_2_3",
      "webhook:msg_1_2!",
      "!webhook:msg_1_2",
      "web hook:msg_1_2",
      "webhook:msg_1._2",
      "webhook:mxg_1_2",
    ];
    for (const id of invalid) {
      assertEquals(await s.request(`/api/outbox/${encodeURIComponent(id)}/retry`, "POST"), {
        status: 400,
        json: { error: `outbox id "${id}" is not valid` },
      }, id);
    }
    assertEquals(s.kicks.n, 0);
  } finally {
    s.kv.close();
  }
});
