/**
 * `instrumentKv`, the wrapper the fault, crash and feed tests and the benchmarks put around a
 * database: it announces each round trip by kind before it happens (a hook that throws fails that
 * call and writes nothing), holds commits while `holdCommit` waits, and delays round trips by
 * `latency` ms, like a database in another region. Waits are observed through a stand-in
 * `setTimeout`, so no test here depends on the clock.
 */
import assert from "node:assert/strict";
import { assertEquals } from "./_assert.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";

/** A database and its instrumented handle, recording the calls announced. */
async function wrapped(hooks: Partial<Parameters<typeof instrumentKv>[1]> = {}) {
  const real = await Deno.openKv(":memory:");
  const calls: KvCall[] = [];
  const kv = instrumentKv(real, { before: (call) => void calls.push(call), ...hooks });
  return { real, kv, calls, [Symbol.dispose]: () => real.close() };
}

/**
 * Replaces `setTimeout` until disposed: each wait asked for is recorded (its ms) and ends only when
 * the test calls `release()`.
 */
function heldTimers() {
  const real = globalThis.setTimeout;
  const asked: number[] = [];
  let pending: (() => void)[] = [];
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    asked.push(ms ?? 0);
    pending.push(fn);
    return 0;
  }) as unknown as typeof setTimeout;
  return {
    asked,
    /** Ends every wait asked for so far. */
    release() {
      const due = pending;
      pending = [];
      for (const fn of due) fn();
    },
    [Symbol.dispose]() {
      globalThis.setTimeout = real;
    },
  };
}

/** Lets promise callbacks and KV operations already under way run. */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => queueMicrotask(() => r(null)));
};

Deno.test("instrument: every read, listing and commit is announced by kind, once, and still answers as the database", async () => {
  using db = await wrapped();
  const { kv, calls, real } = db;
  await real.set(["a"], 1);
  await real.set(["b"], 2);
  assertEquals((await kv.get(["a"])).value, 1);
  assertEquals((await kv.getMany([["a"], ["b"]])).map((e) => e.value), [1, 2]);
  const listed = [];
  for await (const e of kv.list({ prefix: [] }, { batchSize: 1 })) listed.push(e.value);
  assertEquals(listed, [1, 2]);
  const res = await kv.atomic().check({ key: ["a"], versionstamp: null }).set(["c"], 3).commit();
  assertEquals(res.ok, false, "the check failed: ['a'] exists");
  const ok = await kv.atomic().set(["c"], 3).sum(["n"], 5n).delete(["b"]).commit();
  assert(ok.ok);
  assertEquals(calls, ["get", "getMany", "list", "commit", "commit"]);
  assertEquals((await real.get(["c"])).value, 3);
  assertEquals((await real.get<Deno.KvU64>(["n"])).value?.value, 5n);
  assertEquals((await real.get(["b"])).versionstamp, null);
  // What is not a round trip it watches passes straight through, bound to the database.
  await kv.set(["d"], 4);
  await kv.delete(["a"]);
  assertEquals([(await real.get(["d"])).value, (await real.get(["a"])).value], [4, null]);
  assertEquals(calls.length, 5);
});

Deno.test("instrument: a hook that throws fails that call, and a failed commit writes nothing", async () => {
  let failing: KvCall | null = null;
  using db = await wrapped({
    before(call) {
      if (call === failing) throw new Error(`${call} refused`);
    },
  });
  const { kv, real } = db;
  for (const call of ["get", "getMany", "list", "commit"] as const) {
    failing = call;
    const attempt = {
      get: () => kv.get(["x"]),
      getMany: () => kv.getMany([["x"]]),
      list: () => kv.list({ prefix: [] }).next(),
      commit: () => kv.atomic().set(["x"], 1).commit(),
    }[call];
    await assert.rejects(async () => await attempt(), new Error(`${call} refused`));
  }
  assertEquals((await real.get(["x"])).versionstamp, null);
  failing = null;
  assert((await kv.atomic().set(["x"], 1).commit()).ok);
  assertEquals((await real.get(["x"])).value, 1);
});

Deno.test("instrument: without holdCommit or latency, a hook's failure is thrown by the call itself, a commit's too", async () => {
  using db = await wrapped({
    before(call) {
      throw new Error(`${call} refused`);
    },
  });
  const { kv } = db;
  assert.throws(() => kv.get(["x"]), new Error("get refused"));
  assert.throws(() => kv.getMany([["x"]]), new Error("getMany refused"));
  assert.throws(() => kv.list({ prefix: [] }), new Error("list refused"));
  assert.throws(() => kv.atomic().set(["x"], 1).commit(), new Error("commit refused"));
  assertEquals((await db.real.get(["x"])).versionstamp, null);
});

