/**
 * The commit limits, pinned by their documented values (lib/store/limits.ts): the group committer
 * merges waiting plans into one commit up to Deno KV's 100 checks and 1,000 mutations and at most 64
 * plans; the collator re-reads and retries a commit lost to another writer 25 times, then answers
 * 503. The numbers are written out here, not imported: a test comparing with the constant itself
 * could not notice it change.
 */
import { assert, assertEquals } from "./_assert.ts";
import { dump, lessonWebhook, SECRET, signedInit } from "./_helpers.ts";
import { fresh } from "./_committer.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import { type Committer, createCommitter, type PlanResult } from "../lib/store/committer.ts";
import { CommitPlan } from "../lib/store/plan.ts";

/**
 * Hands `plans` to a fresh committer all at once, behind a first plan that keeps it busy (so they
 * all wait for the next commit), and returns the versionstamp each one committed at.
 */
async function commitTogether(plans: CommitPlan[]) {
  const kv = await Deno.openKv(":memory:");
  try {
    const committer = createCommitter(kv);
    const blocker = committer.commit(fresh(["blocker"], 0));
    const results: PlanResult[] = await Promise.all(plans.map((p) => committer.commit(p)));
    await blocker;
    assert(results.every((r) => r.ok), "every plan committed");
    return {
      stamps: results.map((r) => r.ok ? r.versionstamp : ""),
      fallbacks: committer.stats.fallbacks,
    };
  } finally {
    kv.close();
  }
}

/** A plan that checks `n` absent keys of its own and sets the first one. */
function checking(tag: string, n: number): CommitPlan {
  const plan = new CommitPlan();
  for (let i = 0; i < n; i++) plan.check({ key: ["c", tag, i], versionstamp: null });
  return plan.set(["c", tag, 0], tag);
}

/** A plan that sets `n` keys of its own and checks none. */
function setting(tag: string, n: number): CommitPlan {
  const plan = new CommitPlan();
  for (let i = 0; i < n; i++) plan.set(["m", tag, i], i);
  return plan;
}

Deno.test("limits: plans of 100 checks in all share one commit; a plan with the 101st check waits for the next", async () => {
  const plans = [
    ...Array.from({ length: 20 }, (_, i) => checking(`five${i}`, 5)),
    checking("one", 1),
  ];
  const { stamps, fallbacks } = await commitTogether(plans);
  assertEquals(new Set(stamps.slice(0, 20)).size, 1, "the 20 plans of 5 checks: one commit");
  assert(stamps[20] > stamps[0], "the plan of 1 check: the next commit");
  assertEquals(fallbacks, 0, "no merged commit refused by Deno KV");
});

Deno.test("limits: plans of 1,000 mutations in all share one commit; a plan with the 1,001st waits for the next", async () => {
  const plans = [
    ...Array.from({ length: 10 }, (_, i) => setting(`hundred${i}`, 100)),
    setting("one", 1),
  ];
  const { stamps, fallbacks } = await commitTogether(plans);
  assertEquals(new Set(stamps.slice(0, 10)).size, 1, "the 10 plans of 100 sets: one commit");
  assert(stamps[10] > stamps[0], "the plan of 1 set: the next commit");
  assertEquals(fallbacks, 0, "no merged commit refused by Deno KV");
});

Deno.test("limits: at most 64 plans share one commit", async () => {
  const plans = Array.from({ length: 65 }, (_, i) => fresh(["p", i], i));
  const { stamps } = await commitTogether(plans);
  assertEquals(new Set(stamps.slice(0, 64)).size, 1, "the first 64: one commit");
  assert(stamps[64] > stamps[0], "the 65th: the next commit");
});

/** A committer that loses the first `losses` commits handed to it, then commits for real. */
function losingFirst(real: Committer, losses: number) {
  let commits = 0;
  const committer = {
    stats: real.stats,
    commit(plan: CommitPlan) {
      commits++;
      return commits <= losses ? Promise.resolve({ ok: false as const }) : real.commit(plan);
    },
  };
  return { committer, commits: () => commits };
}

async function deliverLosing(losses: number) {
  const kv = await Deno.openKv(":memory:");
  const losing = losingFirst(createCommitter(kv), losses);
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
  const app = createApp({ kv, config, committer: losing.committer, log: () => {} });
  try {
    const res = await app.request("/webhooks/thinkific", await signedInit(lessonWebhook()));
    return {
      status: res.status,
      json: await res.json(),
      commits: losing.commits(),
      kv: await dump(kv),
    };
  } finally {
    kv.close();
  }
}

Deno.test("limits: a delivery that loses its commit 24 times is stored on the 25th try", async () => {
  const r = await deliverLosing(24);
  assertEquals([r.status, r.json.status, r.commits], [200, "stored", 25]);
  assert(r.kv.length > 0, "stored");
});

Deno.test("limits: a delivery that loses its commit 25 times answers 503 after the 25th try, nothing stored", async () => {
  const r = await deliverLosing(Infinity);
  assertEquals([r.status, r.commits], [503, 25]);
  assertEquals(r.kv, []);
});
