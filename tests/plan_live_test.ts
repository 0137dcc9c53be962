/**
 * A commit's mutations with the dead ones left out (`live` in lib/store/plan.ts): the table of what
 * is kept, a database left exactly as the mutations as written leave it (fast-check, on real
 * `:memory:` databases), and the commits that use it (a plan, a merged commit, a projection batch).
 */
import fc from "fast-check";
import { assert, assertEquals } from "./_assert.ts";
import { CommitPlan, keyId, live } from "../lib/store/plan.ts";
import { createCommitter } from "../lib/store/committer.ts";
import { recordCommits } from "./_committer.ts";

const u64 = (n: bigint) => new Deno.KvU64(n);
const set = (k: string, value: unknown, expireIn?: number): Deno.KvMutation => ({
  type: "set",
  key: [k],
  value,
  expireIn,
});
const del = (k: string): Deno.KvMutation => ({ type: "delete", key: [k] });
const sum = (k: string, n: bigint): Deno.KvMutation => ({ type: "sum", key: [k], value: u64(n) });
const max = (k: string, n: bigint): Deno.KvMutation => ({ type: "max", key: [k], value: u64(n) });

const liveOf = (ms: Deno.KvMutation[]) => live(ms, ms.map((m) => keyId(m.key)));

/** A mutation as text, to compare lists (a sum's value as its number). */
const show = (m: Deno.KvMutation) => {
  const value = "value" in m
    ? (m.value instanceof Deno.KvU64 ? `${m.value.value}n` : JSON.stringify(m.value))
    : "";
  const expire = m.type === "set" && m.expireIn !== undefined ? ` ~${m.expireIn}` : "";
  return `${m.type} ${m.key.join("/")} ${value}${expire}`.trim();
};

Deno.test("live: the mutations kept, as a table", () => {
  const MAX = (1n << 64n) - 1n;
  const table: [string, Deno.KvMutation[], string[]][] = [
    ["nothing", [], []],
    ["one of each key stays", [set("a", 1), sum("b", 2n), del("c")], [
      "set a 1",
      "sum b 2n",
      "delete c",
    ]],
    ["a set then a set: the last", [set("a", 1), set("a", 2, 60_000)], ["set a 2 ~60000"]],
    ["a set then a delete: the delete", [set("a", 1), del("a")], ["delete a"]],
    ["a delete then a set: the set", [del("a"), set("a", 3)], ["set a 3"]],
    ["sums of one key: one sum", [sum("n", 1n), sum("n", 2n), sum("n", 4n)], ["sum n 7n"]],
    ["sums wrap at 2^64", [sum("n", MAX), sum("n", 2n)], ["sum n 1n"]],
    ["a set then a sum: both", [set("n", u64(5n)), sum("n", 1n)], ["set n 5n", "sum n 1n"]],
    ["a sum then a set: both", [sum("n", 1n), set("n", u64(5n))], ["sum n 1n", "set n 5n"]],
    ["a sum after a set is not merged with one before it", [
      sum("n", 1n),
      set("n", u64(5n)),
      sum("n", 2n),
    ], ["sum n 1n", "set n 5n", "sum n 2n"]],
    ["a set after sums replaces nothing", [sum("n", 1n), sum("n", 1n), del("n")], [
      "sum n 2n",
      "delete n",
    ]],
    ["max is left as it is", [max("m", 3n), max("m", 4n), set("m", u64(1n))], [
      "max m 3n",
      "max m 4n",
      "set m 1n",
    ]],
    ["keys apart, in order", [set("a", 1), sum("n", 1n), set("b", 2), sum("n", 1n), set("a", 3)], [
      "sum n 2n",
      "set b 2",
      "set a 3",
    ]],
    ["keys equal only in text are apart", [
      { type: "set", key: [1], value: "number" },
      { type: "set", key: ["1"], value: "string" },
    ], ['set 1 "number"', 'set 1 "string"']],
  ];
  for (const [name, input, expected] of table) {
    assertEquals(liveOf(input).map(show), expected, name);
  }
});

