/**
 * Recent records (`lib/store/recent.ts`): a record kept under both its events' ids, of their own
 * topics only, for `WARM_FOR_MS` and `RECENT_RECORDS` at most; and through the app, a redelivery of
 * an event paired there answers what a process that keeps none answers, after one read (the
 * learner's tombstone) and no commit, and reads as any other once an erasure has begun.
 */
import { assertEquals } from "./_assert.ts";
import { lessonWebhook, progressWebhook, SECRET, signedInit } from "./_helpers.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import { createProjector } from "../lib/projector.ts";
import { eraseLearner } from "../lib/store/erasure.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";
import { RECENT_RECORDS, WARM_FOR_MS } from "../lib/store/limits.ts";
import { createRecentRecords } from "../lib/store/recent.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import { LESSON_TOPIC, PROGRESS_TOPIC } from "../lib/config.ts";

/** A record of school `tenant` pairing lesson `l` and progress `p` (only the fields looked up). */
const recordOf = (tenant: string, l: string, p: string) =>
  ({ tenant_id: tenant, lesson_event_id: l, progress_event_id: p }) as LessonProgressRecord;

Deno.test("recent records: found by either event's id, under its own topic and school only", () => {
  const recent = createRecentRecords();
  const r = recordOf("s1", "L1", "P1");
  recent.remember([r], 1_000);
  assertEquals(recent.find({ tenantId: "s1", topic: LESSON_TOPIC, id: "L1" }, 1_000), r);
  assertEquals(recent.find({ tenantId: "s1", topic: PROGRESS_TOPIC, id: "P1" }, 1_000), r);
  assertEquals(recent.find({ tenantId: "s1", topic: PROGRESS_TOPIC, id: "L1" }, 1_000), null);
  assertEquals(recent.find({ tenantId: "s1", topic: LESSON_TOPIC, id: "P1" }, 1_000), null);
  assertEquals(recent.find({ tenantId: "s2", topic: LESSON_TOPIC, id: "L1" }, 1_000), null);
  assertEquals(recent.size, 2, "two ids per record");
});

Deno.test("recent records: kept for WARM_FOR_MS, and RECENT_RECORDS at most, the oldest dropped first", () => {
  const recent = createRecentRecords();
  const first = recordOf("s", "L0", "P0");
  recent.remember([first], 0);
  const p0 = { tenantId: "s", topic: PROGRESS_TOPIC, id: "P0" };
  assertEquals(recent.find(p0, WARM_FOR_MS - 1), first);
  assertEquals(recent.find(p0, WARM_FOR_MS), null, "gone once WARM_FOR_MS have passed");
  // Kept again (a later commit made it known again): the newest, so the last to go.
  const more = Array.from(
    { length: RECENT_RECORDS - 1 },
    (_, i) => recordOf("s", `L${i + 1}`, `P${i + 1}`),
  );
  recent.remember(more, 10);
  recent.remember([first], 20);
  assertEquals(recent.size, 2 * RECENT_RECORDS);
  recent.remember([recordOf("s", "Lx", "Px")], 30);
  assertEquals(recent.size, 2 * RECENT_RECORDS, "bounded");
  assertEquals(
    recent.find({ tenantId: "s", topic: LESSON_TOPIC, id: "L1" }, 30),
    null,
    "oldest out",
  );
  assertEquals(recent.find({ tenantId: "s", topic: PROGRESS_TOPIC, id: "P1" }, 30), null);
  assertEquals(recent.find(p0, 30), first, "kept again, kept longer");
  assertEquals(
    recent.find({ tenantId: "s", topic: LESSON_TOPIC, id: "L2" }, 30)?.lesson_event_id,
    "L2",
  );
});

