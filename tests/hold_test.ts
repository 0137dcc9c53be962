/**
 * Held deliveries (`HOLD_MS`): a pending logic-channel delivery waits for its counterpart and
 * answers with the record; `HOLD_MS=0`; an inexact counterpart already stored is not waited for;
 * shutdown answers held deliveries at once; a counterpart posted to another process on the same
 * database file wakes the held delivery (a poll of the enrollment's key).
 *
 * Waits here are bounded far above what they take (a held delivery is woken in milliseconds), so
 * a delivery that is never woken fails the test instead of passing when its hold runs out.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  BASE_TIME,
  dump,
  evalChild,
  lessonWebhook,
  libImport,
  progressWebhook,
  SECRET,
  signedInit,
  tempDir,
} from "./_helpers.ts";
import { postTo, startServer } from "./_server.ts";
import { parseConfig } from "../lib/config.ts";
import { createHolds, type Holds, type WakeMode } from "../lib/hold.ts";
import { createApp } from "../lib/http/app.ts";
import { instrumentKv } from "../lib/store/instrument.ts";

/** Rejects if `p` has not settled within `ms`: the delivery was not woken. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function until(cond: () => boolean, what: string) {
  for (let i = 0; !cond(); i++) {
    if (i > 500) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function app(
  holdMs: number,
  mode: WakeMode = "memory",
  db?: Deno.Kv,
  env: Record<string, string> = {},
) {
  const calls = { n: 0 };
  const real = db ?? await Deno.openKv(":memory:");
  const kv = instrumentKv(real, { before: () => void calls.n++ });
  const config = parseConfig({
    THINKIFIC_WEBHOOK_SECRET: SECRET,
    HOLD_MS: String(holdMs),
    ...env,
  });
  const holds: Holds = createHolds(kv, { mode });
  const a = createApp({ kv, config, holds, log: () => {} });
  const post = async (body: unknown) => {
    const res = await a.request("/webhooks/thinkific", await signedInit(body));
    return { status: res.status, json: await res.json() as Record<string, unknown> };
  };
  const get = async (path: string) => {
    const res = await a.request(path);
    return { status: res.status, json: await res.json() as Record<string, unknown> };
  };
  return { kv: real, holds, post, get, calls, [Symbol.dispose]: () => db ?? real.close() };
}

Deno.test("hold: a progress arriving first is answered with its record when its lesson comes", async () => {
  using s = await app(20_000);
  const progress = progressWebhook({ at: BASE_TIME });
  const held = s.post(progress);
  await until(() => s.holds.waiting === 1, "the progress is held");
  const lesson = await s.post(lessonWebhook({ at: BASE_TIME }));
  assertEquals([lesson.status, lesson.json.status], [200, "collated"]);
  const answer = await within(held, 5_000, "the held progress");
  assertEquals([answer.status, answer.json.status], [200, "collated"]);
  const record = answer.json.record as Record<string, unknown>;
  assertEquals(record.progress_event_id, progress.id);
  assertEquals(record, lesson.json.record);
  assertEquals(s.holds.waiting, 0);
  // The progress: one getMany, two lists (both topics), one commit. The lesson: one commit, decided
  // from what the progress's commit left (warm views). The woken progress got its record from the
  // lesson's commit, with no read of its own.
  assertEquals(s.calls.n, 5);
});

Deno.test("hold: two progresses held in one enrollment are each answered with their own record", async () => {
  using s = await app(20_000);
  const first = progressWebhook({ at: BASE_TIME, percentage: "10" });
  const second = progressWebhook({ at: BASE_TIME + 600_000, percentage: "20" });
  let firstAnswered = false;
  const heldFirst = s.post(first).finally(() => firstAnswered = true);
  const heldSecond = s.post(second);
  await until(() => s.holds.waiting === 2, "both progresses are held");
  // The second's lesson comes first: only the second is answered with it.
  const lesson2 = await s.post(lessonWebhook({ at: BASE_TIME + 600_000, lesson: 2 }));
  assertEquals(lesson2.json.status, "collated");
  const answer2 = await within(heldSecond, 5_000, "the second held progress");
  assertEquals((answer2.json.record as Record<string, unknown>).progress_event_id, second.id);
  // Woken too, the first decides again and goes back to waiting for its own lesson.
  await until(() => s.holds.waiting === 1, "the first waits again");
  assertEquals(firstAnswered, false, "the first still waits for its own lesson");
  const lesson1 = await s.post(lessonWebhook({ at: BASE_TIME, lesson: 1 }));
  assertEquals(lesson1.json.status, "collated");
  const answer1 = await within(heldFirst, 5_000, "the first held progress");
  assertEquals([answer1.status, answer1.json.status], [200, "collated"]);
  const record1 = answer1.json.record as Record<string, unknown>;
  assertEquals([record1.progress_event_id, record1.lesson_id], [first.id, 1]);
  assertEquals(s.holds.waiting, 0);
});

Deno.test("hold: HOLD_MS=0 answers the pending status at once", async () => {
  using s = await app(0);
  const answer = await within(s.post(progressWebhook({ at: BASE_TIME })), 5_000, "HOLD_MS=0");
  assertEquals([answer.status, answer.json.status], [409, "pending"]);
  assertEquals(s.holds.waiting, 0);
});

Deno.test("hold: a progress whose inexact lesson is already stored is not held", async () => {
  using s = await app(20_000);
  assertEquals((await s.post(lessonWebhook({ at: BASE_TIME }))).json.status, "stored");
  const answer = await within(s.post(progressWebhook({ at: BASE_TIME + 3 })), 5_000, "inexact");
  assertEquals([answer.status, answer.json.status], [409, "pending"]);
});

Deno.test("hold: closing the holds (shutdown) answers a held delivery at once", async () => {
  using s = await app(20_000);
  const held = s.post(progressWebhook({ at: BASE_TIME }));
  await until(() => s.holds.waiting === 1, "the progress is held");
  const calls = s.calls.n;
  s.holds.close();
  const answer = await within(held, 5_000, "shutdown");
  assertEquals([answer.status, answer.json.status], [409, "pending"]);
  assertEquals(s.calls.n, calls, "not its last delivery: answered with no new read");
  // Later deliveries are not held either.
  const next = await within(s.post(progressWebhook({ at: BASE_TIME + 5_000 })), 5_000, "after");
  assertEquals(next.status, 409);
});

Deno.test("hold: a last delivery with a rival's counterpart in its window answers 200 unmatched, not the pending status", async () => {
  // L at t; P2 at t+5 ms (pending on its first delivery: an inexact pair waits a retry); P1 at
  // t+300 ms, delivered twice. Its last delivery is not held (a counterpart is stored), so it
  // gives up as it does with HOLD_MS=0, instead of answering 409 on every delivery.
  for (const holdMs of [0, 1500]) {
    using s = await app(holdMs, "memory", undefined, { GIVE_UP_AFTER_ATTEMPTS: "2" });
    assertEquals((await s.post(lessonWebhook({ at: BASE_TIME }))).json.status, "stored");
    assertEquals((await s.post(progressWebhook({ at: BASE_TIME + 5 }))).status, 409);
    const p1 = progressWebhook({ at: BASE_TIME + 300 });
    const first = await within(s.post(p1), 5_000, `first delivery, HOLD_MS=${holdMs}`);
    assertEquals([first.status, first.json.status], [409, "pending"]);
    const last = await within(s.post(p1), 5_000, `last delivery, HOLD_MS=${holdMs}`);
    assertEquals([last.status, last.json.status, last.json.attempts], [200, "unmatched", 2]);
    const listed = (await s.get("/api/unmatched")).json.events as Record<string, unknown>[];
    assertEquals(listed.map((e) => e.event_id), [p1.id], `HOLD_MS=${holdMs}`);
    assertEquals(s.holds.waiting, 0);
  }
});

Deno.test("hold: shutdown during a held last delivery gives it up (listed) before it answers 200 unmatched", async () => {
  using s = await app(20_000, "memory", undefined, { GIVE_UP_AFTER_ATTEMPTS: "2" });
  // Its first delivery through another app on the database, not held.
  using first = await app(0, "memory", s.kv, { GIVE_UP_AFTER_ATTEMPTS: "2" });
  const progress = progressWebhook({ at: BASE_TIME, user: 34 });
  assertEquals((await first.post(progress)).status, 409);
  const held = s.post(progress);
  await until(() => s.holds.waiting === 1, "the last delivery is held");
  s.holds.close();
  const answer = await within(held, 5_000, "the held last delivery on shutdown");
  assertEquals([answer.status, answer.json.status, answer.json.attempts], [200, "unmatched", 2]);
  const listed = (await s.get("/api/unmatched")).json.events as Record<string, unknown>[];
  assertEquals(listed.map((e) => e.event_id), [progress.id]);
  // A redelivery after the shutdown answers the same.
  const again = await within(s.post(progress), 5_000, "a redelivery");
  assertEquals([again.status, again.json.status], [200, "unmatched"]);
});

Deno.test("hold: a lesson posted to another process on the same file wakes the held progress", async () => {
  await using dir = await tempDir();
  const env = { KV_PATH: `${dir.path}/kv.sqlite3`, HOLD_MS: "20000" };
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const progress = progressWebhook({ at: BASE_TIME, user: 31 });
    const held = postTo(a.url, progress);
    await new Promise((r) => setTimeout(r, 300)); // the progress is stored and held in A
    const lesson = await postTo(b.url, lessonWebhook({ at: BASE_TIME, user: 31 }));
    assertEquals(lesson.json.status, "collated");
    const answer = await within(held, 8_000, "the progress held in the other process");
    assertEquals([answer.status, answer.json.status], [200, "collated"]);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("hold: kv.watch wakes a held delivery when another app on the database pairs it (Deploy's mode)", async () => {
  // Two apps on one handle stand for two isolates: the second's commit does not notify the
  // first's holds, so only the watch on the enrollment's key can wake the held progress.
  using a = await app(20_000, "watch");
  using b = await app(20_000, "memory", a.kv);
  const held = a.post(progressWebhook({ at: BASE_TIME, user: 33 }));
  await until(() => a.holds.waiting === 1, "the progress is held");
  const lesson = await b.post(lessonWebhook({ at: BASE_TIME, user: 33 }));
  assertEquals(lesson.json.status, "collated");
  const answer = await within(held, 8_000, "the progress held under kv.watch");
  assertEquals([answer.status, answer.json.status], [200, "collated"]);
});

Deno.test("hold: SIGTERM answers a held delivery with the pending status, then the server exits", async () => {
  await using dir = await tempDir();
  const server = await startServer({ KV_PATH: `${dir.path}/kv.sqlite3`, HOLD_MS: "20000" });
  try {
    const held = postTo(server.url, progressWebhook({ at: BASE_TIME, user: 32 }));
    await new Promise((r) => setTimeout(r, 300));
    server.child.kill("SIGTERM");
    const answer = await within(held, 8_000, "the held delivery on SIGTERM");
    assertEquals([answer.status, answer.json.status], [409, "pending"]);
    const status = await within(server.child.status, 8_000, "the server's exit");
    assert(status.success, `exit code ${status.code}`);
  } finally {
    await server.close();
  }
});

Deno.test("hold: SIGTERM during a held last delivery answers 200 unmatched, listed, then the server exits", async () => {
  await using dir = await tempDir();
  const env = { KV_PATH: `${dir.path}/kv.sqlite3`, GIVE_UP_AFTER_ATTEMPTS: "2" };
  const first = await startServer({ ...env, HOLD_MS: "0" }); // its first delivery, not held
  const server = await startServer({ ...env, HOLD_MS: "20000" });
  try {
    const progress = progressWebhook({ at: BASE_TIME, user: 35 });
    assertEquals((await postTo(first.url, progress)).status, 409);
    const held = postTo(server.url, progress);
    await new Promise((r) => setTimeout(r, 300));
    server.child.kill("SIGTERM");
    const answer = await within(held, 8_000, "the held last delivery on SIGTERM");
    assertEquals([answer.status, answer.json.status], [200, "unmatched"]);
    const status = await within(server.child.status, 8_000, "the server's exit");
    assert(status.success, `exit code ${status.code}`);
    const res = await fetch(new URL("/api/unmatched", first.url));
    const listed = (await res.json()).events as Record<string, unknown>[];
    assertEquals(listed.map((e) => e.event_id), [progress.id]);
  } finally {
    await first.close();
    await server.close();
  }
});

Deno.test("hold: a wait of 0 ms ends at once as a timeout and is never counted as waiting", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const holds = createHolds(kv, { mode: "memory" });
    const waited = holds.wait("t", ["k"], null, 0);
    assertEquals(holds.waiting, 0);
    assertEquals((await waited).end, "timeout");
  } finally {
    kv.close();
  }
});

Deno.test("hold: in memory mode only a notification wakes a delivery, not a write to the database", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const holds = createHolds(kv, { mode: "memory" });
    const waited = holds.wait("t", ["k"], null, 300);
    await kv.set(["k"], 1);
    assertEquals((await within(waited, 5_000, "the memory-mode wait")).end, "timeout");
  } finally {
    kv.close();
  }
});

Deno.test("hold: a watched delivery that times out stops watching the database", async () => {
  const real = await Deno.openKv(":memory:");
  let watching = 0;
  const kv = new Proxy(real, {
    get(target, prop) {
      if (prop !== "watch") {
        const v = Reflect.get(target, prop);
        return typeof v === "function" ? v.bind(target) : v;
      }
      return (keys: Deno.KvKey[]) => {
        const inner = target.watch(keys).getReader();
        watching++;
        return new ReadableStream({
          async pull(controller) {
            const { done, value } = await inner.read();
            if (done) controller.close();
            else controller.enqueue(value);
          },
          async cancel() {
            watching--;
            await inner.cancel();
          },
        });
      };
    },
  });
  try {
    const holds = createHolds(kv, { mode: "watch" });
    const end = await within(holds.wait("t", ["k"], null, 100), 5_000, "the watched wait");
    assertEquals(end.end, "timeout");
    await until(() => watching === 0, "the watch is cancelled");
  } finally {
    real.close();
  }
});

Deno.test("hold: a commit in another enrollment does not wake a held delivery", async () => {
  using s = await app(20_000);
  const held = s.post(progressWebhook({ at: BASE_TIME }));
  await until(() => s.holds.waiting === 1, "the progress is held");
  const calls = s.calls.n;
  const other = await s.post(lessonWebhook({ at: BASE_TIME, user: 42 }));
  assertEquals(other.json.status, "stored");
  await new Promise((r) => setTimeout(r, 100));
  // The other lesson's getMany, two lists and commit; nothing from the held delivery.
  assertEquals(s.calls.n, calls + 4, "the held delivery did not read again");
  assertEquals(s.holds.waiting, 1);
  await s.post(lessonWebhook({ at: BASE_TIME }));
  assertEquals((await within(held, 5_000, "the held progress")).json.status, "collated");
});

Deno.test("hold: a held delivery whose counterpart never comes answers the pending status after HOLD_MS", async () => {
  using s = await app(300);
  const answer = s.post(progressWebhook({ at: BASE_TIME }));
  await until(() => s.holds.waiting === 1, "the progress is held");
  const stored = await dump(s.kv);
  const r = await within(answer, 5_000, "the held progress");
  assertEquals([r.status, r.json.status], [409, "pending"]);
  assertEquals(s.holds.waiting, 0);
  // Deciding again after the hold finds nothing new to write.
  assertEquals(await dump(s.kv), stored);
});

Deno.test("hold: with LOGIC_TOPIC=lesson.completed the lesson is held and answered with its record", async () => {
  using s = await app(20_000, "memory", undefined, { LOGIC_TOPIC: "lesson.completed" });
  const lesson = lessonWebhook({ at: BASE_TIME });
  const held = s.post(lesson);
  await until(() => s.holds.waiting === 1, "the lesson is held");
  const progress = await s.post(progressWebhook({ at: BASE_TIME }));
  assertEquals(progress.json.status, "collated");
  const answer = await within(held, 5_000, "the held lesson");
  assertEquals([answer.status, answer.json.status], [200, "collated"]);
  assertEquals((answer.json.record as Record<string, unknown>).lesson_event_id, lesson.id);
  // Four KV calls for the lesson, one commit for the progress (warm views): the woken lesson got its
  // record from the progress's commit.
  assertEquals(s.calls.n, 5);
});

Deno.test("hold: a polled delivery woken early leaves no poll timer behind", async () => {
  // Ends right after the wake: Deno's op sanitizer (2.5) fails this test if a poll timer outlives
  // it.
  const kv = await Deno.openKv(":memory:");
  try {
    const holds = createHolds(kv, { mode: "poll", pollMs: 60_000 });
    const held = holds.wait("t", ["k"], null, 60_000);
    holds.notify("t", "note");
    assertEquals(await held, { end: "woken", note: "note" });
  } finally {
    kv.close();
  }
});

Deno.test("hold: a polled delivery stops reading the database once it is answered", async () => {
  const real = await Deno.openKv(":memory:");
  const reads = { n: 0 };
  const kv = instrumentKv(real, { before: () => void reads.n++ });
  try {
    const holds = createHolds(kv, { mode: "poll", pollMs: 10 });
    const held = holds.wait("t", ["k"], null, 60_000);
    holds.notify("t");
    assertEquals((await held).end, "woken");
    await new Promise((r) => setTimeout(r, 60));
    assertEquals(reads.n, 0);
  } finally {
    real.close();
  }
});

Deno.test("hold: a delivery woken before its hold ran out leaves no timer keeping the process up", async () => {
  // A child process holds one delivery for 60 s, wakes it at once and ends: it must exit then,
  // not when the 60 s hold would have run out.
  const code = `
    import { createHolds } from ${libImport("hold.ts")};
    const kv = await Deno.openKv(":memory:");
    const holds = createHolds(kv, { mode: "memory" });
    const held = holds.wait("t", ["k"], null, 60_000);
    holds.notify("t");
    console.log((await held).end);
    kv.close();
  `;
  const run = await evalChild(code);
  assertEquals([run.code, run.stdout], [0, "woken"], run.stderr);
  assert(run.ms < 10_000, "the process ended without waiting for the hold");
});
