/**
 * Lanes (lib/lanes.ts) in a long-running process: a lane whose work has ended keeps nothing alive
 * (one lane per enrollment ever seen would otherwise pile up), and a lane emptied while newer work
 * waits does not let the next arrival jump ahead of that work.
 */
import { assertEquals } from "./_assert.ts";
import { evalChild, libImport } from "./_helpers.ts";
import { createLanes } from "../lib/lanes.ts";

Deno.test("lanes: finished work's results are not kept once its lane is idle", async () => {
  // A child process with V8's gc() exposed: lanes are created, used and left idle there, then a
  // full collection tells whether the lanes still hold what the work returned.
  const script = `
    import { createLanes } from ${libImport("lanes.ts")};
    const lanes = createLanes();
    const refs = [];
    for (const key of ["a", "b", "a"]) {
      await lanes.run(key, () => {
        const result = { key, payload: new Array(1000).fill(key) };
        refs.push(new WeakRef(result));
        return Promise.resolve(result);
      });
    }
    await lanes.run("c", () => {
      const failure = new Error("failed");
      refs.push(new WeakRef(failure));
      return Promise.reject(failure);
    }).catch(() => {});
    await new Promise((r) => setTimeout(r, 0));
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 0));
    console.log(JSON.stringify(refs.map((r) => r.deref() !== undefined)));
  `;
  const run = await evalChild(script, { v8Flags: "--expose-gc", killAfterMs: 60_000 });
  assertEquals(run.code, 0, run.stderr);
  assertEquals(JSON.parse(run.stdout), [false, false, false, false]);
});

Deno.test("lanes: work that arrives after the oldest finished still waits for the work queued behind it", async () => {
  const lanes = createLanes();
  const events: string[] = [];
  const gates = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  const step = (name: string, gate?: Promise<void>) => async () => {
    events.push(`${name} start`);
    if (gate) await gate;
    events.push(`${name} end`);
  };
  const first = lanes.run("k", step("first", gates[0].promise));
  const second = lanes.run("k", step("second", gates[1].promise));
  gates[0].resolve();
  await first;
  await new Promise((r) => setTimeout(r, 0));
  // The first lane's tail is done; the second work is running: a third waits for it.
  const third = lanes.run("k", step("third"));
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(events, ["first start", "first end", "second start"]);
  gates[1].resolve();
  await Promise.all([second, third]);
  assertEquals(events, [
    "first start",
    "first end",
    "second start",
    "second end",
    "third start",
    "third end",
  ]);
});
