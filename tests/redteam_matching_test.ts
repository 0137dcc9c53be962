/**
 * Matching behaviours hand-planted mutants found unpinned: the previous percentage of a pair whose
 * progress was created before its lesson, the wait a fresh record reports (from the pair's first
 * delivery), and the retention of a given-up event's unmatched entry (what is left of its event's).
 */
import { assertEquals } from "./_assert.ts";
import {
  allRecords,
  BASE_TIME,
  harness,
  lessonWebhook,
  progressWebhook,
  SECRET,
} from "./_helpers.ts";
import { collate } from "../lib/collator.ts";
import { parseConfig } from "../lib/config.ts";
import { decide } from "../lib/matching/decide.ts";
import { createCommitter } from "../lib/store/committer.ts";
import { readView } from "../lib/store/events.ts";
import { parseWebhook, type ThinkificEvent } from "../lib/thinkific/schemas.ts";

const DAY = 86_400_000;

function eventOf(body: unknown): ThinkificEvent {
  const parsed = parseWebhook(body, null);
  if (parsed.kind !== "event") throw new Error(`not an event: ${JSON.stringify(parsed)}`);
  return parsed.event;
}

const bytes = (body: unknown) => new TextEncoder().encode(JSON.stringify(body));

Deno.test("redteam matching: a progress created before its lesson is not its own previous percentage", async () => {
  const h = await harness();
  try {
    // An earlier pair at 10%.
    const earlier = BASE_TIME - 3_600_000;
    assertEquals((await h.post(lessonWebhook({ at: earlier, lesson: 1 }))).status, 200);
    assertEquals((await h.deliver(progressWebhook({ at: earlier, percentage: "10" }))).status, 200);
    // The progress is created 3 ms before its lesson: an inexact pair, made on a redelivery.
    assertEquals((await h.post(lessonWebhook({ at: BASE_TIME + 3, lesson: 2 }))).status, 200);
    const paired = await h.deliver(progressWebhook({ at: BASE_TIME, percentage: "17.5" }));
    assertEquals([paired.status, paired.attempts], [200, 2]);
    const last = (await allRecords(h)).find((r) => r.lesson_id === 2)!;
    assertEquals(
      [last.skew_ms, last.percentage_completed, last.previous_percentage_completed],
      [-3, 17.5, 10],
    );
    assertEquals(last.first_completion, true, "17.5 % is up from 10 %");
  } finally {
    h.close();
  }
});

Deno.test("redteam matching: a fresh record's wait counts from the first delivery of either event", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
    const clock = { now: Date.parse("2026-11-29T12:00:00.000Z") };
    const firstSeen = clock.now;
    const deps = { kv, committer: createCommitter(kv) };
    const options = { ...config, now: () => clock.now };
    const lesson = lessonWebhook();
    const stored = await collate(deps, eventOf(lesson), bytes(lesson), options);
    assertEquals(stored.status, "stored");
    clock.now += 5_000;
    const progress = progressWebhook();
    const made = await collate(deps, eventOf(progress), bytes(progress), options);
    assertEquals(made.status, "collated");
    if (made.status !== "collated") return;
    assertEquals([made.fresh, made.firstDeliveredAt, made.deliveries], [true, firstSeen, 1]);
  } finally {
    kv.close();
  }
});

Deno.test("redteam matching: a progress giving up 2 days after its first delivery is listed for what is left of its retention", async () => {
  const h = await harness({ RETENTION_DAYS: "7", GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    const body = progressWebhook({ user: 4242 });
    const first = await h.post(body);
    assertEquals([first.status, first.json.attempts], [409, 1]);
    h.clock.now += 2 * DAY;
    const event = eventOf(body);
    const view = await readView(h.kv, event, h.config.matchWindowMs);
    const { outcome, plan } = decide({
      event,
      body: bytes(body),
      view,
      options: h.config,
      now: h.clock.now,
      counted: false,
      mayGiveUp: true,
    });
    assertEquals(outcome, { status: "unmatched", attempts: 2 });
    const expiries = plan!.mutations.flatMap((m) =>
      m.type === "set" && (m.key[0] === "unmatched" || m.key[0] === "events")
        ? [[m.key[0], m.expireIn]]
        : []
    );
    assertEquals(expiries, [["unmatched", 5 * DAY], ["events", 5 * DAY]]);
  } finally {
    h.close();
  }
});
