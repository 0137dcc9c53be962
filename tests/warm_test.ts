/**
 * Warm views (`lib/store/warm.ts`): a view served from what this process's commits left is the view
 * a read would give; what is not provably so is read; a commit that lost to another process is
 * decided again from a read; bounds on what is kept.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook, type Webhook } from "./_helpers.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import {
  type EventIdentity,
  type EventView,
  listUnclaimed,
  readView,
} from "../lib/store/events.ts";
import { LESSON_TOPIC, PROGRESS_TOPIC } from "../lib/config.ts";
import { enrollmentKey, eventKey, type StoredEvent } from "../lib/store/keys.ts";
import { createWarmViews, type WarmViews } from "../lib/store/warm.ts";
import { parseWebhook } from "../lib/thinkific/schemas.ts";
import { rng } from "../bench/_stats.ts";
import { WARM_ENROLLMENTS, WARM_FOR_MS } from "../lib/store/limits.ts";
import { SECRET, signedInit } from "./_helpers.ts";

const W = 500;

function identity(body: Webhook): EventIdentity {
  const parsed = parseWebhook(body, null);
  if (parsed.kind !== "event") throw new Error("not an event");
  const { id, topic, tenantId, userId, courseId, at } = parsed.event;
  return { id, topic, tenantId, userId, courseId, at };
}

/** What of a view decides: everything but `known` (a read and a warm view know different spans). */
const deciding = (v: EventView) => ({ ...v, known: undefined });

/** A warm views that records every view it serves. */
function spied(warm: WarmViews) {
  const served: EventIdentity[] = [];
  const spy: WarmViews = {
    view(e, w, now) {
      const v = warm.view(e, w, now);
      if (v) served.push(e);
      return v;
    },
    remember: (...a) => warm.remember(...a),
    after: (...a) => warm.after(...a),
    forget: (e) => warm.forget(e),
    get size() {
      return warm.size;
    },
  };
  return { spy, served };
}

Deno.test("warm views: every view served is the view a read gives at that moment (seeded stories)", async () => {
  let servedTotal = 0;
  let collated = 0;
  for (let seed = 1; seed <= 30; seed++) {
    const random = rng(seed);
    const warm = createWarmViews();
    const h = await harness({}, undefined, { warm });
    try {
      // 2 to 5 pairs in one enrollment, within a few windows of each other, in a random order,
      // some delivered twice.
      const bodies: Webhook[] = [];
      const pairs = 2 + Math.floor(random() * 4);
      for (let i = 0; i < pairs; i++) {
        const at = BASE_TIME + Math.floor(random() * 2_400);
        // Most pairs exact; the others pair on a retry (a first delivery never pairs inexactly).
        const lessonAt = random() < 0.6 ? at : at + Math.floor(random() * 400) - 200;
        bodies.push(
          lessonWebhook({ at: lessonAt, lesson: 100 + i }),
          progressWebhook({ at, percentage: String(10 * (i + 1)) }),
        );
      }
      const order = bodies.map((b) => ({ b, k: random() })).sort((x, y) => x.k - y.k)
        .map((x) => x.b);
      for (let i = 0; i < order.length; i++) {
        if (random() < 0.2) order.splice(i + 1 + Math.floor(random() * 3), 0, order[i]);
      }
      // Then every progress once more: Thinkific's retry of a 409.
      order.push(...bodies.filter((b) => b.resource === "enrollment"));
      for (const body of order) {
        const e = identity(body);
        const view = warm.view(e, W, h.clock.now);
        if (view) {
          servedTotal++;
          const read = await readView(h.kv, e, W);
          assertEquals(deciding(view), deciding(read), `seed ${seed}, event ${e.id}`);
          // And all it knows is what the database holds: the unclaimed events of both topics.
          const { from, to, events } = view.known!;
          const stored = (await Promise.all(
            ([LESSON_TOPIC, PROGRESS_TOPIC] as const).map((t) =>
              listUnclaimed(h.kv, e, t, from, to)
            ),
          )).flat();
          const ids = (xs: Deno.KvEntry<StoredEvent>[]) =>
            xs.map((x) => `${x.value.id}@${x.versionstamp}`).sort();
          assertEquals(ids(events), ids(stored), `seed ${seed}, known before ${e.id}`);
        }
        const r = await h.post(body);
        assert(r.status === 200 || r.status === 409, JSON.stringify(r.json));
        if (r.json.status === "collated") collated++;
        h.clock.now += 7;
      }
    } finally {
      h.kv.close();
    }
  }
  assert(servedTotal > 60, `warm views served: ${servedTotal}`);
  assert(collated > 60, `records made: ${collated}`);
});

