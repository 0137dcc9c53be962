/**
 * What a stored event's writes are kept for, by default (README, "What is kept"; the key table of
 * lib/store/keys.ts): the event and its raw body `RETENTION_DAYS` (30), the index that recognises a
 * redelivery by its id and the learner's index of such ids 30 days longer (60). The numbers are
 * written out here, not imported.
 */
import { assertEquals } from "./_assert.ts";
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
    const res = await app.request("/webhooks/thinkific", await signedInit(lessonWebhook()));
    assertEquals(res.status, 200);
    const kept = new Map<string, number | undefined>();
    for (const m of plans.flatMap((p) => p.mutations)) {
      if (m.type === "set") kept.set(String(m.key[0]), m.expireIn);
    }
    assertEquals(kept.get("events"), 30 * DAY);
    assertEquals(kept.get("event_bodies"), 30 * DAY);
    assertEquals(kept.get("event_ids"), 60 * DAY);
    assertEquals(kept.get("learner_event_ids"), 60 * DAY);
  } finally {
    kv.close();
  }
});
