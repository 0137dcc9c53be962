/**
 * Stored events (lib/store/events.ts), through its functions on an in-memory database: what an
 * insertion writes and how long each part lives, the listing of an enrollment's unclaimed events
 * over a time window, where a redelivery is read, and how far the read of a cluster reaches.
 */
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook, withKv } from "./_helpers.ts";
import { type HandledTopic, LESSON_TOPIC, PROGRESS_TOPIC } from "../lib/config.ts";
import {
  decodeEvent,
  type EventIdentity,
  type EventValue,
  insertEvent,
  listUnclaimed,
  readCluster,
  readView,
  updateEvent,
} from "../lib/store/events.ts";
import {
  enrollmentKey,
  EVENT_ID_GRACE_MS,
  eventBodyKey,
  eventIdKey,
  eventKey,
  FEED_FENCE_KEY,
  learnerEventIdKey,
  type StoredEvent,
} from "../lib/store/keys.ts";
import { MAX_CLUSTER_SPAN_MS, MAX_INLINE_BODY_BYTES } from "../lib/store/limits.ts";
import { CommitPlan } from "../lib/store/plan.ts";
import { parseWebhook } from "../lib/thinkific/schemas.ts";

const T = BASE_TIME;
const L = LESSON_TOPIC;
const P = PROGRESS_TOPIC;
const DAY = 86_400_000;
const RETENTION = 7 * DAY;
const ENROLLMENT = { tenantId: "48213", userId: 7, courseId: 10 };

/** What an event's key holds besides its body: its delivery state (the rest is in the body). */
function stateOf(e: StoredEvent) {
  const { id: _i, topic: _t, tenantId: _n, userId: _u, courseId: _c, at: _a, facts: _f, ...state } =
    e;
  return state;
}

/** The raw body of each event made by `event`, by id. */
const bodies = new Map<string, Uint8Array>();

/** An unclaimed stored event of the enrollment above (`over` changes any field). */
function event(id: string, topic: HandledTopic, at: number, over: Partial<StoredEvent> = {}) {
  const who = { id, at, tenant: ENROLLMENT.tenantId, user: 7, course: 10 };
  const webhook = topic === L ? lessonWebhook(who) : progressWebhook(who);
  bodies.set(id, new TextEncoder().encode(JSON.stringify(webhook)));
  const parsed = parseWebhook(webhook, null);
  if (parsed.kind !== "event") throw new Error(`not an event: ${parsed.kind}`);
  const stored: StoredEvent = {
    ...parsed.event,
    receivedAt: at,
    deliveries: 1,
    gaveUpAt: null,
    pairedWith: null,
    recordAt: null,
    ...over,
  };
  return stored;
}

const identity = (e: StoredEvent): EventIdentity => ({
  tenantId: e.tenantId,
  userId: e.userId,
  courseId: e.courseId,
  at: e.at,
  id: e.id,
  topic: e.topic,
});

/** Stores each event as a delivery would (one commit each); fails if one is refused. */
async function store(kv: Deno.Kv, ...events: StoredEvent[]) {
  for (const e of events) {
    const plan = insertEvent(new CommitPlan(), e, bodies.get(e.id)!, RETENTION);
    const { ok } = await (plan as CommitPlan).applyTo(kv.atomic()).commit();
    assertEquals(ok, true, `stored ${e.id}`);
  }
}

/** The ids of stored events, sorted (a duplicate shows twice). */
const ids = (entries: { value: { id: string } }[]) => entries.map((x) => x.value.id).sort();

Deno.test("insertEvent: the event, its raw body inside, lives RETENTION_DAYS, its id pointer and an unpaired event's learner index 30 days more", () => {
  const lone = event("e1", P, T);
  const body = bodies.get("e1")!;
  const plan = insertEvent(new CommitPlan(), lone, body, RETENTION) as CommitPlan;
  const written = plan.mutations.map((m) => [m.key, m.type === "set" ? m.expireIn : "?"]);
  assertEquals(written, [
    [eventIdKey("48213", "e1"), RETENTION + EVENT_ID_GRACE_MS],
    [eventKey(lone), RETENTION],
    [learnerEventIdKey("48213", 7, "e1"), RETENTION + EVENT_ID_GRACE_MS],
  ]);
  assertEquals(EVENT_ID_GRACE_MS, 30 * DAY);
  const value = (i: number) => plan.mutations[i].type === "set" ? plan.mutations[i].value : "?";
  // The pointer says where the event is; the learner's index holds only the id.
  assertEquals(value(0), { userId: 7, courseId: 10, topic: P, at: T });
  assertEquals(value(2), null);
  // The event's value holds the body as received, not what is read from it.
  assertEquals(value(1), { ...stateOf(lone), body });
  assertEquals(decodeEvent(value(1) as EventValue), { ...lone, body });
});

