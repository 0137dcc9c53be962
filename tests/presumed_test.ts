/**
 * Presumed views (`lib/store/presumed.ts`, used by `coldView` in `lib/collator.ts`): a cold first
 * delivery decided without a read leaves what a read would have left; a wrong presumption fails its
 * commit and is decided again from a read; the share that turns presuming on and off is learnt from
 * reads and commits; what is kept is bounded.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  BASE_TIME,
  dump,
  lessonWebhook,
  progressWebhook,
  SECRET,
  signedInit,
  type Webhook,
} from "./_helpers.ts";
import { parseConfig } from "../lib/config.ts";
import { createApp } from "../lib/http/app.ts";
import { collate } from "../lib/collator.ts";
import { createCommitter } from "../lib/store/committer.ts";
import { createLanes } from "../lib/lanes.ts";
import { type EventIdentity, readView } from "../lib/store/events.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { courseInfoKey, eventIdKey, FEED_FENCE_KEY } from "../lib/store/keys.ts";
import {
  JOIN_WAIT_MS,
  PRESUME_AT_SHARE,
  PRESUME_OVER,
  WARM_ENROLLMENTS,
  WARM_FOR_MS,
} from "../lib/store/limits.ts";
import { createPresumptions, emptyView, type Presumptions } from "../lib/store/presumed.ts";
import { createWarmViews } from "../lib/store/warm.ts";
import { parseWebhook, type ThinkificEvent } from "../lib/thinkific/schemas.ts";
import { eraseLearner } from "../lib/store/erasure.ts";

const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
const W = config.matchWindowMs;
const enc = new TextEncoder();
const at = (ms: number) => BASE_TIME + ms;

function eventOf(body: Webhook): ThinkificEvent {
  const parsed = parseWebhook(body, null);
  if (parsed.kind !== "event") throw new Error("not an event");
  return parsed.event;
}

const identity = (e: ThinkificEvent): EventIdentity => ({
  id: e.id,
  topic: e.topic,
  tenantId: e.tenantId,
  userId: e.userId,
  courseId: e.courseId,
  at: e.at,
});

/** A read's view of a delivery (first try), as `coldView` hands it to `read`. */
const readOf = async (kv: Deno.Kv, body: Webhook) => await readView(kv, identity(eventOf(body)), W);

for (const make of [lessonWebhook, progressWebhook]) {
  Deno.test(`presumed: the empty view of a new ${make({}).resource} event is what a read gives in an empty enrollment`, async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const course = { tenant_id: "48213", course_id: 2100013, course_name: "Watercolor" };
      await kv.set(courseInfoKey(course.course_id), course);
      await kv.set(FEED_FENCE_KEY, at(-5_000));
      const body = make({ at: at(0) });
      const read = await readOf(kv, body);
      assertEquals(emptyView(identity(eventOf(body)), W, read.fence, read.course), read);
    } finally {
      kv.close();
    }
  });
}

Deno.test("presumed: nothing is presumed until most cold first deliveries found their enrollment empty", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const p = createPresumptions();
    const e = identity(eventOf(lessonWebhook({ user: 1 })));
    assertEquals(p.view(e, W, 0), null, "starts by reading");
    let reads = 0;
    for (let user = 2; p.view(e, W, 0) === null; user++) {
      p.read(await readOf(kv, lessonWebhook({ user })), true, 0);
      reads++;
    }
    // Each read of an empty enrollment moves the share 1/PRESUME_OVER of the way to 1.
    const expected = Math.ceil(Math.log(1 - PRESUME_AT_SHARE) / Math.log(1 - 1 / PRESUME_OVER));
    assertEquals(reads, expected);
    assert(p.share >= PRESUME_AT_SHARE && p.share < PRESUME_AT_SHARE + 1 / PRESUME_OVER);
    // Retries and warm deliveries (not first) do not count.
    const before = p.share;
    p.read(await readOf(kv, lessonWebhook({ user: 999 })), false, 0);
    assertEquals(p.share, before);
  } finally {
    kv.close();
  }
});

