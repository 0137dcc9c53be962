/**
 * A listing's page holds 100 items unless `limit` says otherwise (README, `/api/records`: `limit`
 * 1–500 (100)). The number is written out here, not imported.
 */
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";

Deno.test("limits: a page of /api/records holds 100 records by default, then a cursor to the 101st", async () => {
  const h = await harness();
  try {
    for (let i = 0; i < 101; i++) {
      const at = BASE_TIME + i * 60_000;
      await h.post(lessonWebhook({ at, lesson: 100 + i }));
      assertEquals((await h.post(progressWebhook({ at }))).json.status, "collated");
    }
    const first = await h.get("/api/records");
    assertEquals((first.json.records as unknown[]).length, 100);
    const next = await h.get(`/api/records?cursor=${first.json.cursor}`);
    assertEquals((next.json.records as unknown[]).length, 1);
  } finally {
    h.close();
  }
});