Deno.test("insertEvent: a body over 2 KiB goes under its own key, and the event keeps its facts", () => {
  assertEquals(MAX_INLINE_BODY_BYTES, 2_048);
  const e = event("e4", L, T, { pairedWith: "p4" });
  for (const size of [MAX_INLINE_BODY_BYTES, MAX_INLINE_BODY_BYTES + 1]) {
    const body = new Uint8Array(size).fill(32);
    const plan = insertEvent(new CommitPlan(), e, body, RETENTION) as CommitPlan;
    const own = size > MAX_INLINE_BODY_BYTES;
    assertEquals(
      plan.mutations.map((m) => [m.key, m.type === "set" ? m.expireIn : "?"]),
      [
        [eventIdKey("48213", "e4"), RETENTION + EVENT_ID_GRACE_MS],
        [eventKey(e), RETENTION],
        ...(own ? [[eventBodyKey("48213", "e4"), RETENTION]] : []),
      ],
      `${size} bytes`,
    );
    const value = plan.mutations[1].type === "set" ? plan.mutations[1].value : "?";
    assertEquals(value, own ? e : { ...stateOf(e), body }, `${size} bytes`);
    if (own) assertEquals(plan.mutations[2].type === "set" && plan.mutations[2].value, body);
  }
});

Deno.test("insertEvent: an event stored already paired gets no entry in its learner's index of ids", () => {
  const paired = event("e2", L, T, { pairedWith: "p2" });
  const plan = insertEvent(new CommitPlan(), paired, bodies.get("e2")!, RETENTION) as CommitPlan;
  assertEquals(plan.mutations.map((m) => m.key), [eventIdKey("48213", "e2"), eventKey(paired)]);
});

Deno.test("updateEvent: an event is rewritten with its body inside, or with its facts when its body has its own key", () => {
  const read = (value: EventValue): Deno.KvEntry<StoredEvent> => ({
    key: eventKey(e),
    value: decodeEvent(value),
    versionstamp: "00000000000000010000",
  });
  const e = event("e5", L, T);
  const body = bodies.get("e5")!;
  for (const stored of [{ ...stateOf(e), body }, e] as EventValue[]) {
    const entry = read(stored);
    assertEquals(entry.value, "body" in stored ? { ...e, body } : e, "read back whole");
    const next = { ...entry.value, deliveries: 2 };
    const plan = updateEvent(new CommitPlan(), entry, next, RETENTION, T) as CommitPlan;
    const value = plan.mutations[0].type === "set" ? plan.mutations[0].value : "?";
    assertEquals(value, { ...stored, deliveries: 2 });
    assertEquals(plan.checks, [{ key: entry.key, versionstamp: entry.versionstamp }]);
  }
});

Deno.test("insertEvent: a second insertion of an id already stored fails its commit and changes nothing", async () => {
  await withKv(async (kv) => {
    await store(kv, event("e3", L, T));
    const first = bodies.get("e3")!;
    const again = event("e3", L, T + 1_000);
    const plan = insertEvent(new CommitPlan(), again, new Uint8Array([9]), RETENTION);
    assertEquals((await (plan as CommitPlan).applyTo(kv.atomic()).commit()).ok, false);
    assertEquals((await kv.get(eventKey(again))).value, null);
    const stored = await kv.get<{ body: Uint8Array }>(eventKey({ ...again, at: T }));
    assertEquals(stored.value?.body, first);
  });
});

Deno.test("listUnclaimed: an enrollment's unclaimed events of one topic with from <= at <= to, oldest first", async () => {
  await withKv(async (kv) => {
    await store(
      kv,
      event("l3", L, T + 2_000),
      event("l1", L, T),
      event("l2", L, T + 1_000, { pairedWith: "p9" }),
      event("l4", L, T + 2_001),
      event("p1", P, T + 1_500),
      event("other-course", L, T + 500, { courseId: 11 }),
      event("other-user", L, T + 500, { userId: 8 }),
    );
    const list = async (from: number, to: number) =>
      (await listUnclaimed(kv, ENROLLMENT, L, from, to)).map((x) => x.value.id);
    assertEquals(await list(T, T + 2_000), ["l1", "l3"], "both ends included, the paired left out");
    assertEquals(await list(T, T), ["l1"], "a window of one millisecond");
    assertEquals(await list(T + 1, T + 1_999), [], "nothing unclaimed strictly inside");
    assertEquals(await list(T + 2_000, T), [], "a window that ends before it starts is empty");
    assertEquals(await list(T + 1, T), [], "an empty window");
  });
});

