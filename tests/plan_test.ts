/**
 * Commit plans (lib/store/plan.ts) as the committer relies on them: keys are told apart by type as
 * Deno KV does (1, 1n, "1", true, bytes), and the size estimates are from above, so a merged commit
 * of any kind of keys and values is never refused by Deno KV for its size.
 */
import { assert, assertEquals } from "./_assert.ts";
import { createCommitter } from "../lib/store/committer.ts";
import { CommitPlan } from "../lib/store/plan.ts";
import { countingKv } from "./_committer.ts";

const PARTS: Deno.KvKeyPart[] = [
  1,
  2,
  1n,
  2n,
  "1",
  true,
  false,
  new Uint8Array([1]),
  new Uint8Array([2]),
];
const sameKeyPart = (a: Deno.KvKeyPart, b: Deno.KvKeyPart) =>
  a === b || (a instanceof Uint8Array && b instanceof Uint8Array && a[0] === b[0]);

Deno.test("plan: keys differing only in the type of a part are different keys", async () => {
  for (const checked of PARTS) {
    for (const written of PARTS) {
      const same = sameKeyPart(checked, written);
      const { kv, real, calls } = await countingKv();
      try {
        const committer = createCommitter(kv);
        const blocker = committer.commit(new CommitPlan().set(["x"], 0));
        const checker = committer.commit(
          new CommitPlan().check({ key: ["k", checked], versionstamp: null }).set(["c"], 1),
        );
        const writer = committer.commit(new CommitPlan().set(["k", written], 1));
        const results = await Promise.all([checker, writer]);
        await blocker;
        assertEquals(results.map((r) => r.ok), [true, true]);
        // The same key: the writer waits for the next commit; another key: one merged commit.
        assertEquals(calls.commit, same ? 3 : 2, `${String(checked)} vs ${String(written)}`);
      } finally {
        real.close();
      }
    }
  }
});

/** Plans of one kind of key or value, enough of them to need several commits. */
const kinds: [string, (p: number) => CommitPlan][] = [
  ["byte-string key parts", (p) => {
    const plan = new CommitPlan();
    for (let m = 0; m < 8; m++) plan.set(["b", p, new Uint8Array(1_000).fill(m)], m);
    return plan;
  }],
  ["number key parts", (p) => {
    const plan = new CommitPlan();
    for (let m = 0; m < 100; m++) {
      plan.set([p, m, ...Array.from({ length: 10 }, (_, i) => i + 0.5)], 0);
    }
    return plan;
  }],
  ["checked byte-string keys", (p) => {
    const plan = new CommitPlan();
    for (let c = 0; c < 8; c++) {
      plan.check({ key: ["c", p, new Uint8Array(1_000).fill(c)], versionstamp: null });
    }
    return plan.set(["c", p], p);
  }],
  ["byte values", (p) => new CommitPlan().set(["v", p], new Uint8Array(60_000))],
  ["UTF-16 string values", (p) => new CommitPlan().set(["s", p], "é€".repeat(15_000))],
  ["sums", (p) => {
    const plan = new CommitPlan();
    for (let m = 0; m < 200; m++) plan.sum(["n", p, m], 1n);
    return plan;
  }],
];

for (const [name, make] of kinds) {
  Deno.test(`plan: merged commits of ${name} are never refused for their size`, async () => {
    const { kv, real, calls } = await countingKv();
    try {
      const committer = createCommitter(kv);
      const blocker = committer.commit(new CommitPlan().set(["x"], 0));
      const results = await Promise.allSettled(
        Array.from({ length: 40 }, (_, p) => committer.commit(make(p))),
      );
      await blocker;
      assertEquals(results.filter((r) => r.status === "rejected"), []);
      assert(results.every((r) => r.status === "fulfilled" && r.value.ok));
      assertEquals(committer.stats.fallbacks, 0, "no merged commit was refused");
      assert(calls.commit > 2, `several commits: ${calls.commit}`);
    } finally {
      real.close();
    }
  });
}

Deno.test("plan: a key or value at the size Deno KV allows, estimated, still merges", async () => {
  // Estimated at exactly 2,048 bytes (the key limit) and 65,536 (the value limit).
  const key = ["k".repeat(2_046)];
  const value = "v".repeat(32_758);
  const atLimit = [
    new CommitPlan().set(key, 1),
    new CommitPlan().check({ key, versionstamp: null }).set(["c"], 1),
    new CommitPlan().set(["v"], value),
  ];
  for (const plan of atLimit) {
    const { kv, real, calls } = await countingKv();
    try {
      const committer = createCommitter(kv);
      const blocker = committer.commit(new CommitPlan().set(["x"], 0));
      const results = await Promise.all([
        committer.commit(plan),
        committer.commit(
          new CommitPlan().set(["other"], 1),
        ),
      ]);
      await blocker;
      assertEquals(results.map((r) => r.ok), [true, true]);
      assertEquals(calls.commit, 2, "merged with the other plan");
    } finally {
      real.close();
    }
  }
});

Deno.test("plan: a checked key over the limit makes its plan fail alone, not the others", async () => {
  const { kv, real, calls } = await countingKv();
  try {
    const committer = createCommitter(kv);
    const blocker = committer.commit(new CommitPlan().set(["x"], 0));
    const huge = new CommitPlan().check({ key: ["k".repeat(3_000)], versionstamp: null }).set(
      ["h"],
      1,
    );
    const results = await Promise.allSettled([
      committer.commit(new CommitPlan().set(["a"], 1)),
      committer.commit(huge),
      committer.commit(new CommitPlan().set(["b"], 1)),
    ]);
    await blocker;
    assertEquals(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
    assertEquals([calls.commit, committer.stats.fallbacks], [3, 0]);
  } finally {
    real.close();
  }
});

Deno.test("plan: after this committer deletes a key, a plan that checks it absent commits", async () => {
  const { kv, real } = await countingKv();
  try {
    await real.set(["k"], "there");
    const committer = createCommitter(kv);
    const blocker = committer.commit(new CommitPlan().set(["x"], 0));
    const del = committer.commit(new CommitPlan().delete(["k"]));
    const absent = committer.commit(
      new CommitPlan().check({ key: ["k"], versionstamp: null }).set(["k"], "mine"),
    );
    const results = await Promise.all([del, absent]);
    await blocker;
    assertEquals(results.map((r) => r.ok), [true, true]);
    assertEquals((await real.get(["k"])).value, "mine");
  } finally {
    real.close();
  }
});

Deno.test("plan: a key over the limit fails its plan alone; a large byte value within it merges", async () => {
  const { kv, real, calls } = await countingKv();
  try {
    const committer = createCommitter(kv);
    const blocker = committer.commit(new CommitPlan().set(["x"], 0));
    const results = await Promise.allSettled([
      committer.commit(new CommitPlan().set(["a"], new Uint8Array(65_000))),
      committer.commit(new CommitPlan().set(["k".repeat(3_000)], 1)),
      committer.commit(new CommitPlan().set(["b"], 1)),
    ]);
    await blocker;
    assertEquals(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
    // blocker; [a b] merged; the key too large alone: no merged commit was refused.
    assertEquals([calls.commit, committer.stats.fallbacks], [3, 0]);
  } finally {
    real.close();
  }
});
