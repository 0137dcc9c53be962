/**
 * What `createApp` (lib/http/app.ts) builds from the configuration: one group committer that
 * merges concurrent deliveries into shared commits, and `COMMIT_BATCH_MAX=1` turning that off.
 */
import { assert, assertEquals } from "./_assert.ts";
import { harness, lessonWebhook } from "./_helpers.ts";
import { countingKv } from "./_committer.ts";

/** Posts `n` lessons of different learners at once; resolves with the commits they took. */
async function concurrentLessons(env: Record<string, string>, n: number): Promise<number> {
  const { kv, real, calls } = await countingKv();
  const h = await harness(env, kv);
  try {
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) => h.post(lessonWebhook({ user: 100 + i }))),
    );
    assertEquals(answers.map((a) => a.json.status), Array(n).fill("stored"));
    return calls.commit;
  } finally {
    real.close();
  }
}

Deno.test("app: concurrent deliveries share commits; COMMIT_BATCH_MAX=1 gives each its own", async () => {
  const shared = await concurrentLessons({}, 8);
  assert(shared < 8, `8 lessons at once took ${shared} commits`);
  assertEquals(await concurrentLessons({ COMMIT_BATCH_MAX: "1" }, 8), 8);
});
