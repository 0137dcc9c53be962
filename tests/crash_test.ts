/**
 * kill -9 mid-load: the server is killed while signed deliveries are in flight, restarted on the
 * same KV file and port, and the senders' retries finish the job. No pair lost, none twice.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook, type Webhook } from "./_helpers.ts";
import { freePort, postTo, startServer } from "./_server.ts";

/** Posts until a 2xx, retrying 409s, 503s and refused connections, like Thinkific. */
async function deliverUntilAccepted(
  url: () => string,
  body: Webhook,
  stop: { deadline: number; refused: number },
) {
  for (let attempt = 1;; attempt++) {
    try {
      const r = await postTo(url(), body);
      assert(r.status < 500 || r.status === 503, `status ${r.status}`);
      if (r.status < 300) return r.json;
    } catch (err) {
      if (err instanceof Deno.errors.ConnectionRefused || err instanceof TypeError) {
        stop.refused++; // the server is down: retry
      } else throw err;
    }
    if (Date.now() > stop.deadline) throw new Error(`gave up on ${body.id} after ${attempt}`);
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 30 * Math.min(attempt, 10)));
  }
}

Deno.test("crash: kill -9 mid-load, restart on the same KV file, retries finish the job", async () => {
  const dir = await Deno.makeTempDir();
  const env = { KV_PATH: `${dir}/kv.sqlite3`, GIVE_UP_AFTER_ATTEMPTS: "1000" };
  const port = freePort();
  let server = await startServer(env, port);
  const stop = { deadline: Date.now() + 60_000, refused: 0 };
  try {
    const work = Array.from({ length: 80 }, (_, i) => {
      const at = BASE_TIME + i * 3_000;
      const who = { user: 1 + (i % 7), course: 1 + (i % 2) };
      return {
        lesson: lessonWebhook({ ...who, at, lesson: 500 + i }),
        progress: progressWebhook({ ...who, at, percentage: String(i % 100) }),
      };
    });
    let sent = 0;
    const load = Promise.all(
      work.flatMap(({ lesson, progress }) => [lesson, progress]).map(async (body, i) => {
        await new Promise((r) => setTimeout(r, i * 3)); // spread over about half a second
        sent++;
        return deliverUntilAccepted(() => server.url, body, stop);
      }),
    );
    while (sent < 60) await new Promise((r) => setTimeout(r, 5));
    await server.crash();
    await new Promise((r) => setTimeout(r, 200));
    server = await startServer(env, port);
    await load;
    assert(stop.refused > 0, "the crash happened while deliveries were in flight");

    const res = await fetch(`${server.url}/api/records?limit=500`);
    const { records } = await res.json();
    assertEquals(records.length, work.length, "every pair recorded exactly once");
    const want = new Map(work.map(({ lesson, progress }) => [progress.id, lesson.id]));
    for (const r of records) assertEquals(r.lesson_event_id, want.get(r.progress_event_id));
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
