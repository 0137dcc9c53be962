/**
 * The projector: views derived from records are written off the request path, exactly once, in
 * the order an enrollment's records were made, across processes and restarts; readers see them as
 * if they were written in the record's commit.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  harness,
  idleForwarder,
  lessonWebhook,
  progressWebhook,
  signedInit,
  type TestInit,
} from "./_helpers.ts";
import { pairsLeftPending, pendingProjections } from "./_projection.ts";
import { messageIdOf } from "../lib/store/outbox.ts";
import { createApp } from "../lib/http/app.ts";
import { createProjector, KICK_EVERY } from "../lib/projector.ts";
import { PROJECTION_BATCH, projectPending } from "../lib/store/projections.ts";
import {
  courseCounterKey,
  type LearnerEntry,
  learnerKey,
  lessonCounterKey,
  PROJECTION_PREFIX,
  PROJECTOR_LEASE_KEY,
  type ProjectorLease,
} from "../lib/store/keys.ts";

const HOUR = 3_600_000;
const T0 = Date.parse("2026-11-29T10:00:00.000Z");

/** The percentage of the `i`-th record of a learner in {@linkcode pairs}. */
const percentageOf = (i: number) => 10 + (i % 90);

/** `n` exact pairs of user `user` (lessons 1..n, an hour apart), their projections left pending. */
const pairs = (h: Awaited<ReturnType<typeof harness>>, n: number, user = 7, course = 10) =>
  pairsLeftPending(h, n, (i) => ({
    user,
    course,
    lesson: i + 1,
    at: T0 + i * HOUR,
    percentage: String(percentageOf(i)),
  }));

const pending = pendingProjections;

const u64 = async (kv: Deno.Kv, key: Deno.KvKey) =>
  Number((await kv.get<Deno.KvU64>(key)).value?.value ?? 0n);

Deno.test("a record's commit leaves its derived views to the projector: one entry per record, none of the views", async () => {
  const h = await harness();
  try {
    await pairs(h, 3);
    assertEquals(await pending(h.kv), 3);
    assertEquals((await h.kv.get(learnerKey(10, 7))).value, null);
    assertEquals(await u64(h.kv, courseCounterKey(10, "learners")), 0);
    const keys = (await Array.fromAsync(h.kv.list({ prefix: PROJECTION_PREFIX }))).map((e) =>
      e.key
    );
    // Numbered per enrollment, in the order the records were made.
    assertEquals(keys, [1, 2, 3].map((n) => ["projection", "48213", 7, 10, n]));
  } finally {
    h.close();
  }
});

Deno.test("a read of a derived view projects what is pending first", async () => {
  const h = await harness();
  try {
    await pairs(h, 2);
    const r = await h.get("/api/records?user_id=7");
    assertEquals(r.status, 200);
    assertEquals((r.json.records as unknown[]).length, 2);
    assertEquals(await pending(h.kv), 0);
    const learner = (await h.kv.get<LearnerEntry>(learnerKey(10, 7))).value!;
    assertEquals([learner.last_lesson_id, learner.lessons_completed], [2, 2]);
    assertEquals(learner.percentage_completed, 11);
    assertEquals(await u64(h.kv, courseCounterKey(10, "learners")), 1);
    assertEquals(await u64(h.kv, lessonCounterKey(10, 2)), 1);
  } finally {
    h.close();
  }
});

Deno.test("two processes projecting at once project each record exactly once", async () => {
  const h = await harness();
  try {
    // Three learners, 40 records each: more than one batch.
    for (const user of [1, 2, 3]) await pairs(h, 40, user);
    assertEquals(await pending(h.kv), 120);
    const opts = { destinations: ["crm"], now: T0 };
    const [a, b, c] = await Promise.all([
      projectPending(h.kv, opts),
      projectPending(h.kv, opts),
      projectPending(h.kv, opts),
    ]);
    assertEquals(a + b + c, 120);
    assertEquals(await pending(h.kv), 0);
    assertEquals(await u64(h.kv, courseCounterKey(10, "learners")), 3);
    for (let lesson = 1; lesson <= 40; lesson++) {
      assertEquals(await u64(h.kv, lessonCounterKey(10, lesson)), 3, `lesson ${lesson}`);
    }
    const outbox = await Array.fromAsync(h.kv.list({ prefix: ["outbox"] }));
    assertEquals(outbox.length, 120);
    const due = await Array.fromAsync(h.kv.list({ prefix: ["outbox_due"] }));
    assertEquals(due.length, 120);
    for (const user of [1, 2, 3]) {
      const learner = (await h.kv.get<LearnerEntry>(learnerKey(10, user))).value!;
      assertEquals([learner.last_lesson_id, learner.lessons_completed], [40, 40]);
    }
    const lease = (await h.kv.get<ProjectorLease>(PROJECTOR_LEASE_KEY)).value!;
    assertEquals(lease.at, T0);
    assert(lease.projected > 0 && lease.projected <= PROJECTION_BATCH);
  } finally {
    h.close();
  }
});

