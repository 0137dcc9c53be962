/**
 * A delivery waiting in its enrollment's lane behind one that is reading is decided into that one's
 * commit (`takeOver` in lib/collator.ts, with `take` in lib/lanes.ts, `after` in
 * lib/store/warm.ts and `followedBy` in lib/store/plan.ts):
 * - the database it leaves is the one the two commits one after the other leave (a table);
 * - both deliveries answer from the one commit, a logic event paired there with its record;
 * - when that commit loses to another writer, the delivery taken decides on its own after all;
 * - a redelivery of the event ahead is not taken (it reads, as a redelivery).
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
import { decide } from "../lib/matching/decide.ts";
import { createCommitter } from "../lib/store/committer.ts";
import type { Committer } from "../lib/store/committer.ts";
import { readView } from "../lib/store/events.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { createWarmViews } from "../lib/store/warm.ts";
import { parseWebhook, type ThinkificEvent } from "../lib/thinkific/schemas.ts";

const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
const enc = new TextEncoder();

function eventOf(body: Webhook): ThinkificEvent {
  const parsed = parseWebhook(body, null);
  if (parsed.kind !== "event") throw new Error("not an event");
  return parsed.event;
}

/** Decides `body` from a read of `kv` at `now`. */
async function decideRead(kv: Deno.Kv, body: Webhook, now: number) {
  const event = eventOf(body);
  const view = await readView(kv, event, config.matchWindowMs);
  const decided = decide({
    event,
    body: enc.encode(JSON.stringify(body)),
    view,
    options: config,
    now,
    counted: false,
    mayGiveUp: true,
  });
  return { event, view, decided };
}

/** Keys and values, without versionstamps (two databases written at different versions). */
const contents = async (kv: Deno.Kv) =>
  (await dump(kv)).map((e) => ({ key: e.key, value: e.value }));

const at = (ms: number) => BASE_TIME + ms;
const scenarios: { name: string; before: Webhook[]; first: Webhook; second: Webhook }[] = [
  {
    name: "a lesson, then its progress",
    before: [],
    first: lessonWebhook({ id: "l1", at: at(0) }),
    second: progressWebhook({ id: "p1", at: at(0) }),
  },
  {
    name: "a progress, then its lesson",
    before: [],
    first: progressWebhook({ id: "p1", at: at(0) }),
    second: lessonWebhook({ id: "l1", at: at(0) }),
  },
  {
    name: "a progress, then a lesson 40 ms away (inexact: neither claims it yet)",
    before: [],
    first: progressWebhook({ id: "p1", at: at(40) }),
    second: lessonWebhook({ id: "l1", at: at(0) }),
  },
  {
    name: "two lessons of one enrollment, no pair",
    before: [],
    first: lessonWebhook({ id: "l1", at: at(0), lesson: 1 }),
    second: lessonWebhook({ id: "l2", at: at(300), lesson: 2 }),
  },
  {
    name: "a progress pairing a lesson stored before, then the next lesson",
    before: [lessonWebhook({ id: "l0", at: at(0), lesson: 1 })],
    first: progressWebhook({ id: "p1", at: at(0) }),
    second: lessonWebhook({ id: "l2", at: at(200), lesson: 2 }),
  },
  {
    name: "two progress events (the logic channel), nothing to pair",
    before: [],
    first: progressWebhook({ id: "p1", at: at(0), percentage: "10" }),
    second: progressWebhook({ id: "p2", at: at(200), percentage: "20" }),
  },
];

for (const s of scenarios) {
  Deno.test(`join: ${s.name}: one merged commit leaves what two commits leave`, async () => {
    const one = await Deno.openKv(":memory:");
    const merged = await Deno.openKv(":memory:");
    try {
      const now = Date.parse("2026-11-29T12:00:00.000Z");
      for (const kv of [one, merged]) {
        for (const [i, b] of s.before.entries()) {
          const { decided } = await decideRead(kv, b, now - 1000 + i);
          assert(decided.plan, "stored before");
          assert((await decided.plan.applyTo(kv.atomic()).commit()).ok);
        }
      }
      // One after the other: each from a read.
      const a1 = await decideRead(one, s.first, now);
      assert(a1.decided.plan);
      assert((await a1.decided.plan.applyTo(one.atomic()).commit()).ok);
      const b1 = await decideRead(one, s.second, now + 5);
      assert(b1.decided.plan);
      assert((await b1.decided.plan.applyTo(one.atomic()).commit()).ok);

      // Merged: the second decided from the view the first's plan leaves.
      const a2 = await decideRead(merged, s.first, now);
      assert(a2.decided.plan);
      const warm = createWarmViews();
      const second = eventOf(s.second);
      const after = warm.after(
        a2.view,
        a2.decided.writes,
        second,
        config.matchWindowMs,
        now + 5,
      );
      assert(after, "the second is decided from what the first leaves");
      const b2 = decide({
        event: second,
        body: enc.encode(JSON.stringify(s.second)),
        view: after,
        options: config,
        now: now + 5,
        counted: false,
        mayGiveUp: true,
      });
      assert(b2.plan);
      const plan = a2.decided.plan.followedBy(b2.plan);
      assert((await plan.applyTo(merged.atomic()).commit()).ok, "the merged commit goes in");

      assertEquals(b2.outcome, b1.decided.outcome);
      assertEquals(await contents(merged), await contents(one));
    } finally {
      one.close();
      merged.close();
    }
  });
}

