/**
 * Store behaviours hand-planted mutants found unpinned: an event updated at or past the end of its
 * retention still lives a minute more; an unmatched entry says when its event was created (not
 * received) and when it was listed; an erasure removes the id pointer of a paired lesson whose event
 * has expired, when that lesson came second (so only its record names it); a redelivery whose
 * `created_at` moved is counted on the event its first delivery stored; the unmatched events of a
 * course are all counted; a learner active exactly at `inactiveSince` has not stalled.
 */
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, dump, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { eraseLearner } from "../lib/store/erasure.ts";
import { remaining } from "../lib/store/events.ts";
import { listLearners } from "../lib/store/learners.ts";
import { countUnmatched } from "../lib/store/records.ts";
import type { StoredEvent } from "../lib/store/keys.ts";

const DAY = 86_400_000;

Deno.test("redteam store: an event's time left is its retention since it was received, never under a minute", () => {
  const received = Date.parse("2026-11-29T12:00:00.000Z");
  const event = { receivedAt: received } as StoredEvent;
  const retention = 7 * DAY;
  assertEquals(remaining(event, retention, received), retention);
  assertEquals(remaining(event, retention, received + 2 * DAY), 5 * DAY);
  assertEquals(remaining(event, retention, received + retention - 60_001), 60_001);
  assertEquals(remaining(event, retention, received + retention - 1_000), 60_000);
  assertEquals(remaining(event, retention, received + retention + 3 * DAY), 60_000);
});

Deno.test("redteam store: an unmatched entry gives its event's created_at and the time it gave up", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    const progress = progressWebhook({ user: 91, at: BASE_TIME });
    const first = h.clock.now;
    const r = await h.deliver(progress);
    assertEquals([r.status, r.json.status, r.attempts], [200, "unmatched", 2]);
    const events = (await h.get("/api/unmatched")).json.events as Record<string, unknown>[];
    assertEquals(events.map((e) => [e.event_id, e.created_at, e.gave_up_at, e.attempts]), [
      [progress.id, progress.created_at, new Date(first + 60_000).toISOString(), 2],
    ]);
  } finally {
    h.close();
  }
});

Deno.test("redteam store: erasing a learner removes the id pointer of an expired lesson that paired on arrival", async () => {
  const h = await harness();
  try {
    const who = { user: 92, at: BASE_TIME };
    assertEquals((await h.post(progressWebhook(who))).status, 409);
    const lesson = await h.post(lessonWebhook(who)); // pairs at once: stored already paired
    assertEquals(lesson.json.status, "collated");
    // What RETENTION_DAYS leaves of the events: their id pointers (kept 30 days more).
    for (const e of await dump(h.kv)) {
      if (e.key[0] === "events" || e.key[0] === "event_bodies") await h.kv.delete(e.key);
    }
    await eraseLearner(h.kv, { tenantId: "48213", userId: 92 }, {
      destinations: [],
      now: h.clock.now,
    });
    const left = (await dump(h.kv)).filter((e) => e.key[0] === "event_ids");
    assertEquals(left.map((e) => e.key), []);
  } finally {
    h.close();
  }
});

Deno.test("redteam store: a redelivery whose created_at moved is counted on the event its first delivery stored", async () => {
  const h = await harness();
  try {
    const progress = progressWebhook({ user: 93, at: BASE_TIME });
    const first = await h.post(progress);
    assertEquals([first.status, first.json.attempts], [409, 1]);
    h.clock.now += 60_000;
    const moved = { ...progress, created_at: new Date(BASE_TIME + 1_000).toISOString() };
    const again = await h.post(moved);
    assertEquals([again.status, again.json.status, again.json.attempts], [409, "pending", 2]);
  } finally {
    h.close();
  }
});

Deno.test("redteam store: every unmatched event of a course is counted, per course", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    for (const [user, course] of [[94, 500], [95, 500], [96, 500], [94, 501]]) {
      const r = await h.deliver(progressWebhook({ user, course, at: BASE_TIME + user }));
      assertEquals(r.json.status, "unmatched");
    }
    const counts = await countUnmatched(h.kv, h.clock.now);
    assertEquals([...counts].sort(), [[500, 3], [501, 1]]);
  } finally {
    h.close();
  }
});

Deno.test("redteam store: learners inactive since T are those whose last activity is at or before T", async () => {
  const h = await harness();
  try {
    for (const [user, at] of [[97, BASE_TIME], [98, BASE_TIME - 1]]) {
      assertEquals((await h.post(lessonWebhook({ user, at }))).status, 200);
      assertEquals((await h.post(progressWebhook({ user, at }))).json.status, "collated");
    }
    const course = 2100013;
    await h.project();
    const stalled = (since: number) =>
      listLearners(h.kv, course, { limit: 10, inactiveSince: since })
        .then((p) => p.learners.map((l) => l.user_id));
    assertEquals(await stalled(BASE_TIME + 1), [97, 98]);
    assertEquals(await stalled(BASE_TIME), [97, 98]);
    assertEquals(await stalled(BASE_TIME - 1), [98]);
    assertEquals(await stalled(BASE_TIME - 2), []);
  } finally {
    h.close();
  }
});
