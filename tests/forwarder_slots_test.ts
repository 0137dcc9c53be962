/**
 * How a sweep keeps attempts running (lib/forward/forwarder.ts): it leases more as soon as enough
 * slots are free or new work is kicked, so a hung destination holds only its own slots; it starts
 * more than one lease batch at once; it does not poll the database while it waits (nor when kicked
 * with every slot taken); `close()` waits for every attempt in flight. Also what a handler sees of
 * its deadline, the logged duration of an attempt, and the cron given a function.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  BASE_TIME,
  harness,
  idleForwarder,
  lessonWebhook,
  type LogLine,
  progressWebhook,
  signedInit,
} from "./_helpers.ts";
import { projectPending } from "../lib/store/projections.ts";
import { createApp } from "../lib/http/app.ts";
import {
  createForwarder,
  type Forwarder,
  handlerDestination,
  MAX_IN_FLIGHT,
  sweepEveryMinute,
} from "../lib/forward/forwarder.ts";
import { instrumentKv } from "../lib/store/instrument.ts";

/**
 * A writer of new records on `kv` with one outbox entry per destination named: `write(from, n)`
 * posts the lesson and progress of records `from…from+n-1`. Nobody is kicked: the test sweeps.
 */
async function writer(kv: Deno.Kv, destinations: string[]) {
  const h = await harness({}, kv);
  const forwarder = { ...idleForwarder(), destinations };
  const app = createApp({ kv, config: h.config, forwarder, log: () => {} });
  return async (from: number, n: number) => {
    for (let i = from; i < from + n; i++) {
      const at = BASE_TIME + i * 60_000;
      for (const body of [lessonWebhook({ at, lesson: 100 + i }), progressWebhook({ at })]) {
        const res = await app.request("/webhooks/thinkific", await signedInit(body));
        await res.body?.cancel();
      }
    }
    await projectPending(kv, { destinations, now: Date.now() });
  };
}

