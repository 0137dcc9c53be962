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
import { type Config, parseConfig } from "../lib/config.ts";
import { createApp } from "../lib/http/app.ts";
import { decide } from "../lib/matching/decide.ts";
import { collate } from "../lib/collator.ts";
import { createCommitter } from "../lib/store/committer.ts";
import type { Committer } from "../lib/store/committer.ts";
import { readView } from "../lib/store/events.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { createWarmViews, type WarmViews } from "../lib/store/warm.ts";
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
    name: "a pair in an enrollment whose earlier pair is paired (its read proves nothing)",
    before: [
      lessonWebhook({ id: "l0", at: at(0), lesson: 1 }),
      progressWebhook({ id: "p0", at: at(0), percentage: "10" }),
    ],
    first: lessonWebhook({ id: "l1", at: at(900), lesson: 2 }),
    second: progressWebhook({ id: "p1", at: at(900), percentage: "20" }),
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
      const apart = a2.decided.plan.mutations.length + b2.plan.mutations.length;
      assert(plan.mutations.length < apart, "the summary, written by both, is written once");
      assert((await plan.applyTo(merged.atomic()).commit()).ok, "the merged commit goes in");

      assertEquals(b2.outcome, b1.decided.outcome);
      assertEquals(await contents(merged), await contents(one));
    } finally {
      one.close();
      merged.close();
    }
  });
}

/**
 * An app whose reads take 30 ms (`readMs`; commits none), counting commits and `getMany` calls;
 * `committer` may be wrapped.
 */
async function slowReads(
  wrap?: (c: Committer) => Committer,
  opts: { config?: Config; warm?: WarmViews | null; readMs?: number } = {},
) {
  const real = await Deno.openKv(":memory:");
  const counts = { commits: 0, getMany: 0 };
  const onRead: (() => void)[] = [];
  const kv = instrumentKv(real, {
    before: (c) => {
      if (c === "commit") counts.commits++;
      if (c === "getMany") counts.getMany++;
      if (c !== "commit") { for (const began of onRead.splice(0)) began(); }
    },
    latency: (c) => (c === "commit" ? 0 : opts.readMs ?? 30),
  });
  const committer = wrap ? wrap(createCommitter(kv)) : createCommitter(kv);
  const app = createApp({
    kv,
    config: opts.config ?? config,
    committer,
    log: () => {},
    warm: opts.warm,
  });
  const post = async (body: Webhook) => {
    const res = await app.request("/webhooks/thinkific", await signedInit(body));
    return { status: res.status, json: await res.json() };
  };
  /**
   * Resolves when the next read begins: a delivery posted before it is then in its lane, reading,
   * however slowly the machine got it there (a fixed wait raced it on a busy CI machine).
   */
  const nextRead = () =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no read began within 5 s")), 5_000);
      onRead.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  return { real, counts, post, nextRead, close: () => real.close() };
}

const records = async (kv: Deno.Kv) =>
  (await dump(kv)).filter((e) => e.key[0] === "projection").length;

Deno.test("join: a counterpart arriving while the first half reads is answered from the same commit", async () => {
  const app = await slowReads();
  try {
    const progress = progressWebhook({ at: at(0) });
    const lesson = lessonWebhook({ at: at(0) });
    const [p, l] = await whileReading(app, progress, lesson);
    // With HOLD_MS=0 the progress alone would answer 409 at once: its counterpart came in its commit.
    assertEquals(p.status, 200, JSON.stringify(p.json));
    assertEquals(l.status, 200, JSON.stringify(l.json));
    assertEquals(p.json.status, "collated");
    assertEquals(p.json.record, l.json.record);
    assertEquals(l.json.record.lesson_event_id, lesson.id);
    assertEquals(l.json.record.progress_event_id, progress.id);
    assertEquals(app.counts.commits, 1, "one commit for both");
    assertEquals(app.counts.getMany, 1, "one read: the lesson decided from the progress's plan");
    assertEquals(await records(app.real), 1);
  } finally {
    app.close();
  }
});