Deno.test("presumed: reads that found events, and presumptions that failed, turn presuming off", async () => {
  const other = await collator(undefined);
  const kv = other.db;
  try {
    const p = createPresumptions({ share: 1 });
    // Enrollments with events: each read of one counts against presuming.
    let found = 0;
    for (let user = 1; p.view(identity(eventOf(lessonWebhook({ user: 500 }))), W, 0); user++) {
      await other.post(lessonWebhook({ user, at: at(0) }));
      p.read(await readOf(kv, lessonWebhook({ user, at: at(5_000) })), true, 0);
      found++;
    }
    const expected = Math.ceil(Math.log(PRESUME_AT_SHARE) / Math.log(1 - 1 / PRESUME_OVER));
    assertEquals(found, expected);
    // A presumption that failed counts the same; one that held counts for it.
    const q = createPresumptions({ share: 1 });
    const v = q.view(identity(eventOf(lessonWebhook({ user: 7 }))), W, 0)!;
    assertEquals(v.presumed, true);
    q.settled(v, false, null, 0);
    assertEquals(q.share, 1 - 1 / PRESUME_OVER);
    const w = q.view(identity(eventOf(lessonWebhook({ user: 8 }))), W, 0)!;
    q.settled(w, true, null, 0);
    assertEquals(q.share, 1 - 1 / PRESUME_OVER + 1 / PRESUME_OVER ** 2);
    // A view not presumed here teaches nothing of presuming.
    const read = await readOf(kv, lessonWebhook({ user: 9 }));
    assertEquals(read.presumed, undefined);
    const share = q.share;
    q.settled(read, false, null, 0);
    assertEquals(q.share, share);
  } finally {
    other.close();
  }
});

Deno.test("presumed: an enrollment seen with events, read or committed, is not presumed new", async () => {
  const other = await collator(undefined);
  const kv = other.db;
  try {
    const p = createPresumptions({ share: 1, enrollments: 2 });
    const e = (user: number) => identity(eventOf(lessonWebhook({ user, at: at(0) })));
    // Committed here: known.
    const v1 = p.view(e(1), W, 0)!;
    p.settled(v1, true, null, 0);
    assertEquals(p.view(e(1), W, 0), null);
    // A failed commit proves nothing.
    const v2 = p.view(e(2), W, 0)!;
    p.settled(v2, false, null, 0);
    assert(p.view(e(2), W, 0));
    // Read with events (stored by another process): known, and not counted as cold twice.
    await other.post(lessonWebhook({ user: 3 }));
    p.read(await readOf(kv, lessonWebhook({ user: 3 })), true, 0);
    assertEquals(p.view(e(3), W, 0), null);
    const share = p.share;
    p.read(await readOf(kv, lessonWebhook({ user: 3 })), true, 0);
    assertEquals(p.share, share, "a known enrollment's read is not a cold one");
    // Read empty: not known.
    p.read(await readOf(kv, lessonWebhook({ user: 4 })), true, 0);
    assert(p.view(e(4), W, 0));
    // Only the last `enrollments` are kept: 1 (oldest) is forgotten once 3 and then 5 are known.
    const v5 = p.view(e(5), W, 0)!;
    p.settled(v5, true, null, 0);
    assert(p.view(e(1), W, 0), "forgotten");
    assertEquals(p.view(e(3), W, 0), null);
    assertEquals(p.view(e(5), W, 0), null);
  } finally {
    other.close();
  }
});

