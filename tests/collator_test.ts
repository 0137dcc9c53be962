/**
 * The collator's edges: a delivery that keeps losing its commit to other writers answers 503 with
 * Retry-After (and says why in the log) after MAX_COMMIT_ATTEMPTS tries; a redelivery of an event
 * whose data expired after RETENTION_DAYS (only its id pointer is left) is acknowledged without
 * storing anything again.
 */
import { assertEquals } from "./_assert.ts";
import {
  dump,
  harness,
  lessonWebhook,
  type LogLine,
  progressWebhook,
  SECRET,
  signedInit,
} from "./_helpers.ts";
import { ContentionError } from "../lib/collator.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import type { Committer } from "../lib/store/committer.ts";
import { MAX_COMMIT_ATTEMPTS } from "../lib/store/limits.ts";

for (const warm of [undefined, null]) {
  Deno.test(`collator: a delivery that always loses its commit answers 503 after MAX_COMMIT_ATTEMPTS tries${warm === null ? " (no warm views)" : ""}`, async () => {
    const kv = await Deno.openKv(":memory:");
    let commits = 0;
    const losing = {
      commit: () => {
        commits++;
        return Promise.resolve({ ok: false as const });
      },
      stats: { commits: 0, plans: 0, fallbacks: 0, stale: 0, largestBatch: 0 },
    } as unknown as Committer;
    const logs: LogLine[] = [];
    const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
    const app = createApp({ kv, config, committer: losing, log: (l) => logs.push(l), warm });
    try {
      const lesson = lessonWebhook();
      const res = await app.request("/webhooks/thinkific", await signedInit(lesson));
      assertEquals(res.status, 503);
      assertEquals(res.headers.get("retry-after") !== null, true);
      assertEquals((await res.json()).error, "temporarily unavailable, retry later");
      assertEquals(commits, MAX_COMMIT_ATTEMPTS);
      const failed = logs.find((l) => l.msg === "request failed");
      assertEquals(failed?.error, `event ${lesson.id}: too many concurrent writers`);
      assertEquals(await dump(kv), [], "nothing stored");
    } finally {
      kv.close();
    }
  });
}

Deno.test("collator: a redelivery after the event expired is acknowledged, nothing stored again", async () => {
  const h = await harness();
  try {
    const lesson = lessonWebhook();
    const progress = progressWebhook({ user: 77 });
    assertEquals((await h.post(lesson)).json.status, "stored");
    assertEquals((await h.post(progress)).json.status, "pending");
    // What RETENTION_DAYS leaves: the id pointers (kept 30 days more), nothing else of the events.
    for (const e of await dump(h.kv)) {
      if (e.key[0] !== "event_ids" && e.key[0] !== "enrollments") await h.kv.delete(e.key);
    }
    const before = await dump(h.kv);
    const again = await h.post(lesson);
    assertEquals([again.status, again.json.status], [200, "stored"]);
    const last = await h.post(progress);
    assertEquals([last.status, last.json.status, last.json.attempts], [200, "unmatched", 0]);
    assertEquals(await dump(h.kv), before, "nothing written");
  } finally {
    h.close();
  }
});

Deno.test("collator: redeliveries change nothing once an event is stored, or given up", async () => {
  const h = await harness();
  try {
    const lesson = lessonWebhook();
    assertEquals((await h.post(lesson)).json.status, "stored");
    let before = await dump(h.kv);
    assertEquals((await h.post(lesson)).json.status, "stored");
    assertEquals(await dump(h.kv), before, "a lesson's redelivery writes nothing");

    const progress = progressWebhook({ user: 77 });
    const gaveUp = await h.deliver(progress);
    assertEquals(gaveUp.json.status, "unmatched");
    before = await dump(h.kv);
    const again = await h.post(progress);
    assertEquals([again.status, again.json.status, again.json.attempts], [
      200,
      "unmatched",
      gaveUp.json.attempts,
    ]);
    assertEquals(await dump(h.kv), before, "a given-up progress's redelivery writes nothing");
  } finally {
    h.close();
  }
});

Deno.test("collator: without forwarding, a record gets no outbox entry", async () => {
  const h = await harness();
  try {
    assertEquals((await h.post(lessonWebhook())).json.status, "stored");
    assertEquals((await h.deliver(progressWebhook())).json.status, "collated");
    assertEquals((await dump(h.kv)).filter((e) => String(e.key[0]).startsWith("outbox")), []);
  } finally {
    h.close();
  }
});

Deno.test("collator: too many concurrent writers is a ContentionError, named where it is printed", () => {
  const err = new ContentionError("event 1: too many concurrent writers");
  assertEquals(err instanceof Error, true);
  assertEquals(String(err), "ContentionError: event 1: too many concurrent writers");
});
