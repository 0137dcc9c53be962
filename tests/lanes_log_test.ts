/**
 * Lanes (lib/lanes.ts): work for one key runs one at a time in arrival order, a failure does not
 * stop the next, other keys run alongside. The JSON logger (lib/log.ts): one JSON line with its
 * time, errors on stderr.
 */
import { assert, assertEquals } from "./_assert.ts";
import { createLanes } from "../lib/lanes.ts";
import { jsonLogger, silentLogger } from "../lib/log.ts";

Deno.test("lanes: one key at a time in arrival order; a failure does not stop the next; other keys alongside", async () => {
  const lanes = createLanes();
  const events: string[] = [];
  const gate = Promise.withResolvers<void>();
  const first = lanes.run("a", async () => {
    events.push("a1 start");
    await gate.promise;
    events.push("a1 end");
    throw new Error("a1 failed");
  });
  const second = lanes.run("a", () => {
    events.push("a2");
    return Promise.resolve(2);
  });
  const other = await lanes.run("b", () => {
    events.push("b");
    return Promise.resolve("b");
  });
  assertEquals(other, "b");
  assertEquals(events, ["a1 start", "b"], "b ran while a1 waits; a2 waits for a1");
  gate.resolve();
  assertEquals(await first.catch((e) => e.message), "a1 failed");
  assertEquals(await second, 2);
  assertEquals(events, ["a1 start", "b", "a1 end", "a2"]);
  // A key whose work is done starts again at once.
  assertEquals(await lanes.run("a", () => Promise.resolve(3)), 3);
});

Deno.test("log: one JSON line with its time; errors go to stderr", () => {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (line: string) => void out.push(line);
  console.error = (line: string) => void err.push(line);
  try {
    jsonLogger({ msg: "webhook", status: 200 });
    jsonLogger({ level: "error", msg: "request failed" });
    silentLogger({ msg: "nothing" });
  } finally {
    [console.log, console.error] = [log, error];
  }
  assertEquals(out.length, 1);
  assertEquals(err.length, 1);
  const line = JSON.parse(out[0]);
  assert(!Number.isNaN(Date.parse(line.time)), "an ISO time");
  assertEquals({ ...line, time: undefined }, { time: undefined, msg: "webhook", status: 200 });
  assertEquals(JSON.parse(err[0]).msg, "request failed");
});
