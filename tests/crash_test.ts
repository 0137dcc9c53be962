/**
 * Crash safety. A 2xx or 409 is answered only after the delivery's atomic commit, so a crash at any
 * point loses nothing that was answered. Two tests:
 *
 * - in process, deterministic: every commit is held open, and no answer leaves before its commit
 *   has completed;
 * - kill -9 under load: the server is killed while requests are inside it, restarted on the same KV
 *   file and port, and the senders' retries finish the job, exact and inexact pairs alike. No pair
 *   lost, none twice.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  BASE_TIME,
  harness,
  lessonWebhook,
  progressWebhook,
  signedInit,
  tempDir,
  type Webhook,
} from "./_helpers.ts";
import { freePort, postTo, startServer } from "./_server.ts";
import { instrumentKv } from "../lib/store/instrument.ts";

/** A KV handle whose commits wait until the test releases them. */
function heldCommits(kv: Deno.Kv) {
  const waiting: (() => void)[] = [];
  let entered: () => void = () => {};
  let holding = true;
  const held = instrumentKv(kv, {
    before() {},
    holdCommit: () =>
      holding
        ? new Promise<void>((release) => (waiting.push(release), entered()))
        : Promise.resolve(),
  });
  return {
    kv: held,
    /** Resolves when the next commit is waiting. */
    nextCommit: () => new Promise<void>((r) => (entered = r)),
    /** Lets every waiting commit through. */
    releaseAll: () => waiting.splice(0).forEach((release) => release()),
    /** Lets the commit that started waiting last through. */
    releaseNewest: () => waiting.pop()?.(),
    /** Lets every commit through, now and from now on. */
    passThrough: () => {
      holding = false;
      waiting.splice(0).forEach((release) => release());
    },
  };
}

/** Whether `p` has settled once every queued task has run. */
async function settledYet(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setTimeout(r, 0));
  return done;
}

Deno.test("crash: no answer (200 stored, 409 pending, 200 collated) leaves before its commit", async () => {
  await using real = await Deno.openKv(":memory:");
  const held = heldCommits(real);
  const h = await harness({}, held.kv);
  const lesson = lessonWebhook({ user: 77 });
  const progress = progressWebhook({ user: 77, at: BASE_TIME + 3 }); // inexact: waits first
  const exact = progressWebhook({ user: 78 });
  const exactLesson = lessonWebhook({ user: 78 });
  for (
    const [body, status] of [
      [progress, 409],
      [lesson, 200],
      [exact, 409],
      [exactLesson, 200],
    ] as [Webhook, number][]
  ) {
    const entered = held.nextCommit();
    const answer = Promise.resolve(h.app.request("/webhooks/thinkific", await signedInit(body)));
    await entered;
    assert(!(await settledYet(answer)), `${body.id} was answered before its commit completed`);
    held.releaseAll();
    const res = await answer;
    assertEquals(res.status, status, JSON.stringify(await res.clone().json()));
    await res.body?.cancel();
  }
  held.passThrough(); // the read below projects the record first: a commit too
  const records = (await h.get("/api/records")).json.records as Record<string, unknown>[];
  assertEquals(records.map((r) => r.progress_event_id).sort(), [exact.id].sort());
});

/**
 * Issue 11 item 3, deterministic: a lone `enrollment.progress` giving up on its last delivery and
 * its inexact `lesson.completed` arriving at that moment each decide on a read that the other's
 * commit makes stale. Both commits check and rewrite the enrollment's key (its serial order), so
 * the later one fails, reads again, and makes the pair.
 */