Deno.test("presumed: the fence and course names last read or written serve the views, names for a while", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const p = createPresumptions({ share: 1 });
    const course = (id: number) => ({ tenant_id: "48213", course_id: id, course_name: `C${id}` });
    await kv.set(courseInfoKey(1), course(1));
    const fence = await kv.set(FEED_FENCE_KEY, at(-5_000));
    p.read(await readOf(kv, lessonWebhook({ user: 1, course: 1 })), true, 100);
    const e = identity(eventOf(lessonWebhook({ user: 2, course: 1 })));
    const v = p.view(e, W, 100 + WARM_FOR_MS - 1)!;
    assertEquals(v.fence, {
      key: FEED_FENCE_KEY,
      value: at(-5_000),
      versionstamp: fence.versionstamp,
    });
    assertEquals(v.course, course(1));
    assertEquals(p.view(e, W, 100 + WARM_FOR_MS)!.course, null, "too old to trust");
    // Written by a commit here.
    const other = identity(eventOf(lessonWebhook({ user: 3, course: 2 })));
    p.settled(p.view(other, W, 0)!, true, course(2), 200);
    assertEquals(p.view({ ...other, userId: 4 }, W, 200)!.course, course(2));
    // At most WARM_ENROLLMENTS names: the oldest goes.
    for (let id = 10; id < 10 + WARM_ENROLLMENTS; id++) p.settled(v, true, course(id), 300);
    assertEquals(p.view({ ...other, userId: 5 }, W, 300)!.course, null);
    assertEquals(p.view({ ...other, userId: 5, courseId: 10 }, W, 300)!.course, course(10));
  } finally {
    kv.close();
  }
});

/** A collator on `kv` with lanes, warm views and presumptions, counting its reads and commits. */
async function collator(presumed: Presumptions | undefined, real?: Deno.Kv) {
  const db = real ?? await Deno.openKv(":memory:");
  const counts = { commits: 0, reads: 0 };
  const kv = instrumentKv(db, {
    before: (c) => {
      if (c === "commit") counts.commits++;
      else counts.reads++;
    },
  });
  const deps = {
    kv,
    committer: createCommitter(kv),
    lanes: createLanes(),
    warm: createWarmViews(),
    presumed,
  };
  const now = Date.parse("2026-11-29T12:00:00.000Z");
  const post = (body: Webhook, t = 0) =>
    collate(deps, eventOf(body), enc.encode(JSON.stringify(body)), {
      ...config,
      now: () => now + t,
    });
  return { db, counts, post, close: () => db.close() };
}

const contents = async (kv: Deno.Kv) =>
  (await dump(kv)).map((e) => ({ key: e.key, value: e.value }));

const stories: { name: string; bodies: Webhook[] }[] = [
  {
    name: "a lesson, then its progress",
    bodies: [lessonWebhook({ id: "l1", at: at(0) }), progressWebhook({ id: "p1", at: at(0) })],
  },
  {
    name: "a progress, then its lesson",
    bodies: [progressWebhook({ id: "p1", at: at(0) }), lessonWebhook({ id: "l1", at: at(0) })],
  },
  {
    name: "a lone lesson",
    bodies: [lessonWebhook({ id: "l1", at: at(0) })],
  },
  {
    name: "two learners' progress events",
    bodies: [
      progressWebhook({ id: "p1", at: at(0), user: 1 }),
      progressWebhook({ id: "p2", at: at(0), user: 2 }),
    ],
  },
];

for (const s of stories) {
  Deno.test(`presumed: ${s.name}, presumed new, leaves what reads leave`, async () => {
    const read = await collator(undefined);
    const presumed = await collator(createPresumptions({ share: 1 }));
    try {
      const a = [];
      for (const b of s.bodies) a.push(await read.post(b));
      // Sent together: the second joins the first's commit.
      const b = await Promise.all(s.bodies.map((x) => presumed.post(x)));
      assertEquals(b.at(-1), a.at(-1));
      // A pending logic event paired in that commit answers with its record.
      const last = a.at(-1)!;
      if (a[0].status === "pending" && last.status === "collated") {
        assertEquals(b[0], { status: "collated", record: last.record, fresh: false });
      } else assertEquals(b[0], a[0]);
      assertEquals(await contents(presumed.db), await contents(read.db));
      assertEquals(presumed.counts.reads, 0);
    } finally {
      read.close();
      presumed.close();
    }
  });
}