Deno.test("readView: a first delivery reads its own place, no pointer, and the unclaimed counterparts within at ± window", async () => {
  await withKv(async (kv) => {
    await store(
      kv,
      event("p-early", P, T - 501),
      event("p-edge", P, T - 500),
      event("p-paired", P, T, { pairedWith: "x" }),
      event("p-late", P, T + 500),
      event("p-after", P, T + 501),
      event("l-rival", L, T + 100),
    );
    await kv.set(FEED_FENCE_KEY, 42);
    const e = identity(event("l1", L, T));
    const view = await readView(kv, e, 500);
    assertEquals(view.place, e);
    assertEquals(view.self, null);
    assertEquals(view.pointer.value, null);
    assertEquals(view.enrollment.value, null);
    assertEquals(view.fence.value, 42);
    assertEquals(view.counterparts.map((x) => x.value.id), ["p-edge", "p-late"]);
  });
});

Deno.test("readView: a redelivery whose body places the event elsewhere is read where its first delivery put it", async () => {
  await withKv(async (kv) => {
    const first = event("l1", L, T);
    await store(
      kv,
      first,
      event("p-near-first", P, T + 200),
      event("p-near-body", P, T + 60_000, { courseId: 11 }),
    );
    await kv.set(enrollmentKey(ENROLLMENT), { progress: [[T - 1, 10]], lessons: [2] });
    await kv.set(enrollmentKey({ ...ENROLLMENT, courseId: 11 }), { progress: [], lessons: [] });
    await kv.set(FEED_FENCE_KEY, 42);
    // The same id again, its body now in another course and a minute later.
    const moved = { ...identity(first), courseId: 11, at: T + 60_000 };
    const view = await readView(kv, moved, 500);
    assertEquals(view.place, identity(first));
    assertEquals(view.pointer.value, { userId: 7, courseId: 10, topic: L, at: T });
    assertEquals(view.self?.key, eventKey(first));
    assertEquals(
      view.self?.value,
      { ...first, body: bodies.get("l1") },
      "its facts read from its body",
    );
    assertEquals(view.enrollment.key, enrollmentKey(ENROLLMENT));
    assertEquals(view.enrollment.value, { progress: [[T - 1, 10]], lessons: [2] });
    assertEquals(view.counterparts.map((x) => x.value.id), ["p-near-first"]);
    assertEquals(view.fence.value, 42);
  });
});

Deno.test("readView: a redelivery read at its own place finds itself there", async () => {
  await withKv(async (kv) => {
    const first = event("l1", L, T, { deliveries: 2 });
    await store(kv, first, event("p1", P, T - 300));
    const view = await readView(kv, identity(first), 500);
    assertEquals(view.place, identity(first));
    assertEquals(
      view.self?.value,
      { ...first, body: bodies.get("l1") },
      "its facts read from its body",
    );
    assertEquals(view.counterparts.map((x) => x.value.id), ["p1"]);
  });
});

Deno.test("readView: an id stored under the other topic is another event: the delivery is read at its own place", async () => {
  await withKv(async (kv) => {
    await store(kv, event("same", L, T), event("l-near-body", L, T + 60_100));
    const e = identity(event("same", P, T + 60_000));
    const view = await readView(kv, e, 500);
    assertEquals(view.place, e);
    assertEquals(view.self, null);
    assertEquals(view.pointer.value?.topic, L);
    assertEquals(view.counterparts.map((x) => x.value.id), ["l-near-body"]);
  });
});