Deno.test({
  name: "race: a lesson arriving while its inexact progress gives up still pairs",
  async fn() {
    await using real = await Deno.openKv(":memory:");
    const held = heldCommits(real);
    // Two apps on one database, as two processes: each has its own committer, so both commits
    // can be in flight at once.
    const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "3" }, held.kv);
    const other = await harness({ GIVE_UP_AFTER_ATTEMPTS: "3" }, held.kv);
    const progress = progressWebhook({ user: 91, at: BASE_TIME + 3 });
    const lesson = lessonWebhook({ user: 91 });
    const post = (body: Webhook, app = h.app) =>
      signedInit(body).then((init) => app.request("/webhooks/thinkific", init));
    for (let delivery = 1; delivery <= 2; delivery++) {
      const entered = held.nextCommit();
      const answer = post(progress);
      await entered;
      held.releaseAll();
      assertEquals((await answer).status, 409);
    }
    // The last delivery reads (no lesson yet) and waits at its commit...
    let entered = held.nextCommit();
    const last = post(progress);
    await entered;
    // ...while the lesson reads (the progress still waiting) and commits first.
    entered = held.nextCommit();
    const first = post(lesson, other.app);
    await entered;
    held.releaseNewest();
    await (await first).body?.cancel();
    // The progress's commit now fails (the lesson rewrote the enrollment), reads again, and pairs.
    held.passThrough();
    await (await last).body?.cancel();
    const records = (await h.get("/api/records")).json.records as unknown[];
    assertEquals(records.length, 1, "the pair is made by one side or the other");
  },
});

interface Tally {
  deadline: number;
  /** Deliveries refused because the server was down. */
  refused: number;
  /** Deliveries the server had taken but never answered: it died with them inside. */
  cutOff: number;
  /** Answers received. */
  answered: number;
}

/** Posts until a 2xx, retrying 409s, 503s and lost connections, like Thinkific. */
async function deliverUntilAccepted(url: () => string, body: Webhook, tally: Tally) {
  for (let attempt = 1;; attempt++) {
    try {
      const r = await postTo(url(), body);
      tally.answered++;
      assert(r.status < 500 || r.status === 503, `status ${r.status}`);
      if (r.status < 300) return r.json;
    } catch (err) {
      if (!(err instanceof TypeError || err instanceof Deno.errors.ConnectionRefused)) throw err;
      if (/refused/i.test(String(err) + String((err as Error).cause ?? ""))) tally.refused++;
      else tally.cutOff++; // taken, then the server died: retry
    }
    if (Date.now() > tally.deadline) throw new Error(`gave up on ${body.id} after ${attempt}`);
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 30 * Math.min(attempt, 10)));
  }
}

Deno.test("crash: kill -9 with requests inside, restart on the same KV file, retries finish the job", async () => {
  await using dir = await tempDir();
  // Inexact pairs are made on a logic-channel event's last delivery (here the 3rd), or later with
  // the lesson when that event has given up.
  const env = { KV_PATH: `${dir.path}/kv.sqlite3`, GIVE_UP_AFTER_ATTEMPTS: "3" };
  const port = freePort();
  let server = await startServer(env, port);
  const tally: Tally = { deadline: Date.now() + 60_000, refused: 0, cutOff: 0, answered: 0 };
  try {
    const work = Array.from({ length: 150 }, (_, i) => {
      const at = BASE_TIME + i * 3_000;
      const who = { user: 1 + (i % 7), course: 1 + (i % 2) };
      return {
        lesson: lessonWebhook({ ...who, at, lesson: 500 + i }),
        // Every third pair is inexact: 1-3 ms apart, as Thinkific's clocks sometimes are.
        progress: progressWebhook({ ...who, at: at + (i % 3 === 0 ? 1 + (i % 4) : 0) }),
      };
    });
    // Everything at once: the server is reading, committing and answering all the time.
    const send = (body: Webhook) => deliverUntilAccepted(() => server.url, body, tally);
    const load = Promise.all(
      work.flatMap(({ lesson, progress }) => [send(lesson), send(progress)]),
    );
    while (tally.answered < 40) await new Promise((r) => setTimeout(r, 1));
    await server.crash();
    server = await startServer(env, port);
    await load;
    assert(tally.cutOff > 0, "the kill landed while the server held requests");

    const res = await fetch(`${server.url}/api/records?limit=500`);
    const { records } = await res.json();
    assertEquals(records.length, work.length, "every pair recorded exactly once");
    const want = new Map(work.map(({ lesson, progress }) => [progress.id, lesson.id]));
    for (const r of records) assertEquals(r.lesson_event_id, want.get(r.progress_event_id));
    assert(records.some((r: { skew_ms: number }) => r.skew_ms !== 0), "inexact pairs too");
    const unmatched = await (await fetch(`${server.url}/api/unmatched`)).json();
    assertEquals(unmatched.events, [], "nothing left unmatched");
  } finally {
    await server.close();
  }
});