Deno.test("a projection left by a process that stopped is projected by a new one", async () => {
  const h = await harness();
  try {
    await pairs(h, 2);
    // A new process: its own projector, nothing in memory of the records.
    let kicked = 0;
    const fresh = createProjector({ kv: h.kv, onProjected: () => kicked++ });
    await fresh.drain();
    assertEquals(await pending(h.kv), 0);
    assertEquals(kicked, 1);
    await fresh.drain(); // nothing left: no run that projects
    assertEquals(kicked, 1);
    const learner = (await h.kv.get<LearnerEntry>(learnerKey(10, 7))).value!;
    assertEquals(learner.lessons_completed, 2);
  } finally {
    h.close();
  }
});

Deno.test("an enrollment's records are projected in the order they were made, batch after batch", async () => {
  const h = await harness();
  try {
    // More records of one learner than one batch reads.
    await pairs(h, PROJECTION_BATCH + 5, 9);
    await projectPending(h.kv, { destinations: [], now: T0 });
    const learner = (await h.kv.get<LearnerEntry>(learnerKey(10, 9))).value!;
    assertEquals(learner.last_lesson_id, PROJECTION_BATCH + 5);
    assertEquals(learner.percentage_completed, percentageOf(PROJECTION_BATCH + 4));
    const index = await Array.fromAsync(h.kv.list({ prefix: ["learners_by_activity", 10] }));
    assertEquals(index.length, 1);
  } finally {
    h.close();
  }
});

Deno.test("a kick is the forwarder's when forwarding, else a run every KICK_EVERY records", async () => {
  const h = await harness();
  try {
    await pairs(h, 3);
    let runs = 0;
    const quiet = createProjector({ kv: h.kv, onProjected: () => runs++ });
    for (let i = 1; i < KICK_EVERY; i++) quiet.kick();
    await quiet.drain(); // waits for any run a kick started
    assertEquals(runs, 1); // the drain's own: no kick ran one
    await pairs(h, 1, 8);
    for (let i = 0; i < KICK_EVERY; i++) quiet.kick();
    await quiet.drain();
    assertEquals(runs, 2);
    assertEquals(KICK_EVERY, 64);
    await pairs(h, 1, 9);
    let forwarded = 0;
    const forwarding = createProjector({
      kv: h.kv,
      destinations: ["crm"],
      onProjected: () => forwarded++,
    });
    // Forwarding: a kick is the forwarder's at once (its sweep projects first), with no run here.
    forwarding.kick();
    assertEquals([forwarded, await pending(h.kv)], [1, 1]);
    await forwarding.drain(); // a run that projects kicks the forwarder too
    assertEquals([forwarded, await pending(h.kv)], [2, 0]);
    assertEquals((await Array.fromAsync(h.kv.list({ prefix: ["outbox"] }))).length, 1);
  } finally {
    h.close();
  }
});

Deno.test("drains that come during a run share the next run", async () => {
  const h = await harness();
  try {
    await pairs(h, 2);
    let runs = 0;
    const p = createProjector({ kv: h.kv, onProjected: () => runs++ });
    const first = p.drain();
    await pairs(h, 1, 8); // committed while the first run may already have listed
    const later = [p.drain(), p.drain(), p.drain()];
    await Promise.all([first, ...later]);
    assertEquals(await pending(h.kv), 0);
    assert(runs <= 2, `${runs} runs`);
  } finally {
    h.close();
  }
});