Deno.test("presumed: a pair sent together costs one commit and no read; the first waits for the second", async () => {
  const c = await collator(createPresumptions({ share: 1 }));
  try {
    const lesson = lessonWebhook({ at: at(0) });
    const progress = progressWebhook({ at: at(0) });
    const started = performance.now();
    const first = c.post(lesson);
    await new Promise((r) => setTimeout(r, 5));
    const [l, p] = await Promise.all([first, c.post(progress)]);
    assert(performance.now() - started < JOIN_WAIT_MS * 10, "the wait ends with the arrival");
    assertEquals(l.status, "stored");
    assertEquals(p.status, "collated");
    assertEquals(c.counts.commits, 1);
    assertEquals(c.counts.reads, 0);
  } finally {
    c.close();
  }
});

Deno.test("presumed: a lone delivery waits for a counterpart up to JOIN_WAIT_MS, then commits alone", async () => {
  const c = await collator(createPresumptions({ share: 1 }));
  try {
    const started = performance.now();
    const l = await c.post(lessonWebhook({ at: at(0) }));
    const waited = performance.now() - started;
    assertEquals(l.status, "stored");
    assert(waited >= JOIN_WAIT_MS - 1, `waited ${waited} ms`);
    assertEquals([c.counts.commits, c.counts.reads], [1, 0]);
    // Not presumed (share 0): no wait, a read.
    const d = await collator(createPresumptions());
    try {
      await d.post(lessonWebhook({ at: at(0) }));
      assertEquals(d.counts.commits, 1);
      assert(d.counts.reads > 0);
    } finally {
      d.close();
    }
  } finally {
    c.close();
  }
});

Deno.test("presumed: wrong about an enrollment another process wrote: decided again from a read, paired once", async () => {
  const other = await collator(undefined);
  const p = createPresumptions({ share: 1 });
  const c = await collator(p, other.db);
  try {
    const lesson = lessonWebhook({ at: at(0) });
    const progress = progressWebhook({ at: at(0) });
    assertEquals((await other.post(lesson)).status, "stored");
    const out = await c.post(progress);
    assertEquals(out.status, "collated");
    assertEquals(c.counts.commits, 2, "the presumed commit, then the one after the read");
    assert(c.counts.reads > 0);
    assertEquals(p.share, 1 - 1 / PRESUME_OVER, "the failure is learnt");
    // A redelivery of the lesson from elsewhere: known now, read, nothing new.
    assertEquals((await c.post(lesson)).status, "collated");
    const events = (await dump(c.db)).filter((e) => e.key[0] === "events");
    assertEquals(events.length, 2);
  } finally {
    c.close();
  }
});

Deno.test("presumed: a redelivery of an event another process stored is not stored twice", async () => {
  const other = await collator(undefined);
  const c = await collator(createPresumptions({ share: 1 }), other.db);
  try {
    // In an enrollment with nothing else: the event's id is what the presumption misses.
    const lesson = lessonWebhook({ at: at(0) });
    await other.post(lesson);
    const before = await contents(c.db);
    assertEquals((await c.post(lesson)).status, "stored");
    assertEquals(await contents(c.db), before);
  } finally {
    c.close();
  }
});

Deno.test("presumed: an erased learner's delivery, presumed new, is answered erased and stores nothing", async () => {
  const c = await collator(createPresumptions({ share: 1 }));
  try {
    const lesson = lessonWebhook({ at: at(0), user: 42 });
    const e = eventOf(lesson);
    await eraseLearner(c.db, { tenantId: e.tenantId, userId: e.userId }, {
      destinations: [],
      now: Date.now(),
    });
    const before = await contents(c.db);
    assertEquals((await c.post(lesson)).status, "erased");
    assertEquals(await contents(c.db), before);
  } finally {
    c.close();
  }
});

