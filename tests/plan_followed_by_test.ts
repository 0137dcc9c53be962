/**
 * `CommitPlan.followedBy` (lib/store/plan.ts): a plan decided from the state another leaves,
 * merged after it into one commit. Its checks of keys the first mutates are dropped, checks the
 * first makes already are not repeated, its other checks stay, and its mutations apply after the
 * first's, less the first's writes of keys it sets or deletes: the database ends as after the two
 * commits one after the other.
 */
import { assert, assertEquals } from "./_assert.ts";
import { CommitPlan } from "../lib/store/plan.ts";

Deno.test("plan: followedBy drops the checks of keys the first mutates and the ones it repeats", () => {
  const first = new CommitPlan()
    .check({ key: ["summary"], versionstamp: "01" }, { key: ["fence"], versionstamp: null })
    .set(["summary"], 1)
    .set(["event", "a"], "a")
    .sum(["count"], 1n)
    .set(["pointer", "a"], "a");
  const next = new CommitPlan()
    .check(
      { key: ["summary"], versionstamp: "zz" }, // written by the first
      { key: ["event", "a"], versionstamp: "zz" }, // written by the first
      { key: ["fence"], versionstamp: null }, // the first's own check
      { key: ["fence"], versionstamp: "02" }, // another version: kept, and fails
      { key: ["pointer", "b"], versionstamp: null },
    )
    .set(["summary"], 2)
    .delete(["event", "a"])
    .sum(["count"], 1n)
    .set(["pointer", "b"], "b");
  const merged = first.followedBy(next);
  assertEquals(merged.checks, [
    { key: ["summary"], versionstamp: "01" },
    { key: ["fence"], versionstamp: null },
    { key: ["fence"], versionstamp: "02" },
    { key: ["pointer", "b"], versionstamp: null },
  ]);
  // The first's writes of keys the next sets or deletes are left out; sums add up.
  assertEquals(merged.mutations.map((m) => [m.type, m.key, "value" in m ? m.value : null]), [
    ["sum", ["count"], new Deno.KvU64(1n)],
    ["set", ["pointer", "a"], "a"],
    ["set", ["summary"], 2],
    ["delete", ["event", "a"], null],
    ["sum", ["count"], new Deno.KvU64(1n)],
    ["set", ["pointer", "b"], "b"],
  ]);
  assertEquals(first.checks.length, 2, "the plans merged are left as they were");
  assertEquals(next.checks.length, 5);
  assertEquals([first.mutations.length, next.mutations.length], [4, 4]);
});

Deno.test("plan: a merged commit leaves what the two commits leave one after the other", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const first = new CommitPlan().check({ key: ["n"], versionstamp: null }).set(["n"], 1)
      .set(["a"], "first");
    // Decided after the first: it checks ["n"] at the version the first would leave.
    const next = new CommitPlan().check({ key: ["n"], versionstamp: "later" }).set(["n"], 2)
      .delete(["a"]).set(["b"], "next");
    const res = await first.followedBy(next).applyTo(kv.atomic()).commit();
    assert(res.ok);
    assertEquals((await kv.get(["n"])).value, 2);
    assertEquals((await kv.get(["a"])).value, null);
    assertEquals((await kv.get(["b"])).value, "next");
    // A check of its own that no longer holds fails the merged commit.
    const stale = new CommitPlan().check({ key: ["b"], versionstamp: null }).set(["c"], 1);
    const failed = await new CommitPlan().set(["d"], 1).followedBy(stale).applyTo(kv.atomic())
      .commit();
    assertEquals(failed.ok, false);
    assertEquals((await kv.get(["d"])).value, null, "nothing of it went in");
  } finally {
    kv.close();
  }
});

/** The same checks and mutations as `plan`, in a plan built anew (no key id computed yet). */
function rebuilt(plan: CommitPlan): CommitPlan {
  const fresh = new CommitPlan().check(...plan.checks);
  fresh.mutations.push(...plan.mutations);
  return fresh;
}

Deno.test("plan: a merged plan's key ids are its own entries' (chained, profiled before, or pushed to)", () => {
  const first = new CommitPlan()
    .check({ key: ["summary"], versionstamp: "01" }, { key: ["fence"], versionstamp: null })
    .set(["summary"], 1).set(["event", "a"], "a").sum(["count"], 1n).set(["pointer", "a"], "a");
  const second = new CommitPlan()
    .check({ key: ["summary"], versionstamp: "02" }, { key: ["pointer", "b"], versionstamp: null })
    .set(["summary"], 2).delete(["event", "a"]).set(["pointer", "b"], "b");
  const third = new CommitPlan()
    .check({ key: ["pointer", "c"], versionstamp: null }, { key: ["fence"], versionstamp: "03" })
    .set(["event", "c"], "c").set(["pointer", "a"], "again").set(["summary"], 3);
  first.profile(); // ids computed before the merge are reused, and must stay in step
  const once = first.followedBy(second);
  const twice = once.followedBy(third);
  for (const [name, plan] of [["once", once], ["twice", twice]] as const) {
    assertEquals(plan.profile(), rebuilt(plan).profile(), name);
  }
  // The third's checks of keys the merge mutates are dropped by id, as a plan built anew would.
  assertEquals(twice.checks.map((c) => c.key), [
    ["summary"],
    ["fence"],
    ["pointer", "b"],
    ["pointer", "c"],
    ["fence"],
  ]);
  // Entries pushed onto a profiled plan get their ids too.
  twice.checks.push({ key: ["late"], versionstamp: null });
  twice.mutations.push({ type: "delete", key: ["late", "m"] });
  assertEquals(twice.profile(), rebuilt(twice).profile(), "pushed after a profile");
});
