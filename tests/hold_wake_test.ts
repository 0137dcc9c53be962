/**
 * The holds themselves (lib/hold.ts), without the app: what ends a wait, who is woken, what each
 * wake mode reads, and that a process holding deliveries for many enrollments keeps nothing of
 * the ones that ended.
 */
import { assert, assertEquals } from "./_assert.ts";
import { evalChild, libImport } from "./_helpers.ts";
import { createHolds } from "../lib/hold.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";

const KEY = ["enrollments", "48213", 1, 10];

/** An in-memory database, a handle on it that notes each call, and the calls so far. */
async function counted() {
  const real = await Deno.openKv(":memory:");
  const calls: KvCall[] = [];
  const kv = instrumentKv(real, { before: (c) => void calls.push(c) });
  return { real, kv, calls, [Symbol.dispose]: () => real.close() };
}

Deno.test("holds: a wait asked after close() ends at once as closed", async () => {
  using db = await counted();
  const holds = createHolds(db.kv, { mode: "poll", pollMs: 10 });
  holds.close();
  assertEquals(holds.closed, true);
  assertEquals(await holds.wait("t", KEY, null, 5_000), { end: "closed" });
  assertEquals(holds.waiting, 0);
  assertEquals(db.calls, [], "no read for a wait that never started");
});

Deno.test("holds: a wait that timed out leaves the others of its enrollment to be woken", async () => {
  using db = await counted();
  const holds = createHolds(db.kv, { mode: "memory" });
  const short = holds.wait("t", KEY, null, 20);
  const long = holds.wait("t", KEY, null, 5_000);
  assertEquals((await short).end, "timeout");
  assertEquals(holds.waiting, 1);
  holds.notify("t", "record");
  assertEquals(await long, { end: "woken", note: "record" });
  assertEquals(holds.waiting, 0);
});

Deno.test("holds: a notification wakes only its own tag's waits", async () => {
  using db = await counted();
  const holds = createHolds(db.kv, { mode: "memory" });
  const other = holds.wait("u", KEY, null, 60_000);
  const mine = holds.wait("t", KEY, null, 60_000);
  holds.notify("t", 1);
  assertEquals(await mine, { end: "woken", note: 1 });
  assertEquals(holds.waiting, 1);
  holds.notify("u", 2);
  assertEquals(await other, { end: "woken", note: 2 });
});

Deno.test("holds: watch mode watches the key and never polls it", async () => {
  using db = await counted();
  const holds = createHolds(db.kv, { mode: "watch", pollMs: 5 });
  assertEquals((await holds.wait("t", KEY, null, 150)).end, "timeout");
  assertEquals(db.calls.filter((c) => c === "get"), [], "no read of the key");
  // A write to the key wakes it.
  const held = holds.wait("t", KEY, null, 60_000);
  await db.real.set(KEY, 1);
  assertEquals((await held).end, "woken");
});

Deno.test("holds: a poll read in flight when its wait ends is the last one", async () => {
  // A database whose reads are answered by hand: the first read is still out when the wait is
  // woken; once it comes back unchanged, no other read follows.
  const answers: PromiseWithResolvers<Deno.KvEntryMaybe<unknown>>[] = [];
  const kv = {
    get(key: Deno.KvKey) {
      const answer = Promise.withResolvers<Deno.KvEntryMaybe<unknown>>();
      answers.push(answer);
      return answer.promise.then((e) => ({ ...e, key }));
    },
  } as unknown as Deno.Kv;
  const holds = createHolds(kv, { mode: "poll", pollMs: 5 });
  const held = holds.wait("t", KEY, null, 60_000);
  for (let i = 0; answers.length === 0; i++) {
    assert(i < 500, "the poll reads the key");
    await new Promise((r) => setTimeout(r, 2));
  }
  holds.notify("t");
  assertEquals((await held).end, "woken");
  answers[0].resolve({ key: KEY, value: null, versionstamp: null });
  await new Promise((r) => setTimeout(r, 60));
  assertEquals(answers.length, 1, "no poll after the wait ended");
});

Deno.test("holds: waits of many enrollments, all ended, leave nothing behind", async () => {
  // A child process with V8's gc() exposed holds and wakes 50,000 enrollments' deliveries; the
  // heap must come back to where it was (an entry per enrollment ever held would not).
  const code = `
    import { createHolds } from ${libImport("hold.ts")};
    const holds = createHolds(null, { mode: "memory" });
    const used = () => { globalThis.gc(); return Deno.memoryUsage().heapUsed; };
    const round = async (from) => {
      for (let i = from; i < from + 50000; i += 1000) {
        const waits = [];
        for (let j = i; j < i + 1000; j++) waits.push(holds.wait("enrollment-" + j, [], null, 60000));
        for (let j = i; j < i + 1000; j++) holds.notify("enrollment-" + j);
        await Promise.all(waits);
      }
    };
    await round(0);
    const before = used();
    await round(50000);
    console.log(JSON.stringify({ grew: used() - before, waiting: holds.waiting }));
  `;
  const run = await evalChild(code, { v8Flags: "--expose-gc", killAfterMs: 60_000 });
  assertEquals(run.code, 0, run.stderr);
  const { grew, waiting } = JSON.parse(run.stdout);
  assertEquals(waiting, 0);
  // 50,000 more enrollments: an empty Set and a key each would be megabytes.
  assert(grew < 1_000_000, `the heap grew by ${grew} bytes`);
});
