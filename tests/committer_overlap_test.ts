/**
 * The group committer on a slow database: commits in flight side by side (at most `maxInFlight`,
 * paced over the time one takes, by a timer when nothing else starts them), never one checking a
 * key the other mutates, and one at a time on a fast database.
 */
import { assert, assertEquals } from "./_assert.ts";
import { createCommitter } from "../lib/store/committer.ts";
import { CommitPlan } from "../lib/store/plan.ts";
import { fresh, gatedKv, withAtomic } from "./_committer.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { COMMIT_OVERLAP_AFTER_MS, MAX_COMMITS_IN_FLIGHT } from "../lib/store/limits.ts";

/** A committer on a gated in-memory database, with a clock the test moves. */
async function setup(options: { maxInFlight?: number; overlapAfterMs?: number } = {}) {
  const real = await Deno.openKv(":memory:");
  const gate = gatedKv(real);
  const clock = { t: 0 };
  const committer = createCommitter(gate.kv, { ...options, now: () => clock.t });
  const settle = () => new Promise((r) => setTimeout(r, 0));
  /** Real time for the pacer's timer (at most 40 / 4 ms here) to fire. */
  const pacerFires = () => new Promise((r) => setTimeout(r, 30));
  /** `n` lone commits, each taking `ms` by the clock. */
  const history = async (n: number, ms: number) => {
    for (let i = 0; i < n; i++) {
      const p = committer.commit(fresh(["warm", ms, i], i));
      await settle();
      clock.t += ms;
      await gate.release();
      assert((await p).ok);
    }
  };
  /** Two lone plans setting `x` and `y`, handed over `ms` apart by the clock. */
  const twoApart = async (ms: number, x: string, y: string) => {
    const first = committer.commit(fresh([x], 1));
    await settle();
    clock.t += ms;
    const second = committer.commit(fresh([y], 1));
    await settle();
    return [first, second];
  };
  /**
   * After 32 commits of 40 ms each (a slow database), `plan` handed over and in flight for 100 ms
   * by the clock: its result, in an array so that awaiting this does not wait for the commit.
   */
  const slowAndInFlight = async (plan: CommitPlan) => {
    await history(32, 40);
    const result = committer.commit(plan);
    await settle();
    clock.t += 100;
    return [result];
  };
  return {
    real,
    gate,
    clock,
    committer,
    settle,
    pacerFires,
    history,
    twoApart,
    slowAndInFlight,
    [Symbol.dispose]: () => real.close(),
  };
}

Deno.test("committer: on a slow database, commits go side by side, paced, at most maxInFlight", async () => {
  using s = await setup({
    maxInFlight: 3,
    overlapAfterMs: 10,
  });
  const { gate, clock, committer, settle, history } = s;
  await history(32, 21); // the fastest of the last 32 commits took 21 ms
  const a = committer.commit(fresh(["a"], 1));
  const b = committer.commit(fresh(["b"], 1));
  await settle();
  assertEquals(gate.inFlight.length, 1); // b waits: the newest commit started 0 ms ago
  clock.t += 6; // 21 / 3 = 7 ms between starts
  const c = committer.commit(fresh(["c"], 1));
  await settle();
  assertEquals(gate.inFlight.length, 1);
  clock.t += 1;
  const d = committer.commit(fresh(["d"], 1));
  await settle();
  assertEquals(gate.inFlight.length, 2);
  assertEquals(gate.inFlight[1].keys, [["b"], ["c"], ["d"]]); // what waited, in one commit
  clock.t += 7;
  const e = committer.commit(fresh(["e"], 1));
  await settle();
  assertEquals(gate.inFlight.length, 3);
  clock.t += 7;
  const f = committer.commit(fresh(["f"], 1));
  await settle();
  assertEquals(gate.inFlight.length, 3); // at most 3
  while (gate.inFlight.length > 0) await gate.release();
  for (const p of [a, b, c, d, e, f]) assert((await p).ok);
  for (const k of ["a", "b", "c", "d", "e", "f"]) assertEquals((await s.real.get([k])).value, 1);
});

Deno.test("committer: on a fast database, one commit at a time", async () => {
  using s = await setup({
    maxInFlight: 3,
    overlapAfterMs: 10,
  });
  const { gate, history } = s;
  // 31 slow commits and one of 9 ms: the fastest of the last 32 is under 10 ms.
  await history(31, 50);
  await history(1, 9);
  const [a, b] = await s.twoApart(1000, "a", "b");
  assertEquals(gate.inFlight.length, 1);
  await gate.release();
  assertEquals(gate.inFlight.length, 1); // b starts when a has ended
  await gate.release();
  assert((await a).ok && (await b).ok);
});