/** Two apps on one database: one keeps recent records, the other none; KV calls counted. */
async function twoApps() {
  const raw = await Deno.openKv(":memory:");
  const calls: KvCall[] = [];
  const kv = instrumentKv(raw, { before: (c) => void calls.push(c) });
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
  // The projector runs on the handle not counted, and only when drained; kicks are counted.
  const kicks = { n: 0 };
  const projector = { ...createProjector({ kv: raw }), kick: () => void kicks.n++ };
  const withRecent = createApp({ kv, config, projector, log: () => {} });
  const without = createApp({ kv, config, projector, log: () => {}, recent: null });
  // No warm views: no recent records either (every delivery reads).
  const cold = createApp({ kv, config, projector, log: () => {}, warm: null });
  const post = async (app: typeof without, body: unknown) => {
    const res = await app.request("/webhooks/thinkific", await signedInit(body));
    return { status: res.status, json: await res.json() };
  };
  return { raw, calls, kicks, projector, withRecent, without, cold, post };
}

Deno.test("recent records: a redelivery answers as a read would, after reading only the tombstone", async () => {
  const { raw, calls, kicks, projector, withRecent, without, cold, post } = await twoApps();
  try {
    const lesson = lessonWebhook();
    const progress = progressWebhook();
    assertEquals((await post(withRecent, lesson)).json.status, "stored");
    const made = await post(withRecent, progress);
    assertEquals(made.json.status, "collated");
    assertEquals(kicks.n, 1, "a new record kicks the projector");
    for (const drained of [false, true]) { // the record pending for the projector, then stored
      if (drained) await projector.drain();
      for (const body of [progress, lesson]) {
        const read = await post(without, body);
        calls.length = 0;
        const kept = await post(withRecent, body);
        assertEquals(kept, read, `${body.resource} again${drained ? ", projected" : ""}`);
        assertEquals(kept.json.record, made.json.record);
        assertEquals(calls, ["get"], "one read, no commit");
      }
    }
    assertEquals(kicks.n, 1, "a redelivery kicks nothing");
    // Without recent records, or without warm views, a redelivery of a pair the same app made
    // reads its view, then its record.
    for (const [user, app] of [[5000077, without], [5000078, cold]] as const) {
      const [l, p] = [lessonWebhook({ user }), progressWebhook({ user })];
      await post(app, l);
      const own = await post(app, p);
      assertEquals(own.json.status, "collated");
      calls.length = 0;
      assertEquals((await post(app, p)).json.record, own.json.record);
      assertEquals(calls.filter((c) => c !== "commit").length > 1, true, `${calls}`);
    }
    // The same id under the other topic is a conflict, as without recent records.
    const other = { ...lessonWebhook(), id: progress.id };
    const conflict = await post(withRecent, other);
    assertEquals(conflict.status, 422);
    assertEquals(conflict, await post(without, other));
  } finally {
    raw.close();
  }
});

Deno.test("recent records: once an erasure of its learner has begun, a redelivery reads as any other", async () => {
  const { raw, calls, withRecent, without, post } = await twoApps();
  try {
    const lesson = lessonWebhook();
    const progress = progressWebhook();
    await post(withRecent, lesson);
    const made = await post(withRecent, progress);
    const record = made.json.record as LessonProgressRecord;
    // The tombstone alone, as an erasure writes it first: the record is still there to read.
    await raw.set(["erased", record.tenant_id, record.user_id], {
      erased_at: "2026-12-03T00:00:00Z",
    });
    for (const body of [progress, lesson]) {
      const read = await post(without, body);
      calls.length = 0;
      assertEquals(await post(withRecent, body), read, `${body.resource}, erasure begun`);
      assertEquals(
        calls.length > 1,
        true,
        `the tombstone, then the delivery's own reads: ${calls}`,
      );
    }
    // The whole erasure: both answer erased.
    await eraseLearner(raw, { tenantId: record.tenant_id, userId: record.user_id }, {
      destinations: [],
      now: Date.now(),
    });
    for (const body of [progress, lesson]) {
      const kept = await post(withRecent, body);
      assertEquals(kept, await post(without, body));
      assertEquals(kept.json.status, "erased");
    }
  } finally {
    raw.close();
  }
});