Deno.test("warm views: a progress after its lesson decides from the lesson's commit, without a read", async () => {
  const warm = createWarmViews();
  const { spy, served } = spied(warm);
  const h = await harness({}, undefined, { warm: spy });
  try {
    const lesson = lessonWebhook({ at: BASE_TIME });
    const progress = progressWebhook({ at: BASE_TIME });
    assertEquals((await h.post(lesson)).json.status, "stored");
    assertEquals(served.length, 0); // a new enrollment: read
    const r = await h.post(progress);
    assertEquals(r.json.status, "collated");
    assertEquals(served.map((e) => e.id), [progress.id]);
    // A redelivery of either is read, as any redelivery.
    assertEquals((await h.post(progress)).json.status, "collated");
    assertEquals((await h.post(lesson)).json.status, "collated");
    assertEquals(served.length, 1);
  } finally {
    h.kv.close();
  }
});

for (const withWarm of [true, false]) {
  Deno.test(`warm views: a commit lost to another process is decided again from a read${withWarm ? "" : " (no warm views)"}`, async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
      const warm = createWarmViews();
      const { spy, served } = spied(warm);
      const a = createApp({ kv, config, warm: withWarm ? spy : null });
      const b = createApp({ kv, config });
      const post = async (app: typeof a, body: Webhook) =>
        await (await app.request("/webhooks/thinkific", await signedInit(body))).json();
      const far = lessonWebhook({ at: BASE_TIME - 300, lesson: 1 });
      const near = lessonWebhook({ at: BASE_TIME + 100, lesson: 2 });
      assertEquals((await post(a, far)).status, "stored");
      assertEquals((await post(b, near)).status, "stored"); // a does not know
      const progress = progressWebhook({ at: BASE_TIME + 100 });
      const r = await post(a, progress);
      // a's warm view had only the far lesson: its plan lost (the enrollment changed), it read again.
      assertEquals(served.map((e) => e.id), withWarm ? [progress.id] : []);
      assertEquals([r.status, r.record.lesson_event_id], ["collated", near.id]);
    } finally {
      kv.close();
    }
  });
}

/** A view of a new lesson at `at` in enrollment `user`, and what its commit leaves. */
function committed(warm: WarmViews, opts: {
  user?: number;
  at?: number;
  version?: string | null;
  read?: string;
  events?: Deno.KvEntry<StoredEvent>[];
  now?: number;
  /** The event is written paired (not kept among the unclaimed ones). */
  paired?: boolean;
}) {
  const parsed = parseWebhook(lessonWebhook({ at: opts.at ?? BASE_TIME, user: opts.user }), null);
  if (parsed.kind !== "event") throw new Error("not an event");
  const e = parsed.event;
  const stored: StoredEvent = {
    ...e,
    receivedAt: 0,
    deliveries: 1,
    gaveUpAt: null,
    pairedWith: opts.paired ? "x" : null,
    recordAt: null,
    listedAt: null,
  };
  const view: EventView = {
    place: e,
    pointer: { key: ["event_ids", e.tenantId, e.id], value: null, versionstamp: null },
    self: null,
    enrollment: {
      key: enrollmentKey(e),
      value: opts.version ? { progress: [], lessons: [] } : null,
      versionstamp: opts.version ?? null,
    } as Deno.KvEntryMaybe<never>,
    counterparts: [],
    fence: { key: ["feed_fence"], value: null, versionstamp: null },
    course: null,
    known: { from: e.at - 2 * W, to: e.at + 2 * W, events: opts.events ?? [] },
  };
  warm.remember(
    view,
    { summary: { progress: [], lessons: [] }, events: [stored], course: null },
    opts.read ?? "00000000000000010000",
    opts.now ?? 0,
  );
  return e;
}

const progressAt = (at: number, user?: number): EventIdentity =>
  identity(progressWebhook({ at, user }));

Deno.test("warm views: served only within the span known, for a new id, for WARM_FOR_MS", () => {
  const warm = createWarmViews();
  const lesson = committed(warm, {});
  const v = warm.view(progressAt(BASE_TIME), W, 0)!;
  assertEquals(v.counterparts.map((x) => x.value.id), [lesson.id]);
  assertEquals(v.counterparts[0].key, eventKey(lesson));
  assertEquals(v.enrollment.versionstamp, "00000000000000010000");
  assertEquals([v.self, v.pointer.value, v.pointer.versionstamp], [null, null, null]);
  // Exactly the span known: at ± 2 windows; a window reaching past it is read.
  assert(warm.view(progressAt(BASE_TIME + W), W, 0) !== null);
  assert(warm.view(progressAt(BASE_TIME - W), W, 0) !== null);
  assertEquals(warm.view(progressAt(BASE_TIME + W + 1), W, 0), null);
  assertEquals(warm.view(progressAt(BASE_TIME - W - 1), W, 0), null);
  // Exactly at the window's edge: a counterpart; just out of it: known, not a counterpart.
  assertEquals(warm.view(progressAt(BASE_TIME + W), W, 0)!.counterparts.length, 1);
  assertEquals(warm.view(progressAt(BASE_TIME + W), W - 1, 0)!.counterparts, []);
  // The lesson itself, delivered again: read.
  assertEquals(warm.view(lesson, W, 0), null);
  // Another enrollment: read.
  assertEquals(warm.view(progressAt(BASE_TIME, 42), W, 0), null);
  // Served for WARM_FOR_MS after the commit.
  assert(warm.view(progressAt(BASE_TIME), W, WARM_FOR_MS - 1) !== null);
  assertEquals(warm.view(progressAt(BASE_TIME), W, WARM_FOR_MS), null);
  warm.forget(lesson);
  assertEquals([warm.view(progressAt(BASE_TIME), W, 0), warm.size], [null, 0]);
});