Deno.test("live: the mutations it is given are left as they were", () => {
  const input = [sum("n", 1n), sum("n", 2n), set("a", 1), set("a", 2)];
  const before = input.map(show);
  liveOf(input);
  assertEquals(input.map(show), before);
});

/** Every entry of a database, as text. */
async function dump(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    const v = e.value instanceof Deno.KvU64 ? `${e.value.value}n` : JSON.stringify(e.value);
    out.push(`${e.key.join("/")}=${v}`);
  }
  return out;
}

/** Commits `ms` (all of them, or the live ones) on a database holding `start`. */
async function outcome(start: [string, unknown][], ms: Deno.KvMutation[], coalesce: boolean) {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const [k, v] of start) await kv.set([k], v);
    const op = kv.atomic().mutate(...(coalesce ? liveOf(ms) : ms));
    const result = await op.commit().then((r) => (r.ok ? "ok" : "failed"), () => "threw");
    return { result, entries: await dump(kv) };
  } finally {
    kv.close();
  }
}

Deno.test("live: a database ends exactly as the mutations as written leave it", async () => {
  const key = fc.constantFrom("a", "b", "c");
  const small = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  const mutation: fc.Arbitrary<Deno.KvMutation> = fc.oneof(
    fc.tuple(key, fc.integer({ min: 0, max: 9 })).map(([k, v]) => set(k, v)),
    fc.tuple(key, small).map(([k, n]) => set(k, u64(n))),
    key.map(del),
    fc.tuple(key, small).map(([k, n]) => sum(k, n)),
    fc.tuple(key, small).map(([k, n]) => sum(k, n)),
    fc.tuple(key, small).map(([k, n]) => max(k, n)),
  );
  // What a key holds before: nothing, a counter, or a value a sum cannot add to (the commit fails).
  const start = fc.array(
    fc.tuple(key, fc.oneof(small.map(u64), fc.constant("text"))),
    { maxLength: 3 },
  );
  let fewer = 0;
  await fc.assert(
    fc.asyncProperty(start, fc.array(mutation, { maxLength: 8 }), async (before, ms) => {
      const written = await outcome(before, ms, false);
      const kept = await outcome(before, ms, true);
      // A commit that throws (a sum or max on a value that is no counter, which this project never
      // writes) may leave part of its mutations behind in the local backend: only its failing
      // counts there.
      if (written.result === "threw") assertEquals(kept.result, "threw");
      else assertEquals(kept, written);
      if (liveOf(ms).length < ms.length) fewer++;
    }),
    { numRuns: 300 },
  );
  assert(fewer > 50, `only ${fewer} runs left a mutation out`);
});

Deno.test("live: a plan's commit and a merged commit write a key once", async () => {
  const { kv, commits } = recordCommits(await Deno.openKv(":memory:"));
  try {
    const plan = new CommitPlan().sum(["n"], 1n).sum(["n"], 2n).set(["a"], 1).set(["a"], 2);
    assert((await plan.applyTo(kv.atomic()).commit()).ok);
    assertEquals(commits.at(-1)!.mutations.length, 2);
    assertEquals((await kv.get<Deno.KvU64>(["n"])).value?.value, 3n);
    assertEquals((await kv.get(["a"])).value, 2);

    // Two requests' plans merged by the committer: one name and one counter for both.
    const committer = createCommitter(kv);
    const hold = committer.commit(new CommitPlan().set(["x"], 0));
    const a = committer.commit(new CommitPlan().set(["course"], "Sourdough").sum(["n"], 1n));
    const b = committer.commit(new CommitPlan().set(["course"], "Sourdough 2").sum(["n"], 1n));
    await hold;
    assertEquals((await Promise.all([a, b])).map((r) => r.ok), [true, true]);
    assertEquals(committer.stats.commits, 2);
    assertEquals(commits.at(-1)!.mutations.length, 2);
    assertEquals((await kv.get(["course"])).value, "Sourdough 2");
    assertEquals((await kv.get<Deno.KvU64>(["n"])).value?.value, 5n);
  } finally {
    kv.close();
  }
});
