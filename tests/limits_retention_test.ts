/**
 * What a stored event's writes are kept for, by default (README, "What is kept"; the key table of
 * lib/store/keys.ts): the event and its raw body `RETENTION_DAYS` (30), the index that recognises a
 * redelivery by its id and the learner's index of such ids 30 days longer (60). The numbers are
 * written out here, not imported.
 */
import { assert, assertEquals } from "./_assert.ts";
import { lessonWebhook, SECRET, signedInit } from "./_helpers.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import { createCommitter } from "../lib/store/committer.ts";
import type { CommitPlan } from "../lib/store/plan.ts";

const DAY = 86_400_000;

Deno.test("limits: by default a lone event and its body are kept 30 days, its id 60 days", async () => {
  const kv = await Deno.openKv(":memory:");
  const real = createCommitter(kv);
  const plans: CommitPlan[] = [];
  const committer = { ...real, commit: (p: CommitPlan) => (plans.push(p), real.commit(p)) };
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
  const app = createApp({ kv, config, committer, log: () => {} });
  try {
    const lesson = lessonWebhook();
    const from = Date.now();
    const res = await app.request("/webhooks/thinkific", await signedInit(lesson));
    const to = Date.now();
    assertEquals(res.status, 200);
    const kept = new Map<string, number | undefined>();
    const values = new Map<string, unknown>();
    for (const m of plans.flatMap((p) => p.mutations)) {
      if (m.type === "set") kept.set(String(m.key[0]), m.expireIn);
      if (m.type === "set") values.set(String(m.key[0]), m.value);
    }
    assertEquals(kept.get("events"), 30 * DAY);
    // The body is inside the event's value.
    assertEquals(kept.has("event_bodies"), false);
    assert((values.get("events") as { body?: Uint8Array }).body instanceof Uint8Array);
    assertEquals(kept.get("event_ids"), 60 * DAY);
    // Its enrollment lists it until its id pointer expires (no key in the learner's index).
    assertEquals(kept.has("learner_event_ids"), false);
    const { lone } = values.get("enrollments") as { lone: [string, number][] };
    assertEquals(lone.map(([id]) => id), [lesson.id]);
    assert(lone[0][1] >= from + 60 * DAY && lone[0][1] <= to + 60 * DAY, `until ${lone[0][1]}`);
  } finally {
    kv.close();
  }
});
