/**
 * Redeliveries of one pending progress racing at two processes (two apps on one database), then
 * racing its lesson: every delivery is counted once (no lost update of the stored event), and the
 * pair is recorded once.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";

Deno.test("redelivery race: concurrent redeliveries at two processes are each counted, one record", async () => {
  const h = await harness();
  const other = await harness({}, h.kv);
  try {
    const n = 20;
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      const who = { user: 8000 + i, at: BASE_TIME + i };
      const progress = progressWebhook(who);
      const first = await h.post(progress);
      assertEquals([first.status, first.json.attempts], [409, 1]);
      // Four redeliveries at once, two per process: deliveries 2 to 5, each counted once.
      const answers = await Promise.all([h, other, h, other].map((app) => app.post(progress)));
      assertEquals(answers.map((a) => a.status), [409, 409, 409, 409]);
      const attempts = answers.map((a) => a.json.attempts as number).sort((a, b) => a - b);
      assertEquals(attempts, [2, 3, 4, 5], `user ${who.user}`);
      // The lesson and two more redeliveries, at both processes: one record.
      const [l, p1, p2] = await Promise.all([
        other.post(lessonWebhook(who)),
        h.post(progress),
        other.post(progress),
      ]);
      assertEquals(l.status, 200);
      for (const p of [p1, p2]) {
        assert(p.status === 200 || p.status === 409, JSON.stringify(p));
      }
    }));
    const records = (await h.get("/api/records?limit=500")).json.records as {
      progress_event_id: string;
    }[];
    assertEquals(records.length, n);
    assertEquals(new Set(records.map((r) => r.progress_event_id)).size, n);
    assertEquals(((await h.get("/api/unmatched")).json.events as unknown[]).length, 0);
  } finally {
    h.close();
  }
});