Deno.test("join: a known learner's next pair is answered from one commit too (one read)", async () => {
  const app = await slowReads();
  try {
    // An earlier pair, stored by another process, within the span a read lists: both its events
    // paired, none unclaimed, so the read cannot prove it missed no commit.
    const now = Date.now();
    for (const b of [lessonWebhook({ at: at(0), lesson: 1 }), progressWebhook({ at: at(0) })]) {
      const { decided } = await decideRead(app.real, b, now);
      assert(decided.plan);
      assert((await decided.plan.applyTo(app.real.atomic()).commit()).ok);
    }
    const [commits, reads] = [app.counts.commits, app.counts.getMany];
    const lesson = lessonWebhook({ at: at(900), lesson: 2 });
    const progress = progressWebhook({ at: at(900), percentage: "20" });
    const [l, p] = await whileReading(app, lesson, progress);
    assertEquals([l.status, p.status], [200, 200]);
    assertEquals(p.json.status, "collated");
    assertEquals(p.json.record.lesson_event_id, lesson.id);
    assertEquals(app.counts.commits - commits, 1, "one commit for both");
    assertEquals(app.counts.getMany - reads, 1, "one read");
    assertEquals(await records(app.real), 2, "each pair's record made once");
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
    const [p, l] = await whileReading(app, progress, lesson);
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
    const [a, b] = await whileReading(app, lesson, lesson);
    assertEquals([a.status, b.status], [200, 200]);
    assertEquals([a.json.status, b.json.status], ["stored", "stored"]);
    assertEquals(app.counts.commits, 1, "the redelivery changes nothing");
    const events = (await dump(app.real)).filter((e) => e.key[0] === "events");
    assertEquals(events.length, 1);
  } finally {
    app.close();
  }
});

Deno.test("join: the view after a plan serves only new events of its enrollment, along a chain", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.parse("2026-11-29T12:00:00.000Z");
    const older = lessonWebhook({ id: "l0", at: at(0), lesson: 1 });
    const { decided: o } = await decideRead(kv, older, now - 1000);
    assert(o.plan && (await o.plan.applyTo(kv.atomic()).commit()).ok);
    // The progress pairs the lesson stored before: its view is a read.
    const progress = progressWebhook({ id: "p1", at: at(0) });
    const a = await decideRead(kv, progress, now);
    assertEquals(a.decided.outcome.status, "collated");
    assert(a.decided.plan);
    const warm = createWarmViews();
    const W = config.matchWindowMs;
    const elsewhere = eventOf(lessonWebhook({ id: "l9", at: at(0), user: 4242 }));
    assertEquals(warm.after(a.view, a.decided.writes, elsewhere, W, now), null, "another learner");
    // The next lesson, decided from what the progress's plan leaves: nothing to pair.
    const next = lessonWebhook({ id: "l2", at: at(300), lesson: 2 });
    const viewNext = warm.after(a.view, a.decided.writes, eventOf(next), W, now);
    assert(viewNext, "a new event of the enrollment");
    assertEquals(viewNext.counterparts, []);
    const b = decide({
      event: eventOf(next),
      body: enc.encode(JSON.stringify(next)),
      view: viewNext,
      options: config,
      now,
      counted: false,
      mayGiveUp: true,
    });
    assert(b.plan);
    // Further along the chain, the progress again (a redelivery, paired two plans back): not served.
    assertEquals(warm.after(viewNext, b.writes, eventOf(progress), W, now), null);
    const third = eventOf(lessonWebhook({ id: "l3", at: at(400), lesson: 3 }));
    assert(warm.after(viewNext, b.writes, third, W, now), "a new one still is");
    // A view that knows no span of events (a redelivery read where its first delivery put it)
    // serves none.
    const { known: _, ...unknowing } = a.view;
    assertEquals(warm.after(unknowing, a.decided.writes, eventOf(next), W, now), null);
  } finally {
    kv.close();
  }
});

/** Posts `first`, then each of `then` while it reads; the answers, in that order. */
async function whileReading(
  app: Awaited<ReturnType<typeof slowReads>>,
  first: Webhook,
  ...then: Webhook[]
) {
  const reading = app.nextRead();
  const ahead = app.post(first);
  await reading;
  return await Promise.all([ahead, ...then.map((b) => app.post(b))]);
}

Deno.test("join: without warm views nothing is taken over: each delivery reads and commits", async () => {
  const app = await slowReads(undefined, { warm: null });
  try {
    const [p, l] = await whileReading(
      app,
      progressWebhook({ at: at(0) }),
      lessonWebhook({ at: at(0) }),
    );
    assertEquals([p.status, l.status], [config.pendingStatus, 200]);
    assertEquals(app.counts.commits, 2);
  } finally {
    app.close();
  }
});

Deno.test("join: without lanes, the collator decides each delivery alone", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const committer = createCommitter(kv);
    const deps = { kv, committer, warm: createWarmViews() };
    const lesson = lessonWebhook({ at: at(0) });
    const outcome = await collate(
      deps,
      eventOf(lesson),
      enc.encode(JSON.stringify(lesson)),
      config,
    );
    assertEquals(outcome.status, "stored");
  } finally {
    kv.close();
  }
});

