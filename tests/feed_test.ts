/**
 * `GET /api/feed`: every record once, in commit order, behind a cursor on every answer, including
 * records made long after their completion time, with one or several processes writing.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  allRecords,
  BASE_TIME,
  type Harness,
  harness,
  lessonWebhook,
  progressWebhook,
} from "./_helpers.ts";
import { postTo, startServer } from "./_server.ts";

type Rec = Record<string, unknown>;

/** Reads the feed from `cursor` until an empty page; returns the records and the last cursor. */
async function follow(h: Harness, cursor: string | null, limit = 2) {
  const records: Rec[] = [];
  for (;;) {
    const r = await h.get(`/api/feed?limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`);
    assertEquals(r.status, 200, JSON.stringify(r.json));
    assertEquals(typeof r.json.cursor, "string", "a cursor on every answer");
    cursor = r.json.cursor as string;
    const page = r.json.records as Rec[];
    records.push(...page);
    if (page.length === 0) return { records, cursor };
  }
}

const ids = (records: Rec[]) => records.map((r) => r.progress_event_id);

Deno.test("feed: records in commit order after the delay, late pairs included, cursor resumes exactly", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2", FEED_DELAY_MS: "5000" });
  try {
    // A lone progress that gives up (completed at T), then an exact pair completed later.
    const lone = progressWebhook({ user: 1, at: BASE_TIME });
    assertEquals((await h.deliver(lone)).json.status, "unmatched");
    const exact = [lessonWebhook({ user: 2, at: BASE_TIME + 10_000 })];
    const exactProgress = progressWebhook({ user: 2, at: BASE_TIME + 10_000 });
    await h.post(exact[0]);
    assertEquals((await h.post(exactProgress)).json.status, "collated");

    let feed = await follow(h, null);
    assertEquals(feed.records, [], "not visible before the delay");
    h.clock.now += 5_001;
    feed = await follow(h, feed.cursor);
    assertEquals(ids(feed.records), [exactProgress.id]);

    // Made now, completed before what was already read: the late lesson of the lone progress,
    // an inexact pair (made on the progress's last delivery), and three pairs in the same ms.
    assertEquals((await h.post(lessonWebhook({ user: 1, at: BASE_TIME }))).json.status, "collated");
    const inexact = progressWebhook({ user: 3, at: BASE_TIME + 200 });
    assertEquals((await h.post(inexact)).status, 409);
    await h.post(lessonWebhook({ user: 3, at: BASE_TIME }));
    h.clock.now += 1_000;
    assertEquals((await h.post(inexact)).json.status, "collated");
    const sameMs = [4, 5, 6].map((user) => progressWebhook({ user, at: BASE_TIME + 5 }));
    for (const p of sameMs) {
      await h.post(lessonWebhook({ user: Number(p.payload.user.id), at: BASE_TIME + 5 }));
      assertEquals((await h.post(p)).json.status, "collated");
    }

    const early = await follow(h, feed.cursor);
    assertEquals(early.records, [], "the new records are not visible yet");
    h.clock.now += 5_001;
    const late = await follow(h, early.cursor);
    assertEquals(ids(late.records), [lone.id, inexact.id, ...sameMs.map((p) => p.id).sort()]);
    assertEquals((await follow(h, late.cursor)).records, []);

    const everything = [...feed.records, ...late.records];
    assertEquals(
      ids(everything).sort(),
      ids(await allRecords(h)).sort(),
      "every record exactly once",
    );
    const fromStart = await follow(h, null, 500);
    assertEquals(ids(fromStart.records), ids(everything), "one order for every reader");
  } finally {
    h.close();
  }
});

/** Posts until the answer is not 409, at most `max` times; returns the last answer's status. */
async function deliver(url: string, body: Parameters<typeof postTo>[1], max = 10) {
  for (let i = 0;; i++) {
    const r = await postTo(url, body);
    if (r.status !== 409 || i + 1 >= max) return r.json.status as string;
  }
}

