/**
 * Lanes (lib/lanes.ts) taking over waiting work: the work running takes the works waiting behind it
 * for its key, oldest first, while it accepts them; a taken work answers in its turn what it was
 * handed, or runs after all when handed `null`; a work offered without a `what` is never taken and
 * keeps the ones behind it where they are.
 */
import { assertEquals } from "./_assert.ts";
import { createLanes, type Taken } from "../lib/lanes.ts";

/** Starts a work on `key` that runs until released, and records its start. */
function blocker(lanes: ReturnType<typeof createLanes>, key: string, log: string[]) {
  const gate = Promise.withResolvers<void>();
  const done = lanes.run(key, async () => {
    log.push("blocker");
    await gate.promise;
    return "blocker";
  }, "blocker");
  return { done, release: () => gate.resolve() };
}

const worker = (log: string[], name: string) => () => {
  log.push(name);
  return Promise.resolve(`${name} ran`);
};

Deno.test("lanes: the work running takes the waiting ones in arrival order while it accepts them", async () => {
  const lanes = createLanes();
  const log: string[] = [];
  const first = blocker(lanes, "k", log);
  await new Promise((r) => setTimeout(r, 0)); // the blocker runs: nothing waits behind it yet
  const b = lanes.run("k", worker(log, "b"), "b");
  const c = lanes.run("k", worker(log, "c"), "c");
  const d = lanes.run("k", worker(log, "d"), "d");
  const other = lanes.run("x", worker(log, "x"), "x");
  const asked: unknown[] = [];
  await new Promise((r) => setTimeout(r, 0));
  const taken: Taken[] = lanes.take("k", (what) => {
    asked.push(what);
    return what !== "c";
  });
  assertEquals(taken.map((t) => t.what), ["b"], "c refused: it stops the taking");
  assertEquals(asked, ["b", "c"]);
  assertEquals(lanes.take("x", () => true), [], "x's work ran at once: nothing waits");
  // What was not taken still waits, and may be taken later.
  assertEquals(lanes.take("k", (what) => (asked.push(what), false)), []);
  assertEquals(asked, ["b", "c", "c"]);
  for (const t of taken) t.done(`${t.what} handed`);
  first.release();
  assertEquals(await Promise.all([first.done, b, c, d, other]), [
    "blocker",
    "b handed",
    "c ran",
    "d ran",
    "x ran",
  ]);
  assertEquals(log, ["blocker", "x", "c", "d"], "b never ran: it answered what it was handed");
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(lanes.size, 0, "idle lanes keep nothing");
});

Deno.test("lanes: a taken work handed null runs after all, in its turn", async () => {
  const lanes = createLanes();
  const log: string[] = [];
  const first = blocker(lanes, "k", log);
  const b = lanes.run("k", worker(log, "b"), "b");
  await new Promise((r) => setTimeout(r, 0));
  const [t] = lanes.take("k", () => true);
  assertEquals(lanes.take("k", () => true), [], "taken once only");
  t.done(null);
  first.release();
  assertEquals(await b, "b ran");
  assertEquals(log, ["blocker", "b"]);
});

Deno.test("lanes: a work without a what is never taken, nor the ones behind it", async () => {
  const lanes = createLanes();
  const log: string[] = [];
  const first = blocker(lanes, "k", log);
  const plain = lanes.run("k", worker(log, "plain"));
  const b = lanes.run("k", worker(log, "b"), "b");
  await new Promise((r) => setTimeout(r, 0));
  let asked = 0;
  assertEquals(lanes.take("k", () => (asked++, true)), []);
  assertEquals(asked, 0, "not even asked");
  first.release();
  assertEquals(await Promise.all([plain, b]), ["plain ran", "b ran"]);
  assertEquals(log, ["blocker", "plain", "b"]);
});