Deno.test("join: when the merged commit throws, the first answers 503 and the one taken decides on its own", async () => {
  let calls = 0;
  const app = await slowReads((c) => ({
    stats: c.stats,
    commit(plan) {
      return ++calls === 1 ? Promise.reject(new Error("database unavailable")) : c.commit(plan);
    },
  }));
  try {
    const progress = progressWebhook({ at: at(0) });
    const [p, l] = await whileReading(app, progress, lessonWebhook({ at: at(0) }));
    assertEquals(p.status, 503);
    assertEquals(l.status, 200, JSON.stringify(l.json));
    assertEquals(l.json.status, "stored", "the progress's commit did not go in");
    assertEquals(calls, 2);
  } finally {
    app.close();
  }
});

Deno.test("join: a delivery that needs its cluster read is not taken", async () => {
  const twice = parseConfig({
    THINKIFIC_WEBHOOK_SECRET: SECRET,
    HOLD_MS: "0",
    GIVE_UP_AFTER_ATTEMPTS: "2",
  });
  const app = await slowReads(undefined, { config: twice });
  try {
    // A progress that gave up: a lesson may take it however far within the window, once it has
    // read the rivals (its cluster).
    const gaveUp = progressWebhook({ at: at(100) });
    assertEquals((await app.post(gaveUp)).status, twice.pendingStatus);
    assertEquals((await app.post(gaveUp)).json.status, "unmatched");
    const before = app.counts.commits;
    // The lesson ahead is too far from it; the one behind is near it (300 ms).
    const [a, b] = await whileReading(
      app,
      lessonWebhook({ at: at(900), lesson: 2 }),
      lessonWebhook({ at: at(400), lesson: 1 }),
    );
    assertEquals(a.json.status, "stored");
    assertEquals(b.json.status, "collated", JSON.stringify(b.json));
    assertEquals(b.json.record.progress_event_id, gaveUp.id);
    assertEquals(app.counts.commits - before, 2, "the second read and committed on its own");
  } finally {
    app.close();
  }
});

Deno.test("join: what a merged commit leaves is what the enrollment's next delivery decides from", async () => {
  const app = await slowReads();
  try {
    // Two lessons in one commit: both are left unclaimed, the first still pairs.
    const l1 = lessonWebhook({ at: at(0), lesson: 1 });
    const l2 = lessonWebhook({ at: at(300), lesson: 2 });
    const [a, b] = await whileReading(app, l1, l2);
    assertEquals([a.json.status, b.json.status], ["stored", "stored"]);
    assertEquals(app.counts.commits, 1);
    const p1 = await app.post(progressWebhook({ at: at(0) }));
    assertEquals(p1.json.status, "collated", JSON.stringify(p1.json));
    assertEquals(p1.json.record.lesson_event_id, l1.id);
    // A pair in one commit: its lesson is claimed, a second progress on it stays pending.
    const l3 = lessonWebhook({ at: at(2000), lesson: 3 });
    const [c, d] = await whileReading(app, l3, progressWebhook({ at: at(2000) }));
    assertEquals([c.json.status, d.json.status], ["stored", "collated"]);
    const again = await app.post(progressWebhook({ at: at(2000) }));
    assertEquals(again.status, config.pendingStatus, JSON.stringify(again.json));
    assertEquals(
      app.counts.getMany,
      2,
      "the first of each commit read; the others decided from it",
    );
    assertEquals(await records(app.real), 2, "each pair's record made once");
  } finally {
    app.close();
  }
});

Deno.test("join: deliveries are taken only while the merged commit stays within Deno KV's limits", async () => {
  // A read of 300 ms: every lesson is waiting behind the first by the time it has decided.
  const app = await slowReads(undefined, { readMs: 300 });
  try {
    // Fifteen lessons of about 60 KB each: over 800 KiB together, so not all in one commit.
    const big = (n: number) => {
      const body = lessonWebhook({ at: at(n), lesson: n + 1 });
      return { ...body, payload: { ...body.payload, padding: "x".repeat(60_000) } };
    };
    const answers = await whileReading(
      app,
      big(0),
      ...Array.from({ length: 14 }, (_, i) => big(i + 1)),
    );
    assertEquals(answers.map((a) => a.status), Array(15).fill(200));
    assert(app.counts.commits >= 2, `${app.counts.commits} commits`);
    assert(app.counts.commits < 15, "some were taken over");
    const events = (await dump(app.real)).filter((e) => e.key[0] === "events");
    assertEquals(events.length, 15);
  } finally {
    app.close();
  }
});
