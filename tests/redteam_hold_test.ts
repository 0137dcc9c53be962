/**
 * The default poll of a held delivery (mode `"poll"`, as `deno task start` on a database file
 * shared by several processes): the enrollment's key is read every 100 ms, so a counterpart stored
 * by another process wakes the held delivery within a tenth of a second, not a second later.
 */
import { assert, assertEquals } from "./_assert.ts";
import { createHolds } from "../lib/hold.ts";
import { instrumentKv } from "../lib/store/instrument.ts";

Deno.test("redteam hold: mode poll reads the key every 100 ms by default", async () => {
  const real = await Deno.openKv(":memory:");
  try {
    let gets = 0;
    const kv = instrumentKv(real, { before: (call) => void (call === "get" && gets++) });
    const holds = createHolds(kv, { mode: "poll" });
    const key = ["enrollments", "48213", 1, 10];
    const started = performance.now();
    const { end } = await holds.wait("t", key, null, 650);
    assertEquals(end, "timeout");
    // ~6 reads in 650 ms at 100 ms; none at all with a 1 s default, hundreds with none.
    const took = Math.round(performance.now() - started);
    assert(gets >= 3 && gets <= Math.ceil(took / 100), `${gets} reads in ${took} ms`);
    // A write seen by the poll wakes the delivery long before its time is up.
    const wait = holds.wait("t", key, null, 10_000);
    await real.set(key, { progress: [], lessons: [] });
    const t0 = performance.now();
    assertEquals((await wait).end, "woken");
    assert(performance.now() - t0 < 900, "woken by the next poll");
  } finally {
    real.close();
  }
});
