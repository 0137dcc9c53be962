/**
 * An enrollment summary keeps the latest 24 progress values and 200 lessons (README, "What is
 * kept"; lib/store/limits.ts): a progress event more than 24 events late takes no previous
 * percentage from before them, and a lesson completed again after 200 others is counted again for
 * the lesson's learners. The numbers are written out here, not imported.
 */
import { assertEquals } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { countedLessons } from "../lib/store/enrollments.ts";

const MINUTE = 60_000;

Deno.test("limits: an enrollment keeps its latest 24 progress values for the previous percentage of a late pair", async () => {
  const h = await harness();
  try {
    // 25 lone progress events a minute apart: 1%, 2%, … 25%.
    for (let i = 0; i < 25; i++) {
      const progress = progressWebhook({ at: BASE_TIME + i * MINUTE, percentage: String(i + 1) });
      assertEquals((await h.post(progress)).json.status, "pending");
    }
    /** A pair made now, completed `at`: its record's previous percentage. */
    const latePair = async (at: number) => {
      assertEquals((await h.post(lessonWebhook({ at, lesson: at }))).json.status, "stored");
      const r = await h.post(progressWebhook({ at, percentage: "50" }));
      assertEquals(r.json.status, "collated");
      return (r.json.record as Record<string, unknown>).previous_percentage_completed;
    };
    // The first (1%) was dropped for the 25th: 30 s after it, nothing earlier is known.
    assertEquals(await latePair(BASE_TIME + MINUTE / 2), null);
    // The second (2%) is still kept (and the late pair's own progress, the oldest, was not kept).
    assertEquals(await latePair(BASE_TIME + MINUTE + MINUTE / 2), 2);
  } finally {
    h.close();
  }
});

Deno.test("limits: a lesson completed again after 200 other lessons is counted again, after 199 it is not", () => {
  const others = (n: number) => Array.from({ length: n }, (_, i) => 1000 + i);
  assertEquals(countedLessons([1, ...others(199), 1]).get(1), 1, "remembered among 200");
  assertEquals(countedLessons([1, ...others(200), 1]).get(1), 2, "forgotten at the 201st");
});
