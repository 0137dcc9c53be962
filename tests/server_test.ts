/**
 * Over real ports and real files: the service as `deno task start` runs it, and several instances
 * sharing one KV database.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  BASE_TIME,
  harness,
  lessonWebhook,
  progressWebhook,
  tempDir,
  type Webhook,
} from "./_helpers.ts";
import { postTo, startServer } from "./_server.ts";

Deno.test("server: deno task start serves webhooks and records on a real port", async () => {
  await using dir = await tempDir();
  const server = await startServer({ KV_PATH: `${dir.path}/kv.sqlite3`, API_TOKEN: "token-token" });
  try {
    const lesson = lessonWebhook();
    const progress = progressWebhook();
    assertEquals((await postTo(server.url, progress)).status, 409);
    assertEquals((await postTo(server.url, lesson)).json.status, "collated");
    const res = await fetch(`${server.url}/api/records`, {
      headers: { authorization: "Bearer token-token" },
    });
    const { records } = await res.json();
    assertEquals(records.length, 1);
    assertEquals(records[0].lesson_event_id, lesson.id);
    const log = server.output.join("");
    assert(log.includes('"msg":"webhook"'), log);
    assert(!log.includes("ada@example.com"), "no email in logs");
  } finally {
    await server.close();
  }
});

/** `n` true pairs, 0–3 ms apart, a few seconds apart from each other, across users and courses. */
function pairs(n: number): { lesson: Webhook; progress: Webhook }[] {
  return Array.from({ length: n }, (_, i) => {
    const who = { user: 1 + (i % 5), course: 10 + (i % 3) };
    const at = BASE_TIME + i * 2_000;
    return {
      lesson: lessonWebhook({ ...who, at, lesson: 1000 + i }),
      progress: progressWebhook({ ...who, at: at + (i % 4), percentage: String(i % 100) }),
    };
  });
}

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

Deno.test("server: two app instances sharing one KV database write one record per pair", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/shared.sqlite3`;
  await using kvA = await Deno.openKv(path);
  await using kvB = await Deno.openKv(path);
  const a = await harness({}, kvA);
  const b = await harness({}, kvB);
  {
    const work = pairs(40);
    // Every half delivered three times, to either instance, all at once.
    const deliveries = shuffle(
      work.flatMap((
        { lesson, progress },
      ) => [lesson, lesson, lesson, progress, progress, progress]),
    );
    // Every request settles before any assertion, so none is in flight when the handles close.
    const answers = await settled(deliveries.map((body, i) => (i % 2 ? a : b).post(body)));
    for (const r of answers) assert(r.status < 500, JSON.stringify(r.json));
    // Then Thinkific's retries of whatever is still pending.
    await settled(work.map(({ progress }, i) => (i % 2 ? b : a).deliver(progress)));

    const records = (await a.get("/api/records?limit=500")).json.records as Record<
      string,
      unknown
    >[];
    assertEquals(records.length, work.length);
    const want = new Map(work.map(({ lesson, progress }) => [progress.id, lesson.id]));
    for (const r of records) {
      assertEquals(r.lesson_event_id, want.get(r.progress_event_id as string));
    }
  }
});

/** Like `Promise.all`, but waits for every promise before throwing the first failure. */
async function settled<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

for (const how of ["run", "serve-parallel"] as const) {
  Deno.test(`server: two server processes (${how}) on one KV file under duplicated concurrent load`, async () => {
    await using dir = await tempDir();
    const env = { KV_PATH: `${dir.path}/kv.sqlite3`, DENO_JOBS: "2" };
    const one = await startServer(env, undefined, how);
    const two = await startServer(env, undefined, how);
    try {
      const work = pairs(30);
      const deliveries = shuffle(
        work.flatMap(({ lesson, progress }) => [lesson, progress, lesson, progress]),
      );
      const answers = await Promise.all(
        deliveries.map((body, i) => postTo(i % 2 ? one.url : two.url, body)),
      );
      for (const r of answers) assert(r.status < 500, JSON.stringify(r.json));
      for (const [i, { progress }] of work.entries()) {
        for (let attempt = 0;; attempt++) {
          const r = await postTo(i % 2 ? one.url : two.url, progress);
          if (r.status !== 409) {
            assertEquals(r.json.status, "collated");
            break;
          }
          assert(attempt < 10);
        }
      }
      const res = await fetch(`${two.url}/api/records?limit=500`);
      const { records } = await res.json();
      assertEquals(records.length, work.length);
      const ids = records.flatMap((
        r: Record<string, string>,
      ) => [r.progress_event_id, r.lesson_event_id]);
      assertEquals(new Set(ids).size, ids.length);
    } finally {
      await one.close();
      await two.close();
    }
  });
}