Deno.test("instrument: the handle and its atomic operations offer what the database's do, nothing more", async () => {
  using db = await wrapped();
  const kv = db.kv as unknown as Record<string, unknown>;
  const op = db.kv.atomic() as unknown as Record<string, unknown>;
  // Code that tests for a method before using it sees the same answer as on the database.
  assertEquals([typeof kv.watch, typeof kv.enqueue, typeof kv.noSuchMethod], [
    "function",
    "function",
    "undefined",
  ]);
  assertEquals([typeof op.sum, typeof op.enqueue, typeof op.noSuchMethod], [
    "function",
    "function",
    "undefined",
  ]);
});

Deno.test("instrument: a commit waits for holdCommit, after it was announced, and lands when released", async () => {
  let release = () => {};
  const order: string[] = [];
  using db = await wrapped({
    before: (call) => void order.push(call),
    holdCommit: () => {
      order.push("hold");
      return new Promise<void>((r) => release = r);
    },
  });
  const { kv, real } = db;
  const committing = kv.atomic().set(["held"], "yes").commit();
  await settle();
  await new Promise((r) => setTimeout(r, 5));
  assertEquals(order, ["commit", "hold"]);
  assertEquals((await real.get(["held"])).versionstamp, null, "not written while held");
  release();
  assert((await committing).ok);
  assertEquals((await real.get(["held"])).value, "yes");
  // Reads are never held.
  assertEquals((await kv.get(["held"])).value, "yes");
  assertEquals(order, ["commit", "hold", "get"]);
});

Deno.test("instrument: latency delays each read and commit by its ms before it reaches the database", async () => {
  using db = await wrapped({
    latency: (call) => ({ get: 20, getMany: 30, list: 0, commit: 40 })[call],
  });
  const { kv, real } = db;
  using timers = heldTimers();
  await real.set(["k"], "old");

  const read = kv.get(["k"]);
  const readMany = kv.getMany([["k"]]);
  const commit = kv.atomic().set(["w"], 1).commit();
  await settle();
  assertEquals(timers.asked, [20, 30, 40]);
  // Written before the delayed calls reach the database: they see it.
  await real.set(["k"], "new");
  assertEquals((await real.get(["w"])).versionstamp, null, "the commit has not landed");
  timers.release();
  assertEquals((await read).value, "new");
  assertEquals((await readMany)[0].value, "new");
  assert((await commit).ok);
  assertEquals((await real.get(["w"])).value, 1);

  // A listing with no latency asks for no wait.
  const listed = [];
  for await (const e of kv.list({ prefix: [] })) listed.push(e.value);
  assertEquals([listed, timers.asked.length], [["new", 1], 3]);
  assertEquals(db.calls, ["get", "getMany", "commit", "list"]);
});

Deno.test("instrument: zero latency asks for no wait; a commit's latency comes before its hold", async () => {
  const order: string[] = [];
  let commitMs = 0;
  using db = await wrapped({
    latency: (call) => call === "commit" ? commitMs : 0,
    holdCommit: () => {
      order.push("hold");
      return Promise.resolve();
    },
  });
  const { kv, real } = db;
  using timers = heldTimers();
  assertEquals((await kv.get(["none"])).versionstamp, null);
  assertEquals((await kv.getMany([["none"]])).length, 1);
  assert((await kv.atomic().set(["c"], 0).commit()).ok);
  assertEquals(timers.asked, [], "no wait for a 0 ms latency");
  assertEquals(order, ["hold"]);
  commitMs = 15;
  const commit = kv.atomic().set(["c"], 1).commit();
  await settle();
  assertEquals([timers.asked, order], [[15], ["hold"]], "waiting out the latency, not yet held");
  timers.release();
  assert((await commit).ok);
  assertEquals(order, ["hold", "hold"]);
  assertEquals((await real.get(["c"])).value, 1);
});

Deno.test("instrument: a listing's latency delays its first page only; its cursor reads through", async () => {
  using db = await wrapped({ latency: (call) => call === "list" ? 25 : 0 });
  const { kv, real } = db;
  for (const n of [1, 2, 3]) await real.set(["l", n], n);
  using timers = heldTimers();
  const it = kv.list<number>({ prefix: ["l"] }, { batchSize: 1 });
  const first = it.next();
  await settle();
  assertEquals(timers.asked, [25]);
  await real.set(["l", 0], 0); // before the first page is read: listed
  timers.release();
  assertEquals((await first).value?.value, 0);
  const cursor = it.cursor;
  assert(cursor.length > 0, "a cursor after the first entry");
  const rest = [];
  for await (const e of it) rest.push(e.value);
  assertEquals(rest, [1, 2, 3]);
  assertEquals(timers.asked, [25], "one wait for the whole listing");
  // The cursor resumes a listing where that page ended.
  const resumed = [];
  for await (const e of real.list<number>({ prefix: ["l"] }, { cursor })) resumed.push(e.value);
  assertEquals(resumed, [1, 2, 3]);
});
