/**
 * The change feed's fence (lib/store/records.ts): it only moves forward, by at least a step, never
 * past what another reader already set; no record is written before it; a page of the feed holds
 * at most its limit; the feed projects pending records between moving the fence and listing. The
 * end-to-end guarantees are in feed_test.ts.
 */
import assert from "node:assert/strict";
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { FEED_FENCE_KEY } from "../lib/store/keys.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { CommitPlan } from "../lib/store/plan.ts";
import { advanceFence, listFeed, placeRecord } from "../lib/store/records.ts";
import { projectPending } from "../lib/store/projections.ts";
import { pairsLeftPending, pendingProjections } from "./_projection.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";

Deno.test("fence: moves up to the reader's time by at least a step, never back", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    assertEquals(await advanceFence(kv, 10_000, 1_000), 10_000, "first read: set");
    assertEquals(await advanceFence(kv, 10_999, 1_000), 10_000, "less than a step: stays");
    assertEquals(await advanceFence(kv, 11_000, 1_000), 11_000, "exactly a step: moves");
    assertEquals(await advanceFence(kv, 5_000, 1_000), 11_000, "an earlier clock: never back");
    assertEquals((await kv.get(FEED_FENCE_KEY)).value, 11_000);
  } finally {
    kv.close();
  }
});

Deno.test("fence: a reader that loses the race to another reader takes the fence the other set", async () => {
  const real = await Deno.openKv(":memory:");
  let raced = false;
  // Another process moves the fence further between this reader's read and its commit.
  const kv = instrumentKv(real, {
    before() {},
    holdCommit: async () => {
      if (raced) return;
      raced = true;
      await real.set(FEED_FENCE_KEY, 50_000);
    },
  });
  try {
    assertEquals(await advanceFence(kv, 20_000, 1_000), 50_000);
    assertEquals((await real.get(FEED_FENCE_KEY)).value, 50_000, "not moved back");
  } finally {
    real.close();
  }
});

Deno.test("fence: a record cannot be written before the fence it read", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(FEED_FENCE_KEY, Date.parse("2026-11-29T12:00:00.000Z"));
    const fence = await kv.get<number>(FEED_FENCE_KEY);
    const record = {
      tenant_id: "48213",
      progress_event_id: "1",
      completed_at: "2026-11-29T11:00:00.000Z",
      collated_at: "2026-11-29T11:59:59.999Z",
    } as LessonProgressRecord;
    assert.throws(
      () => placeRecord(new CommitPlan(), record, fence),
      { name: "RangeError", message: /before the feed's fence/ },
    );
    const at = { ...record, collated_at: "2026-11-29T12:00:00.000Z" };
    const plan = placeRecord(new CommitPlan(), at, fence) as CommitPlan;
    // At the fence is allowed, and the commit checks the fence as read.
    assertEquals(plan.checks[0], { key: FEED_FENCE_KEY, versionstamp: fence.versionstamp });
  } finally {
    kv.close();
  }
});

Deno.test("fence: a feed page holds at most its limit; the next page goes on after it", async () => {
  const h = await harness({ FEED_DELAY_MS: "100" });
  try {
    for (const user of [1, 2, 3]) {
      await h.post(lessonWebhook({ user }));
      assertEquals((await h.post(progressWebhook({ user }))).json.status, "collated");
    }
    h.clock.now += 1_000;
    const first = await h.get("/api/feed?limit=2");
    assertEquals((first.json.records as unknown[]).length, 2);
    const second = await h.get(`/api/feed?limit=2&cursor=${first.json.cursor}`);
    assertEquals((second.json.records as unknown[]).length, 1);
    const third = await h.get(`/api/feed?limit=2&cursor=${second.json.cursor}`);
    assertEquals(third.json.records, []);
  } finally {
    h.close();
  }
});

Deno.test("fence: the feed projects after the fence has moved and before it lists, so a pending record is served", async () => {
  const h = await harness();
  try {
    await pairsLeftPending(h, 1, () => ({ user: 1, lesson: 1, at: BASE_TIME }));
    assertEquals(await pendingProjections(h.kv), 1);
    const until = Date.now() + 60_000; // the app of `pairsLeftPending` collates on the real clock
    let fenceWhenProjecting: number | null = null;
    const project = async () => {
      fenceWhenProjecting = (await h.kv.get<number>(FEED_FENCE_KEY)).value;
      await projectPending(h.kv, { destinations: [], now: h.clock.now });
    };
    const page = await listFeed(h.kv, { limit: 10, until, step: 1 }, project);
    assertEquals(fenceWhenProjecting, until, "the fence moved first");
    assertEquals(page.records.length, 1, "the record pending before the call is served");
    assertEquals(await pendingProjections(h.kv), 0);
    // A cursor at the fence already: nothing to serve, nothing projected.
    await pairsLeftPending(h, 1, () => ({ user: 2, lesson: 1, at: BASE_TIME }));
    const again = await listFeed(h.kv, { cursor: [until], limit: 10, until, step: 1 }, project);
    assertEquals(again.records, []);
    assertEquals(await pendingProjections(h.kv), 1);
  } finally {
    h.close();
  }
});