Deno.test("warm views: a read that may have missed a commit is not kept", () => {
  const warm = createWarmViews();
  // The summary read at a version no event read has, and no commit of this process left it.
  committed(warm, { version: "00000000000000050000" });
  assertEquals([warm.size, warm.view(progressAt(BASE_TIME), W, 0)], [0, null]);
  // An event read at the summary's version: the list came after the last commit.
  const other = identity(lessonWebhook({ at: BASE_TIME - 10 }));
  committed(warm, {
    version: "00000000000000050000",
    events: [{
      key: eventKey(other),
      value: { ...other, body: undefined } as unknown as StoredEvent,
      versionstamp: "00000000000000050000",
    }],
  });
  assertEquals(warm.size, 1);
  // The version this process's own last commit left (here: 00000000000000010000).
  committed(warm, { version: "00000000000000010000", at: BASE_TIME + 5 });
  assertEquals(warm.size, 1);
  assert(warm.view(progressAt(BASE_TIME), W, 0) !== null);
  committed(warm, { version: "00000000000000090000", at: BASE_TIME + 6 });
  assertEquals(warm.size, 0);
});

Deno.test("warm views: at most WARM_ENROLLMENTS kept, the oldest dropped first", () => {
  assertEquals([WARM_ENROLLMENTS, WARM_FOR_MS], [256, 30_000]);
  const warm = createWarmViews({ max: 3 });
  for (const user of [1, 2, 3, 4]) committed(warm, { user });
  assertEquals(warm.size, 3);
  assertEquals(warm.view(progressAt(BASE_TIME, 1), W, 0), null);
  for (const user of [2, 3, 4]) assert(warm.view(progressAt(BASE_TIME, user), W, 0) !== null);
});

/** A stored, unclaimed event entry of `topic` at `at` with id `id`, at version `v`. */
function entry(
  topic: "lesson" | "progress",
  at: number,
  id: string,
  v = "00000000000000010000",
): Deno.KvEntry<StoredEvent> {
  const body = topic === "lesson" ? lessonWebhook({ at, id }) : progressWebhook({ at, id });
  const parsed = parseWebhook(body, null);
  if (parsed.kind !== "event") throw new Error("not an event");
  const value: StoredEvent = {
    ...parsed.event,
    receivedAt: 0,
    deliveries: 1,
    gaveUpAt: null,
    pairedWith: null,
    recordAt: null,
    listedAt: null,
  };
  return { key: eventKey(value), value, versionstamp: v };
}

Deno.test("warm views: counterparts come in key order (time, then id), as a list gives them; exactly at the window's edge included", () => {
  const warm = createWarmViews();
  const known = [
    entry("lesson", BASE_TIME + 5, "e"),
    entry("lesson", BASE_TIME + 5, "b"),
    entry("lesson", BASE_TIME - 5, "x"),
    entry("lesson", BASE_TIME + 5, "d"),
    entry("lesson", BASE_TIME + 5, "a"),
    entry("lesson", BASE_TIME - W, "edge"),
    entry("lesson", BASE_TIME + 5, "c"),
    entry("lesson", BASE_TIME - W - 1, "out"),
  ];
  const lesson = committed(warm, { at: BASE_TIME + 450, events: known });
  const v = warm.view(progressAt(BASE_TIME), W, 0)!;
  assertEquals(v.counterparts.map((x) => x.value.id), [
    "edge",
    "x",
    "a",
    "b",
    "c",
    "d",
    "e",
    lesson.id,
  ]);
});

Deno.test("warm views: an event read with the view, delivered again, is read; an id beyond the last 16 written is not remembered", () => {
  const warm = createWarmViews();
  const other = entry("progress", BASE_TIME + 10, "p-read");
  committed(warm, { events: [other] });
  assertEquals(
    warm.view(identity(progressWebhook({ at: BASE_TIME + 10, id: "p-read" })), W, 0),
    null,
  );
  // 17 more commits in the enrollment, each writing one (paired) event: the first is forgotten.
  const warm2 = createWarmViews();
  const first = committed(warm2, {});
  const again = () => identity(lessonWebhook({ at: first.at, id: first.id }));
  for (let i = 0; i < 16; i++) {
    assertEquals(warm2.view(again(), W, 0), null, `after ${i} more`);
    committed(warm2, { version: "00000000000000010000", paired: true });
  }
  assert(warm2.view(again(), W, 0) !== null);
});

Deno.test("warm views: a read whose events all predate the summary's version is not kept", () => {
  const warm = createWarmViews();
  committed(warm, {
    version: "00000000000000050000",
    events: [entry("progress", BASE_TIME + 10, "older", "00000000000000040000")],
  });
  assertEquals(warm.size, 0);
});