Deno.test("erasing a learner with records still to project leaves none of their views", async () => {
  const h = await harness();
  try {
    await pairs(h, 3, 7);
    await pairs(h, 1, 8);
    const r = await h.app.request("/api/learners/48213/7", { method: "DELETE" });
    assertEquals(r.status, 200);
    await r.body?.cancel();
    assertEquals(await pending(h.kv), 0);
    assertEquals((await h.kv.get(learnerKey(10, 7))).value, null);
    assertEquals((await h.kv.get(learnerKey(10, 8))).value !== null, true);
    assertEquals(await u64(h.kv, courseCounterKey(10, "learners")), 1);
    for (const lesson of [2, 3]) assertEquals(await u64(h.kv, lessonCounterKey(10, lesson)), 0);
    const mentions = (await Array.fromAsync(h.kv.list({ prefix: [] }))).filter((e) =>
      JSON.stringify(e.key).includes(",7,") || JSON.stringify(e.key).endsWith(",7]")
    );
    assertEquals(mentions.map((e) => e.key), [["erased", "48213", 7]]);
  } finally {
    h.close();
  }
});

Deno.test("a record whose projection alone exceeds one commit fails loudly instead of looping", async () => {
  const h = await harness();
  try {
    await pairs(h, 1);
    // 120 destinations: 120 outbox checks, over Deno KV's 100 per commit.
    const destinations = Array.from({ length: 120 }, (_, i) => `d${i}`);
    const outcome = await projectPending(h.kv, { destinations, now: T0 }).then(
      () => "projected",
      (err) => `rejected: ${(err as Error).name}`,
    );
    assertEquals(outcome.startsWith("rejected"), true, outcome);
    assertEquals(await pending(h.kv), 1, "left for a run that can commit it");
  } finally {
    h.close();
  }
});

Deno.test("every reader of a derived view projects first: API, CSV, courses, outbox, retry, dashboard, unmatched lists", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const h = await harness({}, kv);
    // An idle forwarder: nothing projects but the readers (the app's own projector).
    const app = createApp({ kv, config: h.config, forwarder: idleForwarder(), log: () => {} });
    let user = 100;
    /** A new record whose views are still to be projected; its outbox entry's id. */
    const fresh = async () => {
      user++;
      const progress = progressWebhook({ user, course: 10 });
      for (const body of [lessonWebhook({ user, course: 10 }), progress]) {
        const res = await app.request("/webhooks/thinkific", await signedInit(body));
        await res.body?.cancel();
      }
      const ids = { tenant_id: progress.tenant_id, progress_event_id: progress.id };
      return `webhook:${messageIdOf(ids)}`;
    };
    const read = async (path: string, init?: TestInit) => {
      assertEquals(await pending(kv), 1, `before ${path}`);
      const res = await app.request(path, init);
      const text = await res.text();
      assertEquals(await pending(kv), 0, path);
      return { status: res.status, text };
    };
    await fresh();
    const csv = await read(`/api/records.csv?user_id=${user}`);
    assertEquals(csv.text.trim().split("\r\n").length, 2, "the header and the record");
    await fresh();
    const courses = JSON.parse((await read("/api/courses")).text);
    assertEquals(courses.courses[0].learners, 2);
    await fresh();
    const lessons = JSON.parse((await read("/api/courses/10/lessons")).text);
    assertEquals(lessons.lessons.length > 0, true);
    await fresh();
    const outbox = JSON.parse((await read("/api/outbox?status=pending")).text);
    assertEquals(outbox.entries.length, 4);
    const id = await fresh();
    assertEquals((await read(`/api/outbox/${id}/retry`, { method: "POST" })).status, 202);
    await fresh();
    assertEquals((await read("/")).status, 200);
    await fresh();
    const course = await read("/courses/10");
    assertEquals(course.status, 200);
    assertEquals(course.text.includes("<b>7</b> learners seen"), true, "every learner counted");
    await fresh();
    assertEquals((await read("/courses/10/learners")).status, 200);
    // The unmatched lists: a pair's record ends its events' unmatched entries when projected.
    await fresh();
    assertEquals((await read("/unmatched")).status, 200);
    await fresh();
    assertEquals((await read("/api/unmatched")).status, 200);
  } finally {
    kv.close();
  }
});
