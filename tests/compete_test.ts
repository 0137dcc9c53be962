/**
 * Different events competing for one counterpart at the same moment, across two server processes
 * on one KV file: each lesson ends in exactly one record, with the right progress event, and the
 * loser is answered (and listed) as it should be.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook, tempDir } from "./_helpers.ts";
import { postTo, startServer } from "./_server.ts";

type Json = Record<string, unknown>;

async function records(url: string): Promise<Json[]> {
  const res = await fetch(`${url}/api/records?limit=500`);
  return (await res.json()).records;
}

Deno.test("compete: two exact progress events posted to two processes at once take one lesson once", async () => {
  await using dir = await tempDir();
  const env = { KV_PATH: `${dir.path}/kv.sqlite3` };
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const n = 20;
    const lessons = new Map<string, string>(); // lesson id -> user
    const rivals = new Map<string, string[]>(); // user -> its two progress ids
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      const who = { user: 100 + i, at: BASE_TIME + i * 1000 };
      const lesson = lessonWebhook(who);
      lessons.set(lesson.id, String(who.user));
      assertEquals((await postTo(a.url, lesson)).json.status, "stored");
      const p1 = progressWebhook(who);
      const p2 = progressWebhook(who);
      rivals.set(String(who.user), [p1.id, p2.id]);
      const answers = await Promise.all([postTo(a.url, p1), postTo(b.url, p2)]);
      const statuses = answers.map((r) => r.json.status).sort();
      assertEquals(statuses, ["collated", "pending"], JSON.stringify(answers));
    }));
    const got = await records(a.url);
    assertEquals(got.length, n);
    assertEquals(new Set(got.map((r) => r.lesson_event_id)).size, n, "each lesson in one record");
    for (const r of got) {
      const user = lessons.get(r.lesson_event_id as string)!;
      assertEquals(String(r.user_id), user);
      assert(rivals.get(user)!.includes(r.progress_event_id as string), "its own progress");
    }
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("compete: on their last delivery, the closer of two progress events gets the lesson", async () => {
  await using dir = await tempDir();
  // The second delivery is the last: it may pair inexactly, whatever the time.
  const env = { KV_PATH: `${dir.path}/kv.sqlite3`, GIVE_UP_AFTER_ATTEMPTS: "2" };
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const n = 15;
    const closer = new Map<string, string>(); // lesson id -> the closer progress id
    const farther = new Set<string>();
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      const at = BASE_TIME + i * 5000;
      const who = { user: 300 + i };
      const lesson = lessonWebhook({ ...who, at });
      const near = progressWebhook({ ...who, at: at + 5 });
      const far = progressWebhook({ ...who, at: at + 40 });
      closer.set(lesson.id, near.id);
      farther.add(far.id);
      assertEquals((await postTo(a.url, lesson)).json.status, "stored");
      for (const r of await Promise.all([postTo(a.url, near), postTo(b.url, far)])) {
        assertEquals(r.status, 409, "a first delivery never pairs inexactly");
      }
      // Both last deliveries at once, at different processes.
      const last = await Promise.all([postTo(b.url, near), postTo(a.url, far)]);
      assertEquals(last.map((r) => r.json.status), ["collated", "unmatched"]);
    }));
    const got = await records(a.url);
    assertEquals(got.length, n);
    for (const r of got) assertEquals(r.progress_event_id, closer.get(r.lesson_event_id as string));
    const unmatched = (await (await fetch(`${a.url}/api/unmatched`)).json()).events as Json[];
    assertEquals(new Set(unmatched.map((u) => u.event_id)), farther);
  } finally {
    await a.close();
    await b.close();
  }
});