Deno.test("committer: the first 31 commits, however slow, go one at a time", async () => {
  using s = await setup({
    maxInFlight: 3,
    overlapAfterMs: 10,
  });
  const { gate, clock, history } = s;
  await history(31, 50);
  const [a, b] = await s.twoApart(1000, "a", "b");
  assertEquals(gate.inFlight.length, 1);
  await gate.release();
  clock.t += 50;
  await gate.release();
  assert((await a).ok && (await b).ok);
  // The 32nd has ended: the fastest took 50 ms, so the next commits overlap.
  const [c, d] = await s.twoApart(17, "c", "d");
  assertEquals(gate.inFlight.length, 2);
  await gate.release();
  await gate.release();
  assert((await c).ok && (await d).ok);
});

Deno.test("committer: a plan checking a key a commit in flight mutates waits for it; others go by", async () => {
  using s = await setup({ maxInFlight: 4, overlapAfterMs: 10 });
  const { gate, clock, committer, settle, pacerFires } = s;
  const [a] = await s.slowAndInFlight(new CommitPlan().set(["k"], "a").set(["own", "a"], 1));
  // b checks ["k"] absent: it waits for a. c only sets ["k"] too: it goes beside a. d touches
  // nothing of a's: it goes too, once paced (40 / 4 ms after c).
  const b = committer.commit(fresh(["k"], "b"));
  const c = committer.commit(new CommitPlan().set(["k"], "c"));
  const d = committer.commit(fresh(["d"], 1));
  await settle();
  assertEquals(gate.inFlight.map((x) => x.keys), [[["k"], ["own", "a"]], [["k"]]]);
  clock.t += 10;
  await pacerFires();
  assertEquals(gate.inFlight.map((x) => x.keys), [[["k"], ["own", "a"]], [["k"]], [["d"]]]);
  await gate.release(); // a lands; b still waits for c, which sets ["k"] too
  await gate.release(); // c lands: b, handed over before, fails unsent once paced
  assertEquals((await s.real.get(["k"])).value, "c"); // the database's order: c landed last
  clock.t += 10;
  await pacerFires();
  assertEquals((await b).ok, false);
  await gate.release();
  assert((await a).ok && (await c).ok && (await d).ok);
  assertEquals(gate.inFlight.length, 0);
});

Deno.test("committer: two plans setting one key go side by side; the one landing last stays", async () => {
  using s = await setup({ maxInFlight: 4, overlapAfterMs: 10 });
  const { gate, clock, committer, settle } = s;
  const [a] = await s.slowAndInFlight(new CommitPlan().set(["name"], "a"));
  const b = committer.commit(new CommitPlan().set(["name"], "b"));
  await settle();
  assertEquals(gate.inFlight.length, 2);
  // Released in the order they started: b lands last. A third, paced after b, lands after both.
  clock.t += 10;
  const c = committer.commit(new CommitPlan().set(["name"], "c"));
  await settle();
  assertEquals(gate.inFlight.length, 3);
  await gate.release();
  await gate.release();
  assertEquals((await s.real.get(["name"])).value, "b");
  await gate.release();
  assert((await a).ok && (await b).ok && (await c).ok);
  assertEquals((await s.real.get(["name"])).value, "c");
});

Deno.test("committer: a plan held back by the pace starts when it allows, with nothing arriving", async () => {
  using s = await setup({ maxInFlight: 4, overlapAfterMs: 10 });
  const { gate, clock, committer, settle, history, pacerFires } = s;
  await history(32, 40); // 40 / 4: a commit starts at least 10 ms after the one before
  const a = committer.commit(fresh(["a"], 1));
  const b = committer.commit(fresh(["b"], 1));
  await settle();
  await pacerFires(); // the pacer fires, but by the committer's clock no time has passed
  assertEquals(gate.inFlight.map((x) => x.keys), [[["a"]]]);
  clock.t += 10;
  await pacerFires(); // no plan arrives, no commit ends: the pacer starts b
  assertEquals(gate.inFlight.map((x) => x.keys), [[["a"]], [["b"]]]);
  while (gate.inFlight.length > 0) await gate.release();
  assert((await a).ok && (await b).ok);
});

Deno.test("committer: a plan that mutates a key a commit in flight checks waits for it", async () => {
  using s = await setup({ maxInFlight: 4, overlapAfterMs: 10 });
  const { gate, committer, settle } = s;
  const [a] = await s.slowAndInFlight(fresh(["k"], "a"));
  const b = committer.commit(new CommitPlan().delete(["k"]));
  // Checks of one key at one version by both do not hold a plan back.
  const c = committer.commit(new CommitPlan().check({ key: ["k"], versionstamp: null }));
  await settle();
  assertEquals(gate.inFlight.length, 1);
  await gate.release(); // a lands, then b goes alone: c checks the key b deletes
  assertEquals(gate.inFlight.map((x) => x.keys), [[["k"]]]);
  await gate.release(); // b lands: c, which found ["k"] absent, finds it so again
  assertEquals(gate.inFlight.map((x) => x.keys), [[]]);
  await gate.release();
  assert((await a).ok && (await b).ok && (await c).ok);
  assertEquals((await s.real.get(["k"])).value, null);
});

