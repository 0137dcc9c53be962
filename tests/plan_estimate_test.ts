/**
 * Commit plans' size estimates (lib/store/plan.ts) against Deno KV itself: whatever Deno KV refuses
 * for its size, the plan's profile flags before it is merged with other requests' plans (so only
 * its own request can fail); and every kind of value Deno KV stores can be planned and committed.
 */
import { assert, assertEquals } from "./_assert.ts";
import { createCommitter } from "../lib/store/committer.ts";
import { ATOMIC_LIMITS } from "../lib/store/limits.ts";
import { CommitPlan } from "../lib/store/plan.ts";

/** Why Deno KV refuses to commit `plan` alone, or `null` if it commits. */
async function refusal(plan: CommitPlan): Promise<string | null> {
  const kv = await Deno.openKv(":memory:");
  try {
    await plan.applyTo(kv.atomic()).commit();
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    kv.close();
  }
}

/** A plan checking `checks` absent keys of 2,000 characters, then writing `values` byte values. */
function heavy(checks: number, values: number, valueBytes: number): CommitPlan {
  const plan = new CommitPlan();
  for (let i = 0; i < checks; i++) {
    plan.check({ key: [String(i).padStart(2_000, "k")], versionstamp: null });
  }
  for (let i = 0; i < values; i++) plan.set(["v", i], new Uint8Array(valueBytes));
  return plan;
}

Deno.test("plan: a key or value Deno KV refuses is flagged as refused", async () => {
  const cases: [string, CommitPlan][] = [
    // Zero bytes are escaped in a key: 1,024 of them take 2,050 bytes.
    ["a key of zero bytes", new CommitPlan().set([new Uint8Array(1_024)], 1)],
    ["a checked key", new CommitPlan().check({ key: ["k".repeat(2_047)], versionstamp: null })],
    ["a byte value", new CommitPlan().set(["v"], new Uint8Array(65_537))],
    // V8 writes a string with a character past Latin-1 as UTF-16: two bytes each.
    ["a UTF-16 string", new CommitPlan().set(["v"], "€".repeat(32_766))],
    ["a Latin-1 string", new CommitPlan().set(["v"], "a".repeat(65_531))],
  ];
  for (const [name, plan] of cases) {
    assert((await refusal(plan)) !== null, `Deno KV refuses ${name}`);
    assert(plan.profile().refused, `${name} is flagged`);
  }
});

Deno.test("plan: checked keys count in a commit's total size, as Deno KV counts them", async () => {
  // Twelve values of 62,000 bytes fit in one commit; checking 40 keys of 2,000 bytes besides does
  // not (checked keys are part of Deno KV's 800 KiB).
  assertEquals(await refusal(heavy(0, 12, 62_000)), null);
  const refused = heavy(40, 12, 62_000);
  const why = await refusal(refused);
  assert(why !== null && /total mutation size/i.test(why), `refused for its size: ${why}`);
  const size = refused.profile().size;
  assert(size.totalBytes > ATOMIC_LIMITS.totalBytes, `estimated over: ${size.totalBytes}`);
  assertEquals([size.checks, size.mutations], [40, 12]);
});

Deno.test("plan: a commit's keys over Deno KV's 80 KiB are estimated over it", async () => {
  const plan = new CommitPlan();
  for (let i = 0; i < 41; i++) plan.set([String(i).padStart(2_000, "k")], i);
  const why = await refusal(plan);
  assert(why !== null && /total key size/i.test(why), `refused for its keys: ${why}`);
  const size = plan.profile().size;
  assert(size.keyBytes > ATOMIC_LIMITS.keyBytes, `estimated over: ${size.keyBytes}`);
  assert(size.totalBytes >= size.keyBytes, "the keys are part of the total");
});

Deno.test("plan: every kind of value Deno KV stores can be planned and committed", async () => {
  const values: unknown[] = [
    12n,
    new Deno.KvU64(7n),
    undefined,
    null,
    new Uint8Array([1, 2, 3]),
    "text",
    { nested: [1, "two"] },
  ];
  const kv = await Deno.openKv(":memory:");
  try {
    const committer = createCommitter(kv);
    const results = await Promise.all(
      values.map((value, i) => committer.commit(new CommitPlan().set(["v", i], value))),
    );
    assertEquals(results.map((r) => r.ok), values.map(() => true));
    const stored = await kv.getMany(values.map((_, i) => ["v", i]));
    assertEquals(stored.map((e) => e.value), values);
    assertEquals(stored.map((e) => e.versionstamp !== null), values.map(() => true));
  } finally {
    kv.close();
  }
});
