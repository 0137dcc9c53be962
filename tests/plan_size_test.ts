/**
 * The size estimates of commit plans (lib/store/plan.ts): keys by their UTF-8 bytes, values by a
 * walk at two bytes a character, summed by `profile()`, since both the committer
 * and the projector cut their commits by them.
 */
import { assertEquals } from "./_assert.ts";
import { CommitPlan, fitsWithin, grow, keyBytes, valueBytes } from "../lib/store/plan.ts";

Deno.test("plan sizes: key parts count their UTF-8 bytes, two more each", () => {
  assertEquals(keyBytes(["abc"]), 5);
  assertEquals(keyBytes(["\u007f"]), 3, "DEL is still ASCII: one byte");
  assertEquals(keyBytes(["\u0080"]), 4, "the first non-ASCII character: two bytes");
  assertEquals(keyBytes(["é"]), 4);
  assertEquals(keyBytes(["aé"]), 5);
  assertEquals(keyBytes(["éa"]), 5);
  assertEquals(keyBytes(["日本"]), 8);
  assertEquals(keyBytes([""]), 2);
  assertEquals(keyBytes([42]), 10);
  assertEquals(keyBytes([new Uint8Array(3)]), 8);
  assertEquals(keyBytes(["ab", 1, "é"]), 4 + 10 + 4);
});

Deno.test("plan sizes: values are walked, two bytes a character, a tag and a length each", () => {
  assertEquals(valueBytes("abc"), 2 * 3 + 4 + 16);
  assertEquals(valueBytes(""), 4 + 16);
  assertEquals(valueBytes(7), 10 + 16);
  assertEquals(valueBytes(null), 2 + 16);
  assertEquals(valueBytes(true), 4 + 16);
  assertEquals(valueBytes(undefined), 4 + 16);
  assertEquals(valueBytes(new Uint8Array(100)), 116);
  assertEquals(valueBytes(new Deno.KvU64(5n)), 16);
  assertEquals(valueBytes(5n), 16);
  // An object: 8, each key 2 a character and 6, each value as above.
  assertEquals(valueBytes({ a: "xy" }), 8 + (2 + 6) + (4 + 4) + 16);
  assertEquals(valueBytes({ ab: 1, c: null }), 8 + (4 + 6) + 10 + (2 + 6) + 2 + 16);
  assertEquals(valueBytes([1, "a"]), 8 + 10 + (2 + 4) + 16);
  assertEquals(valueBytes([]), 8 + 16);
  assertEquals(valueBytes({ b: new Uint8Array(5) }), 8 + (2 + 6) + (5 + 16) + 16);
  assertEquals(valueBytes({ n: { m: [true] } }), 8 + (2 + 6) + 8 + (2 + 6) + 8 + 4 + 16);
});

Deno.test("plan sizes: profile() sums its keys' and values' bytes", () => {
  const plan = new CommitPlan()
    .check({ key: ["ids", "é1"], versionstamp: null })
    .set(["events", "t", 1, 2], { id: "x", n: 3, body: new Uint8Array(40) })
    .sum(["n", 1], 2n)
    .delete(["gone", "k"])
    .set(["s"], "text");
  const size = plan.profile().size;
  assertEquals([size.checks, size.mutations], [1, 4]);
  const keys = keyBytes(["ids", "é1"]) + keyBytes(["events", "t", 1, 2]) + keyBytes(["n", 1]) +
    keyBytes(["gone", "k"]) + keyBytes(["s"]);
  assertEquals(size.keyBytes, keys);
  const values = valueBytes({ id: "x", n: 3, body: new Uint8Array(40) }) +
    valueBytes(new Deno.KvU64(2n)) + valueBytes("text");
  assertEquals(size.totalBytes, keys - keyBytes(["ids", "é1"]) + values + keys);
  assertEquals(new CommitPlan().profile().size, {
    checks: 0,
    mutations: 0,
    keyBytes: 0,
    totalBytes: 0,
  });
});

Deno.test("plan sizes: a commit takes what fits within 100 checks, 1,000 mutations, 80 and 800 KiB", () => {
  const zero = { checks: 0, mutations: 0, keyBytes: 0, totalBytes: 0 };
  const at = (o: Partial<typeof zero>) => ({ ...zero, ...o });
  assertEquals(fitsWithin(at({ checks: 99 }), at({ checks: 1 })), true);
  assertEquals(fitsWithin(at({ checks: 100 }), at({ checks: 1 })), false);
  assertEquals(fitsWithin(at({ mutations: 999 }), at({ mutations: 1 })), true);
  assertEquals(fitsWithin(at({ mutations: 1000 }), at({ mutations: 1 })), false);
  assertEquals(fitsWithin(at({ keyBytes: 80 * 1024 - 1 }), at({ keyBytes: 1 })), true);
  assertEquals(fitsWithin(at({ keyBytes: 80 * 1024 }), at({ keyBytes: 1 })), false);
  assertEquals(fitsWithin(at({ totalBytes: 800 * 1024 - 1 }), at({ totalBytes: 1 })), true);
  assertEquals(fitsWithin(at({ totalBytes: 800 * 1024 }), at({ totalBytes: 1 })), false);
  const total = at({ checks: 1, mutations: 2, keyBytes: 3, totalBytes: 4 });
  grow(total, at({ checks: 10, mutations: 20, keyBytes: 30, totalBytes: 40 }));
  assertEquals(total, { checks: 11, mutations: 22, keyBytes: 33, totalBytes: 44 });
});