Deno.test("committer: maxInFlight 1 keeps one commit in flight on a slow database", async () => {
  using s = await setup({ maxInFlight: 1 });
  const { gate, history } = s;
  await history(32, 500);
  const [a, b] = await s.twoApart(1000, "a", "b");
  assertEquals(gate.inFlight.length, 1);
  await gate.release();
  await gate.release();
  assert((await a).ok && (await b).ok);
});

Deno.test("committer: by default, up to 16 commits in flight once the fastest took 10 ms", () => {
  assertEquals([MAX_COMMITS_IN_FLIGHT, COMMIT_OVERLAP_AFTER_MS], [16, 10]);
});

Deno.test("committer: overlapAfterMs is the threshold, inclusive", async () => {
  for (const [ms, threshold, overlaps] of [[21, 30, false], [10, 10, true]] as const) {
    using s = await setup({ maxInFlight: 4, overlapAfterMs: threshold });
    const { gate, history } = s;
    await history(32, ms);
    const [a, b] = await s.twoApart(100, "a", "b");
    assertEquals(gate.inFlight.length, overlaps ? 2 : 1, `${ms} ms against ${threshold}`);
    while (gate.inFlight.length > 0) await gate.release();
    assert((await a).ok && (await b).ok);
  }
});

Deno.test("committer: a plan that mutates a key a commit in flight only checks waits for it", async () => {
  using s = await setup({ maxInFlight: 4, overlapAfterMs: 10 });
  const { gate, committer, settle } = s;
  const [a] = await s.slowAndInFlight(
    new CommitPlan().check({ key: ["k"], versionstamp: null }).set(["own"], 1),
  );
  const b = committer.commit(new CommitPlan().set(["k"], "b"));
  await settle();
  assertEquals(gate.inFlight.map((x) => x.keys), [[["own"]]]);
  await gate.release();
  assertEquals(gate.inFlight.map((x) => x.keys), [[["k"]]]);
  await gate.release();
  assert((await a).ok && (await b).ok);
});

Deno.test("committer: plans answered without a commit do not count as a fast commit", async () => {
  using s = await setup({ maxInFlight: 4, overlapAfterMs: 10 });
  const { gate, committer, settle } = s;
  const [a] = await s.slowAndInFlight(fresh(["k"], "a"));
  const late = committer.commit(fresh(["k"], "late")); // waits for a, then fails unsent
  await settle();
  await gate.release();
  assertEquals((await late).ok, false);
  assert((await a).ok);
  // Still a slow database: the next two commits go side by side.
  const [c, d] = await s.twoApart(100, "c", "d");
  assertEquals(gate.inFlight.length, 2);
  while (gate.inFlight.length > 0) await gate.release();
  assert((await c).ok && (await d).ok);
});

Deno.test("committer: with its own clock, on a database 12 ms away, commits overlap", async () => {
  const real = await Deno.openKv(":memory:");
  const seen = { now: 0, max: 0 };
  const slow = instrumentKv(real, { before() {}, latency: () => 12 });
  // instrumentKv's operations are proxies themselves: wrapped by a proxy, not assigned to.
  const counting = withAtomic(slow, (op) => {
    const wrapped: Deno.AtomicOperation = new Proxy(op, {
      get(o, p) {
        if (p === "commit") {
          return async () => {
            seen.max = Math.max(seen.max, ++seen.now);
            try {
              return await o.commit();
            } finally {
              seen.now--;
            }
          };
        }
        const v = Reflect.get(o, p, o);
        if (typeof v !== "function") return v;
        return (...args: unknown[]) => {
          const r = v.apply(o, args);
          return r === o ? wrapped : r;
        };
      },
    });
    return wrapped;
  });
  try {
    const committer = createCommitter(counting);
    for (let i = 0; i < 32; i++) assert((await committer.commit(fresh(["w", i], i))).ok);
    assertEquals(seen.max, 1);
    const plans = [];
    for (let i = 0; i < 8; i++) {
      plans.push(committer.commit(fresh(["p", i], i)));
      await new Promise((r) => setTimeout(r, 3));
    }
    assert((await Promise.all(plans)).every((r) => r.ok));
    assert(seen.max >= 2, `at most ${seen.max} in flight`);
  } finally {
    real.close();
  }
});