Deno.test("feed: a follower gets every record once while two processes write, late pairs included", async () => {
  const dir = await Deno.makeTempDir();
  const env = {
    KV_PATH: `${dir}/kv.sqlite3`,
    FEED_DELAY_MS: "1500",
    GIVE_UP_AFTER_ATTEMPTS: "2",
  };
  const a = await startServer(env);
  const b = await startServer(env);
  const servers = [a.url, b.url];
  const seen = new Map<string, number>();
  let stop = false;
  // The follower: alternates between the two processes, following the cursor.
  const follower = (async () => {
    let cursor: string | null = null;
    for (let i = 0; !stop; i++) {
      const c: string = cursor ? `&cursor=${cursor}` : "";
      const res = await fetch(`${servers[i % 2]}/api/feed?limit=7${c}`);
      const page = await res.json() as { records: Rec[]; cursor: string };
      assertEquals(res.status, 200);
      cursor = page.cursor;
      for (const r of page.records) {
        const id = String(r.progress_event_id);
        seen.set(id, (seen.get(id) ?? 0) + 1);
      }
      if (page.records.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const exactPairs = (from: number, n: number) =>
    Promise.all(Array.from({ length: n }, async (_, i) => {
      const at = BASE_TIME + (from + i) * 3_000;
      const url = servers[i % 2];
      const who = { user: 100 + ((from + i) % 7), course: 10 + (i % 3) };
      const lesson = await postTo(url, lessonWebhook({ ...who, at, lesson: 1000 + from + i }));
      assertEquals(lesson.status, 200);
      assertEquals(await deliver(url, progressWebhook({ ...who, at })), "collated");
    }));
  try {
    // Phase 1: exact pairs from both processes; lone progresses give up; inexact halves arrive.
    const lone = [1, 2, 3].map((user) => ({ user, at: BASE_TIME + user * 3_000 }));
    const inexact = [4, 5].map((user) => ({ user, at: BASE_TIME + user * 3_000 }));
    const inexactProgress = inexact.map((w) => progressWebhook({ ...w, at: w.at + 150 }));
    await Promise.all([
      exactPairs(0, 30),
      ...lone.map(async (w, i) =>
        assertEquals(await deliver(servers[i % 2], progressWebhook(w)), "unmatched")
      ),
      ...inexact.map(async (w, i) => {
        assertEquals((await postTo(servers[i % 2], inexactProgress[i])).status, 409);
        assertEquals((await postTo(servers[(i + 1) % 2], lessonWebhook(w))).json.status, "stored");
      }),
    ]);
    const follow = async (n: number) => {
      const deadline = Date.now() + 30_000;
      while (seen.size < n) {
        assert(Date.now() < deadline, `the follower saw ${seen.size} of ${n} records`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await follow(30);
    // Phase 2, after the follower has read past them: the lone progresses' late lessons, the
    // inexact pairs (on the progress's last delivery), and more exact pairs meanwhile.
    await Promise.all([
      exactPairs(30, 20),
      ...lone.map(async (w, i) => {
        assertEquals(
          (await postTo(servers[(i + 1) % 2], lessonWebhook(w))).json.status,
          "collated",
        );
      }),
      ...inexactProgress.map(async (p, i) => {
        assertEquals((await postTo(servers[i % 2], p)).json.status, "collated");
      }),
    ]);
    await follow(55);
    // One more delay: nothing else shows up.
    await new Promise((r) => setTimeout(r, 2_000));
    stop = true;
    await follower;
    const records = (await fetch(`${a.url}/api/records?limit=500`).then((r) => r.json()))
      .records as Rec[];
    assertEquals(records.length, 55);
    assertEquals([...seen.keys()].sort(), ids(records).map(String).sort());
    assert([...seen.values()].every((n) => n === 1), "each record exactly once");
  } finally {
    stop = true;
    await follower.catch(() => {});
    await a.close();
    await b.close();
    await Deno.remove(dir, { recursive: true });
  }
});