Deno.test("presumed: the app presumes only with warm views, and never with presumed: null", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const cases = [[undefined, true, true], [null, true, false], [
      undefined,
      false,
      false,
    ]] as const;
    for (const [i, [warm, given, used]] of cases.entries()) {
      const p = createPresumptions({ share: 1 });
      let presumedViews = 0;
      const spy: Presumptions = {
        view: (...a) => {
          const v = p.view(...a);
          if (v) presumedViews++;
          return v;
        },
        read: (...a) => p.read(...a),
        settled: (...a) => p.settled(...a),
        get share() {
          return p.share;
        },
      };
      const app = createApp({ kv, config, log: () => {}, warm, presumed: given ? spy : null });
      const res = await app.request(
        "/webhooks/thinkific",
        await signedInit(lessonWebhook({ user: 70 + i })),
      );
      assertEquals(res.status, 200);
      await res.body?.cancel();
      assertEquals(presumedViews > 0, used);
    }
  } finally {
    kv.close();
  }
});

Deno.test("presumed: with presumed: null, the app reads for every cold first delivery, however many", async () => {
  const real = await Deno.openKv(":memory:");
  let reads = 0;
  const kv = instrumentKv(real, {
    before: (c) => {
      if (c === "getMany") reads++;
    },
  });
  try {
    const app = createApp({ kv, config, log: () => {}, presumed: null });
    // More new enrollments than it takes a default share to start presuming.
    const n = 2 * PRESUME_OVER * 2;
    for (let user = 1; user <= n; user++) {
      const res = await app.request(
        "/webhooks/thinkific",
        await signedInit(lessonWebhook({ user })),
      );
      assertEquals(res.status, 200);
      await res.body?.cancel();
    }
    assertEquals(reads, n);
  } finally {
    real.close();
  }
});

Deno.test("presumed: presuming starts at PRESUME_AT_SHARE exactly", () => {
  const e = identity(eventOf(lessonWebhook({ user: 1 })));
  assert(createPresumptions({ share: PRESUME_AT_SHARE }).view(e, W, 0));
  assertEquals(createPresumptions({ share: PRESUME_AT_SHARE - 1e-9 }).view(e, W, 0), null);
});

Deno.test("presumed: a read that found the event's id, in an empty enrollment, counts against presuming", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const body = lessonWebhook({ at: at(0) });
    const e = eventOf(body);
    // Its id seen before (its event expired, or placed elsewhere by its first delivery).
    await kv.set(eventIdKey(e.tenantId, e.id), {
      userId: e.userId,
      courseId: e.courseId + 1,
      topic: e.topic,
      at: e.at,
    });
    const p = createPresumptions({ share: 1 });
    p.read(await readOf(kv, body), true, 0);
    assertEquals(p.share, 1 - 1 / PRESUME_OVER);
  } finally {
    kv.close();
  }
});

Deno.test("presumed: what is used again is kept longest (enrollments, course names)", () => {
  const p = createPresumptions({ share: 1, enrollments: 2 });
  const e = (user: number, courseId = 2100013) => ({
    ...identity(eventOf(lessonWebhook({ user, at: at(0) }))),
    courseId,
  });
  const commit = (user: number) => p.settled(p.view(e(user), W, 0)!, true, null, 0);
  commit(1);
  commit(2);
  p.settled(e1View(), true, null, 0); // enrollment 1 again: now the newest
  commit(3); // 2 goes, not 1
  assertEquals(p.view(e(1), W, 0), null);
  assert(p.view(e(2), W, 0));

  const course = (id: number) => ({ tenant_id: "48213", course_id: id, course_name: `C${id}` });
  const q = createPresumptions({ share: 1 });
  const any = q.view(e(9), W, 0)!;
  q.settled(any, true, course(1), 0);
  for (let id = 2; id <= WARM_ENROLLMENTS; id++) q.settled(any, true, course(id), 0);
  q.settled(any, true, course(1), 0); // course 1 again: now the newest
  q.settled(any, true, course(WARM_ENROLLMENTS + 1), 0); // course 2 goes, not 1
  assertEquals(q.view(e(10, 1), W, 0)!.course, course(1));
  assertEquals(q.view(e(11, 2), W, 0)!.course, null);

  /** A view of enrollment 1 as a read gives it (settled as a commit decided from a read). */
  function e1View() {
    return emptyView(e(1), W, { key: FEED_FENCE_KEY, value: null, versionstamp: null }, null);
  }
});
