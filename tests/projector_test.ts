/**
 * The process's projector (lib/projector.ts): a kick every 64 records without forwarding, the
 * forwarder's kick with it, drains that share a run, and failures logged, never thrown.
 */
import { assert, assertEquals } from "./_assert.ts";
import { harness, lessonWebhook, progressWebhook, signedInit } from "./_helpers.ts";
import { createApp } from "../lib/http/app.ts";
import { createProjector, KICK_EVERY } from "../lib/projector.ts";
import { pairsLeftPending, pendingProjections } from "./_projection.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";

type H = Awaited<ReturnType<typeof harness>>;

/** `n` records of user `user`, their projections left pending. */
const records = (h: H, n: number, user = 1) =>
  pairsLeftPending(h, n, (i) => ({
    user,
    lesson: i + 1,
    at: Date.parse("2026-11-29T10:00:00.000Z") + (user * 1000 + i) * 3_600_000,
  }));

const pending = pendingProjections;

/** Waits for `cond`, polling (at most 2 s). */
async function until(what: string, cond: () => Promise<boolean> | boolean) {
  const deadline = Date.now() + 2_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("projector: without forwarding, the 64th kick starts a run, and the count starts again", async () => {
  const h = await harness();
  try {
    await records(h, 2);
    const p = createProjector({ kv: h.kv });
    for (let i = 1; i < KICK_EVERY; i++) p.kick();
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(await pending(h.kv), 2, "63 kicks: no run");
    p.kick();
    await until("the 64th kick's run", async () => await pending(h.kv) === 0);
    await records(h, 1, 2);
    for (let i = 1; i < KICK_EVERY; i++) p.kick();
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(await pending(h.kv), 1, "counted again from 0");
    p.kick();
    await until("the next 64th kick's run", async () => await pending(h.kv) === 0);
    assertEquals(KICK_EVERY, 64);
  } finally {
    h.close();
  }
});

Deno.test("projector: with forwarding, a kick is the forwarder's; none given is no error", async () => {
  const h = await harness();
  try {
    await records(h, 1);
    let kicked = 0;
    const p = createProjector({ kv: h.kv, destinations: ["crm"], onProjected: () => kicked++ });
    p.kick();
    p.kick();
    assertEquals(kicked, 2);
    assertEquals(await pending(h.kv), 1, "the forwarder's sweep projects, not the kick");
    createProjector({ kv: h.kv, destinations: ["crm"] }).kick();
    await createProjector({ kv: h.kv, destinations: ["crm"] }).drain();
    assertEquals(await pending(h.kv), 0);
  } finally {
    h.close();
  }
});

Deno.test("projector: drains during a run share one more run; later drains run again", async () => {
  const h = await harness();
  try {
    const calls: KvCall[] = [];
    const kv = instrumentKv(h.kv, { before: (c) => void calls.push(c) });
    let runs = 0;
    const p = createProjector({ kv, onProjected: () => runs++ });
    // Nothing pending: each run is one lease read and one listing.
    await Promise.all([p.drain(), p.drain(), p.drain(), p.drain(), p.drain()]);
    assertEquals(calls.filter((c) => c === "list").length, 2, "the first run and one shared");
    assertEquals(runs, 0, "nothing projected: the forwarder is not kicked");
    await records(h, 2);
    await p.drain();
    assertEquals([await pending(h.kv), runs], [0, 1]);
    await records(h, 1, 2);
    await Promise.all([p.drain(), p.drain()]);
    await records(h, 1, 3);
    await p.drain();
    assertEquals(await pending(h.kv), 0, "a drain after shared ones still runs");
    assert(runs >= 3, `${runs} runs that projected`);
  } finally {
    h.close();
  }
});

Deno.test("projector: a failed run started by a kick is logged as an error, never thrown", async () => {
  const h = await harness();
  try {
    await records(h, 1);
    const kv = instrumentKv(h.kv, {
      before(call) {
        if (call === "list") throw new Error("disk unplugged");
      },
    });
    const logs: Record<string, unknown>[] = [];
    const p = createProjector({ kv, log: (l) => logs.push(l) });
    for (let i = 0; i < KICK_EVERY; i++) p.kick();
    await until("the error's log line", () => logs.length > 0);
    assertEquals(logs, [{
      level: "error",
      msg: "projection failed",
      error: "Error: disk unplugged",
    }]);
    // Without a logger, the failure is dropped quietly (no unhandled rejection).
    const quiet = createProjector({ kv });
    for (let i = 0; i < KICK_EVERY; i++) quiet.kick();
    await new Promise((r) => setTimeout(r, 30));
    assertEquals(await pending(h.kv), 1);
  } finally {
    h.close();
  }
});

Deno.test("app: its own projector writes the forwarder's outbox entries and kicks it", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    let kicks = 0;
    const forwarder = {
      destinations: ["crm"],
      kick: () => void kicks++,
      sweep: () => Promise.resolve(0),
      tick: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    const h = await harness({}, kv);
    const app = createApp({ kv, config: h.config, forwarder, log: () => {} });
    for (const body of [lessonWebhook({ user: 5 }), progressWebhook({ user: 5 })]) {
      const res = await app.request("/webhooks/thinkific", await signedInit(body));
      await res.body?.cancel();
    }
    assertEquals(kicks, 1, "the new record kicked the forwarder");
    const res = await app.request("/api/outbox?status=pending");
    const entries = (await res.json()).entries as { id: string }[];
    assertEquals(entries.map((e) => e.id.split(":")[0]), ["crm"]);
    assertEquals(kicks, 2, "the read's run projected a record: the forwarder is kicked again");
    // Without a forwarder, the app's projector projects for its readers.
    const plain = createApp({ kv, config: h.config, log: () => {} });
    for (const body of [lessonWebhook({ user: 6 }), progressWebhook({ user: 6 })]) {
      const r = await plain.request("/webhooks/thinkific", await signedInit(body));
      await r.body?.cancel();
    }
    const byUser = await (await plain.request("/api/records?user_id=6")).json();
    assertEquals(byUser.records.length, 1);
  } finally {
    kv.close();
  }
});