/** An app whose reads take 30 ms (commits none), counting commits; `committer` may be wrapped. */
async function slowReads(wrap?: (c: Committer) => Committer) {
  const real = await Deno.openKv(":memory:");
  const counts = { commits: 0 };
  const kv = instrumentKv(real, {
    before: (c) => void (c === "commit" && counts.commits++),
    latency: (c) => (c === "commit" ? 0 : 30),
  });
  const committer = wrap ? wrap(createCommitter(kv)) : createCommitter(kv);
  const app = createApp({ kv, config, committer, log: () => {} });
  const post = async (body: Webhook) => {
    const res = await app.request("/webhooks/thinkific", await signedInit(body));
    return { status: res.status, json: await res.json() };
  };
  return { real, counts, post, close: () => real.close() };
}

const records = async (kv: Deno.Kv) =>
  (await dump(kv)).filter((e) => e.key[0] === "projection").length;

Deno.test("join: a counterpart arriving while the first half reads is answered from the same commit", async () => {
  const app = await slowReads();
  try {
    const progress = progressWebhook({ at: at(0) });
    const lesson = lessonWebhook({ at: at(0) });
    const first = app.post(progress);
    await new Promise((r) => setTimeout(r, 5)); // the progress is reading
    const [p, l] = await Promise.all([first, app.post(lesson)]);
    // With HOLD_MS=0 the progress alone would answer 409 at once: its counterpart came in its commit.
    assertEquals(p.status, 200, JSON.stringify(p.json));
    assertEquals(l.status, 200, JSON.stringify(l.json));
    assertEquals(p.json.status, "collated");
    assertEquals(p.json.record, l.json.record);
    assertEquals(l.json.record.lesson_event_id, lesson.id);
    assertEquals(l.json.record.progress_event_id, progress.id);
    assertEquals(app.counts.commits, 1, "one commit for both");
    assertEquals(await records(app.real), 1);
  } finally {
    app.close();
  }
});

Deno.test("join: when the merged commit loses, the delivery taken decides on its own", async () => {
  const plans: number[] = [];
  const app = await slowReads((c) => ({
    stats: c.stats,
    commit(plan) {
      plans.push(plan.mutations.length);
      // The first commit (the merged one) loses, as to another writer.
      return plans.length === 1 ? Promise.resolve({ ok: false }) : c.commit(plan);
    },
  }));
  try {
    const progress = progressWebhook({ at: at(0) });
    const lesson = lessonWebhook({ at: at(0) });
    const first = app.post(progress);
    await new Promise((r) => setTimeout(r, 5));
    const [p, l] = await Promise.all([first, app.post(lesson)]);
    assertEquals(l.status, 200, JSON.stringify(l.json));
    assertEquals(l.json.record.progress_event_id, progress.id);
    assert([200, config.pendingStatus].includes(p.status), `progress: ${p.status}`);
    assertEquals(plans.length, 3, "the merged plan, then each delivery's own");
    assert(plans[0] > plans[1], "the first plan was both deliveries'");
    assertEquals(await records(app.real), 1);
    const events = (await dump(app.real)).filter((e) => e.key[0] === "events");
    assertEquals(events.length, 2, "each event stored once");
  } finally {
    app.close();
  }
});

Deno.test("join: a redelivery of the event ahead is not taken: it reads, and stores nothing twice", async () => {
  const app = await slowReads();
  try {
    const lesson = lessonWebhook({ at: at(0) });
    const first = app.post(lesson);
    await new Promise((r) => setTimeout(r, 5));
    const [a, b] = await Promise.all([first, app.post(lesson)]);
    assertEquals([a.status, b.status], [200, 200]);
    assertEquals([a.json.status, b.json.status], ["stored", "stored"]);
    assertEquals(app.counts.commits, 1, "the redelivery changes nothing");
    const events = (await dump(app.real)).filter((e) => e.key[0] === "events");
    assertEquals(events.length, 1);
  } finally {
    app.close();
  }
});
