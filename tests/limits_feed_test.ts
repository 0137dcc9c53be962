/**
 * When `/api/feed` serves a record (README, `/api/feed`; lib/store/limits.ts): by default once it is
 * more than `FEED_DELAY_MS` (1 s) old, and the fence behind it moves by at least one second at a
 * time (or `FEED_DELAY_MS`, if shorter). The numbers are written out here, not imported.
 */
import { assertEquals } from "./_assert.ts";
import { harness, lessonWebhook, progressWebhook } from "./_helpers.ts";

/** A harness holding one record, made at its clock's time `made`. */
async function oneRecord(env: Record<string, string> = {}) {
  const h = await harness(env);
  const at = Date.parse("2026-11-29T11:59:00.000Z");
  await h.post(lessonWebhook({ at }));
  assertEquals((await h.post(progressWebhook({ at }))).json.status, "collated");
  return { h, made: h.clock.now };
}

/** How many records a first read of the feed gets at `now`. */
async function feedAt(h: Awaited<ReturnType<typeof harness>>, now: number) {
  h.clock.now = now;
  const r = await h.get("/api/feed");
  assertEquals(r.status, 200);
  return (r.json.records as unknown[]).length;
}

Deno.test("limits: by default the feed serves a record once it is more than 1 s old", async () => {
  for (const [age, served] of [[1000, 0], [1001, 1]]) {
    const { h, made } = await oneRecord();
    try {
      assertEquals(await feedAt(h, made + age), served, `${age} ms old`);
    } finally {
      h.close();
    }
  }
});

Deno.test("limits: the feed's fence moves by at least one second at a time", async () => {
  const { h, made } = await oneRecord({ FEED_DELAY_MS: "5000" });
  try {
    assertEquals(await feedAt(h, made + 5000), 0, "the fence is at the record: not yet");
    assertEquals(await feedAt(h, made + 5999), 0, "999 ms later the fence stays");
    assertEquals(await feedAt(h, made + 6000), 1, "a second later it moves past the record");
  } finally {
    h.close();
  }
});

Deno.test("limits: with FEED_DELAY_MS shorter than a second the fence moves by FEED_DELAY_MS", async () => {
  const { h, made } = await oneRecord({ FEED_DELAY_MS: "100" });
  try {
    assertEquals(await feedAt(h, made + 100), 0, "the fence is at the record: not yet");
    assertEquals(await feedAt(h, made + 199), 0, "99 ms later the fence stays");
    assertEquals(await feedAt(h, made + 200), 1, "100 ms later it moves past the record");
  } finally {
    h.close();
  }
});