Deno.test("readCluster: reads two windows either side, then grows each way along the chain of overlapping windows, only as far as it needs", async () => {
  await withKv(async (kv) => {
    const place = event("self", L, T);
    await store(
      kv,
      place,
      // A chain to the right, through both topics, with a link exactly two windows away.
      event("r1", P, T + 400),
      event("r2", L, T + 800),
      event("r3", L, T + 1_000),
      event("r4", P, T + 1_400),
      event("r5", L, T + 1_800),
      event("r6", P, T + 2_200),
      event("r-read", L, T + 2_750), // 550 ms past the chain: not a link, but within the last read
      event("r-far", P, T + 2_900),
      // The same to the left.
      event("l1", P, T - 400),
      event("l2", L, T - 800),
      event("l3", L, T - 1_000),
      event("l4", P, T - 1_400),
      event("l5", L, T - 1_800),
      event("l6", P, T - 2_200),
      event("l-read", L, T - 2_750),
      event("l-far", P, T - 2_900),
      event("claimed", P, T + 1_200, { pairedWith: "x" }),
    );
    const cluster = await readCluster(kv, identity(place), 500);
    assertEquals(ids(cluster), [
      "l-read",
      "l1",
      "l2",
      "l3",
      "l4",
      "l5",
      "l6",
      "r-read",
      "r1",
      "r2",
      "r3",
      "r4",
      "r5",
      "r6",
      "self",
    ]);
  });
});

Deno.test("readCluster: grows along a chain on one side only, while the other side is already whole", async () => {
  await withKv(async (kv) => {
    const chain = [
      event("a1", P, T - 400),
      event("a2", L, T - 800),
      event("a3", P, T - 1_200),
      event("a4", L, T - 1_600),
    ];
    await store(kv, ...chain, event("a-far", P, T - 3_100));
    const left = await readCluster(kv, identity(event("self", L, T)), 500);
    assertEquals(ids(left), ["a1", "a2", "a3", "a4"]);
    // The mirror image: the chain after the event.
    const right = await readCluster(kv, identity(event("self", L, T - 2_000)), 500);
    assertEquals(ids(right), ["a1", "a2", "a3", "a4"]);
  });
});

Deno.test("readCluster: with nothing linked, only the first read of two windows either side", async () => {
  await withKv(async (kv) => {
    await store(
      kv,
      event("in-left", P, T - 1_000),
      event("in-right", L, T + 1_000),
      event("out-left", L, T - 1_001),
      event("out-right", P, T + 1_001),
    );
    assertEquals(ids(await readCluster(kv, identity(event("self", L, T)), 500)), [
      "in-left",
      "in-right",
    ]);
  });
});

Deno.test("readCluster: a chain ending exactly one window inside the first read grows no further", async () => {
  await withKv(async (kv) => {
    await store(
      kv,
      event("r1", P, T + 500),
      event("r-gap", L, T + 1_200),
      event("l1", P, T - 500),
      event("l-gap", L, T - 1_200),
    );
    assertEquals(ids(await readCluster(kv, identity(event("self", L, T)), 500)), ["l1", "r1"]);
  });
});

Deno.test("readCluster: a link of the other topic with the event's own id still extends the chain", async () => {
  await withKv(async (kv) => {
    // r1 is 800 ms from the event: linked only through the progress that shares its id, and r2
    // (past the first read) only through r1.
    await store(kv, event("self", P, T + 400), event("r1", L, T + 800), event("r2", L, T + 1_200));
    const cluster = await readCluster(kv, identity(event("self", L, T)), 500);
    assertEquals(ids(cluster), ["r1", "r2", "self"]);
  });
});

Deno.test("readCluster: grows at most MAX_CLUSTER_SPAN_MS either side of the event along an endless chain", async () => {
  await withKv(async (kv) => {
    const chain: StoredEvent[] = [];
    for (let d = -70_000; d <= 70_000; d += 400) {
      if (d !== 0) chain.push(event(`c${d}`, d % 800 === 0 ? L : P, T + d));
    }
    await store(kv, ...chain);
    const cluster = await readCluster(kv, identity(event("self", L, T)), 500);
    const expected = chain.filter((e) => Math.abs(e.at - T) <= MAX_CLUSTER_SPAN_MS);
    assertEquals(MAX_CLUSTER_SPAN_MS, 60_000);
    assertEquals(ids(cluster), ids(expected.map((value) => ({ value }))));
  });
});

Deno.test("readCluster: with a 40 s window, the first read of two windows either side is kept whole, past the 60 s growth cap", async () => {
  await withKv(async (kv) => {
    await store(
      kv,
      event("left", P, T - 70_000),
      event("right", P, T + 70_000),
      event("far-left", L, T - 80_001),
      event("far-right", L, T + 80_001),
    );
    const cluster = await readCluster(kv, identity(event("self", L, T)), 40_000);
    assertEquals(ids(cluster), ["left", "right"]);
  });
});