async function until(what: string, cond: () => boolean, ms = 3_000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A destination whose attempts wait until `open()`; then they, and later ones, succeed. */
function gated(name: string) {
  const gate = Promise.withResolvers<void>();
  const state = { running: 0, started: 0, open: () => gate.resolve() };
  const destination = handlerDestination(name, async () => {
    state.started++;
    state.running++;
    await gate.promise;
    state.running--;
  });
  return { destination, state };
}

Deno.test("forwarder slots: with one slot each, a hung destination never holds back another's next entries", async () => {
  const kv = await Deno.openKv(":memory:");
  const slow = gated("slow");
  const fast: string[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [
      slow.destination,
      handlerDestination("fast", (r) => Promise.resolve(void fast.push(r.lesson_event_id))),
    ],
    maxInFlight: 1,
    log: () => {},
  });
  try {
    const write = await writer(kv, ["slow", "fast"]);
    await write(0, 2);
    const swept = forwarder.sweep();
    // fast's first attempt ended, freeing its slot: its second entry goes while slow hangs.
    await until("fast had both records", () => fast.length === 2);
    assertEquals([slow.state.started, slow.state.running], [1, 1]);
    // New work kicked while slow still hangs reaches fast too.
    await write(2, 1);
    forwarder.kick();
    await until("fast had the kicked record", () => fast.length === 3);
    assertEquals(slow.state.started, 1, "slow's one slot is still taken");
    slow.state.open();
    assertEquals(await swept, 6);
    assertEquals(slow.state.started, 3);
  } finally {
    slow.state.open();
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder slots: an attempt that ends while the sweep leases again does not end the sweep early", async () => {
  const real = await Deno.openKv(":memory:");
  // The lease pass armed here reads the due entries slowly; the hung attempt ends meanwhile.
  const slowPass = { armed: false, reading: Promise.withResolvers<void>() };
  const kv = instrumentKv(real, {
    before(call) {
      if (call === "list" && slowPass.armed) slowPass.reading.resolve();
    },
    latency: (call) => call === "list" && slowPass.armed ? (slowPass.armed = false, 50) : 0,
  });
  const crm = gated("crm");
  const forwarder = createForwarder({
    kv,
    destinations: [crm.destination, handlerDestination("erp", () => Promise.resolve())],
    maxInFlight: 1,
    log: () => {},
  });
  try {
    await (await writer(real, ["crm"]))(0, 2);
    const swept = forwarder.sweep();
    await until("crm's one slot is taken", () => crm.state.running === 1);
    slowPass.armed = true;
    forwarder.kick(); // erp has a free slot: the sweep leases again, finding nothing for crm
    await slowPass.reading.promise;
    crm.state.open(); // crm's attempt ends during that pass: its second entry is due, its slot free
    assertEquals(await swept, 2, "the sweep delivered everything due");
    assertEquals(crm.state.started, 2);
  } finally {
    crm.state.open();
    await forwarder.close();
    real.close();
  }
});

Deno.test("forwarder slots: a sweep starts more than one lease batch (100) of attempts at once", async () => {
  const kv = await Deno.openKv(":memory:");
  const a = gated("a");
  const b = gated("b");
  const forwarder = createForwarder({ kv, destinations: [a.destination, b.destination] });
  try {
    await (await writer(kv, ["a", "b"]))(0, 51);
    const swept = forwarder.sweep();
    // 102 entries, 51 per destination: under the 64 slots of each, so all run at once.
    await until("102 attempts run", () => a.state.running + b.state.running === 102);
    a.state.open();
    b.state.open();
    assertEquals(await swept, 102);
  } finally {
    a.state.open();
    b.state.open();
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder slots: by default 64 attempts run at once per destination", async () => {
  const kv = await Deno.openKv(":memory:");
  const crm = gated("crm");
  const forwarder = createForwarder({ kv, destinations: [crm.destination], log: () => {} });
  try {
    await (await writer(kv, ["crm"]))(0, MAX_IN_FLIGHT + 1);
    const swept = forwarder.sweep();
    await until("64 attempts run", () => crm.state.running === 64);
    await new Promise((r) => setTimeout(r, 30));
    assertEquals([crm.state.started, MAX_IN_FLIGHT], [64, 64], "the 65th waits for a slot");
    crm.state.open();
    assertEquals(await swept, 65);
  } finally {
    crm.state.open();
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder slots: a sweep waiting for a slow attempt does not read the database meanwhile", async () => {
  const real = await Deno.openKv(":memory:");
  let lists = 0;
  const kv = instrumentKv(real, { before: (call) => void (call === "list" && lists++) });
  const forwarder = createForwarder({
    kv,
    destinations: [
      handlerDestination("webhook", () => new Promise((r) => setTimeout(r, 150))),
    ],
  });
  try {
    await (await writer(real, ["webhook"]))(0, 1);
    assertEquals(await forwarder.sweep(), 1);
    // The look for expired flights, one lease pass, one more after the attempt ended (each
    // first looks for records to project), and the looks for the next due entry and flight.
    assert(lists <= 7, `${lists} listings during a sweep of one 150 ms attempt`);
  } finally {
    await forwarder.close();
    real.close();
  }
});

Deno.test("forwarder slots: kicks while every slot is taken make no lease pass", async () => {
  const real = await Deno.openKv(":memory:");
  let lists = 0;
  const kv = instrumentKv(real, { before: (call) => void (call === "list" && lists++) });
  const hung = gated("webhook");
  const forwarder = createForwarder({
    kv,
    destinations: [hung.destination],
    maxInFlight: 1,
    log: () => {},
  });
  try {
    await (await writer(real, ["webhook"]))(0, 2);
    const swept = forwarder.sweep();
    await until("the one slot is taken", () => hung.state.running === 1);
    await new Promise((r) => setTimeout(r, 10));
    const before = lists;
    // New records keep coming (each kicks the forwarder) while the destination hangs.
    for (let i = 0; i < 5; i++) forwarder.kick();
    await new Promise((r) => setTimeout(r, 30));
    assertEquals(lists, before, "no lease pass while no slot is free");
    hung.state.open();
    assertEquals(await swept, 2);
  } finally {
    hung.state.open();
    await forwarder.close();
    real.close();
  }
});

Deno.test("forwarder slots: close() waits for every attempt in flight, not only the first to end", async () => {
  const kv = await Deno.openKv(":memory:");
  const releases: (() => void)[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [
      handlerDestination("webhook", () => new Promise<void>((r) => releases.push(r))),
    ],
    log: () => {},
  });
  try {
    await (await writer(kv, ["webhook"]))(0, 2);
    const swept = forwarder.sweep();
    await until("both attempts run", () => releases.length === 2);
    let closed = false;
    const closing = forwarder.close().then(() => (closed = true));
    releases[0]();
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(closed, false, "the second attempt is still running");
    releases[1]();
    await closing;
    assertEquals(await swept, 2);
  } finally {
    releases.forEach((r) => r());
    kv.close();
  }
});

Deno.test("forwarder slots: an attempt's signal aborts at its deadline with a DeadlineError, and never after it ended", async () => {
  const kv = await Deno.openKv(":memory:");
  const signals: AbortSignal[] = [];
  let calls = 0;
  const forwarder = createForwarder({
    kv,
    destinations: [
      handlerDestination("webhook", (_record, signal) => {
        signals.push(signal);
        // The first record's attempt hangs past its deadline; the second's answers at once.
        return ++calls === 1 ? new Promise(() => {}) : Promise.resolve();
      }),
    ],
    attemptTimeoutMs: 20,
    log: () => {},
  });
  try {
    await (await writer(kv, ["webhook"]))(0, 2);
    assertEquals(await forwarder.sweep(), 2);
    const reason = signals[0].reason as Error;
    assertEquals([signals[0].aborted, reason.name, reason.message], [
      true,
      "DeadlineError",
      "no answer within 20 ms",
    ]);
    await new Promise((r) => setTimeout(r, 60));
    assertEquals(signals[1].aborted, false, "a finished attempt keeps its signal");
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder slots: a delivery's log line gives how long its attempt took", async () => {
  const kv = await Deno.openKv(":memory:");
  const logs: LogLine[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [handlerDestination("webhook", () => new Promise((r) => setTimeout(r, 40)))],
    log: (l) => logs.push(l),
  });
  try {
    await (await writer(kv, ["webhook"]))(0, 1);
    const started = performance.now();
    await forwarder.sweep();
    const took = performance.now() - started;
    const [line] = logs.filter((l) => l.outcome === "delivered");
    const ms = line.ms as number;
    assert(ms >= 39 && ms <= took + 1, `logged ${ms} ms, the sweep took ${took} ms`);
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder slots: a cron given a function ticks the forwarder it returns, and nothing before there is one", async () => {
  const handlers: (() => Promise<void>)[] = [];
  let ticks = 0;
  const made: { forwarder?: Forwarder } = {};
  sweepEveryMinute(() => made.forwarder, (_name, _schedule, handler) => handlers.push(handler));
  assertEquals(handlers.length, 1);
  await handlers[0]();
  made.forwarder = { ...idleForwarder(), tick: () => Promise.resolve(void ticks++) };
  await handlers[0]();
  await handlers[0]();
  assertEquals(ticks, 2);
});
