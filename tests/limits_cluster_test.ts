/**
 * The chain of overlapping match windows around an event is read up to 60 s either side (README,
 * "Matching rules"; lib/store/limits.ts): a chain longer than that is decided from what lies within
 * 60 s. The number is written out here, not imported.
 */
import { assertEquals } from "./_assert.ts";
import { harness, lessonWebhook } from "./_helpers.ts";
import { PROGRESS_TOPIC } from "../lib/config.ts";
import { readCluster } from "../lib/store/events.ts";

Deno.test("limits: the chain of windows around an event is read 60 s either side, no further", async () => {
  const h = await harness();
  const at = Date.parse("2026-11-29T11:00:00.000Z");
  try {
    // Lone lessons every 4 s from 68 s before the event to 68 s after, and 1 ms past 60 s either
    // side: one chain of 5 s windows.
    const offsets = Array.from({ length: 35 }, (_, i) => (i - 17) * 4_000);
    offsets.push(-60_001, 60_001);
    for (const [i, d] of offsets.entries()) {
      const r = await h.post(lessonWebhook({ at: at + d, lesson: 1 + i }));
      assertEquals(r.json.status, "stored");
    }
    const place = {
      tenantId: "48213",
      userId: 5000049,
      courseId: 2100013,
      at,
      id: "1",
      topic: PROGRESS_TOPIC,
    } as const;
    const read = (await readCluster(h.kv, place, 5_000)).map((e) => e.value.at - at);
    assertEquals(
      read.sort((a, b) => a - b),
      offsets.filter((d) => Math.abs(d) <= 60_000).sort((a, b) => a - b),
    );
  } finally {
    h.close();
  }
});