Deno.test("lanes: a work that has started is no longer waiting: it cannot be taken", async () => {
  const lanes = createLanes();
  const log: string[] = [];
  const first = blocker(lanes, "k", log);
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(lanes.take("k", () => true), [], "the running work is not its own waiting work");
  first.release();
  await first.done;
  // Idle again: a new work runs at once, and nothing is left waiting for the key.
  assertEquals(await lanes.run("k", worker(log, "later"), "later"), "later ran");
  assertEquals(lanes.take("k", () => true), []);
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(lanes.size, 0, "idle lanes keep nothing");
});

Deno.test("lanes: every work taken leaves nothing behind once its lane is idle", async () => {
  const lanes = createLanes();
  const log: string[] = [];
  const first = blocker(lanes, "k", log);
  const b = lanes.run("k", worker(log, "b"), "b");
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(lanes.size, 2, "the lane's tail, and the work waiting in it");
  for (const t of lanes.take("k", () => true)) t.done("handed");
  assertEquals(lanes.size, 1, "nothing waits once taken: the tail is left");
  // A work arriving now waits behind the blocker, and can be taken in turn.
  const c = lanes.run("k", worker(log, "c"), "c");
  const later = lanes.take("k", () => true);
  assertEquals(later.map((t) => t.what), ["c"]);
  for (const t of later) t.done("handed too");
  first.release();
  assertEquals(await b, "handed");
  assertEquals(await c, "handed too");
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(lanes.size, 0);
});

Deno.test("lanes: when accepting throws, the works taken so far run after all and take throws", async () => {
  const lanes = createLanes();
  const log: string[] = [];
  const first = blocker(lanes, "k", log);
  const b = lanes.run("k", worker(log, "b"), "b");
  const c = lanes.run("k", worker(log, "c"), "c");
  await new Promise((r) => setTimeout(r, 0));
  let error: unknown = null;
  try {
    lanes.take("k", (what) => {
      if (what === "c") throw new Error("cannot tell");
      return true;
    });
  } catch (err) {
    error = err;
  }
  assertEquals((error as Error).message, "cannot tell");
  first.release();
  assertEquals(await Promise.all([b, c]), ["b ran", "c ran"]);
  assertEquals(log, ["blocker", "b", "c"]);
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(lanes.size, 0);
});

/** Whether `p` has settled by the next macrotask. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setTimeout(r, 0));
  return done;
}

Deno.test("lanes: arrival ends when a work comes for the key, at once if one waits, else after its time", async () => {
  const lanes = createLanes();
  const log: string[] = [];
  const first = blocker(lanes, "k", log);
  await new Promise((r) => setTimeout(r, 0));
  // Nothing waits: the wait holds, and counts in size.
  const wait = lanes.arrival("k", 10_000);
  assertEquals(lanes.size, 2, "the running work's tail and the wait");
  assertEquals(await settled(wait), false);
  // A work for another key does not end it; one for this key does.
  await lanes.run("other", worker(log, "other"), "other");
  assertEquals(await settled(wait), false);
  const second = lanes.run("k", worker(log, "second"), "second");
  assertEquals(await settled(wait), true);
  // With a work waiting, a wait ends at once.
  assertEquals(await settled(lanes.arrival("k", 10_000)), true);
  first.release();
  assertEquals(await second, "second ran");
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(lanes.size, 0, "nothing left");
  // With none arriving, it ends after its time.
  const started = performance.now();
  await lanes.arrival("k", 20);
  assertEquals(performance.now() - started >= 19, true);
  assertEquals(lanes.size, 0);
});

Deno.test("lanes: a second wait on a key ends the first, whose time then no longer counts", async () => {
  const lanes = createLanes();
  const one = lanes.arrival("k", 10);
  const two = lanes.arrival("k", 10_000);
  assertEquals(await settled(one), true);
  assertEquals(await settled(two), false);
  assertEquals(lanes.size, 1);
  // The first wait's time passes: the second still ends with an arrival.
  await new Promise((r) => setTimeout(r, 30));
  assertEquals(lanes.size, 1);
  await lanes.run("k", () => Promise.resolve("x"), "x");
  assertEquals(await settled(two), true);
  assertEquals(lanes.size, 0);
});
