/** Forwarding records downstream: Standard Webhooks messages from the transactional outbox. */
import { assert, assertEquals } from "./_assert.ts";
import {
  BASE_TIME,
  dump,
  harness,
  idleForwarder,
  lessonWebhook,
  progressWebhook,
  signedInit,
} from "./_helpers.ts";
import { withList } from "./_committer.ts";
import {
  createForwarder,
  type Destination,
  handlerDestination,
  sweepEveryMinute,
  webhookDestination,
} from "../lib/forward/forwarder.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import {
  createSigner,
  importStandardKey,
  verifyMessage,
} from "../lib/forward/standard_webhooks.ts";
import { Webhook } from "standardwebhooks";
import { projectPending } from "../lib/store/projections.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import { messageIdOf } from "../lib/store/outbox.ts";
import fc from "fast-check";

const WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

Deno.test("forward: Standard Webhooks signature matches the specification's test vector", async () => {
  const key = await importStandardKey(WHSEC);
  const headers = createSigner(WHSEC)(
    "msg_p5jXN8AQM9LWM0D4loKWxJek",
    1614265330,
    '{"test": 2432232314}',
  );
  assertEquals(headers["webhook-signature"], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // The official library, as an independent oracle, signs the same.
  const official = new Webhook(WHSEC).sign(
    "msg_p5jXN8AQM9LWM0D4loKWxJek",
    new Date(1614265330 * 1000),
    '{"test": 2432232314}',
  );
  assertEquals(headers["webhook-signature"], official);
  assert(
    await verifyMessage(key, {
      id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
      timestamp: "1614265330",
      signature:
        "v1,bm9ldHUjKzFob2VudXRob2VodWUzMjRvdWVvdW9ldQo= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }, '{"test": 2432232314}'),
  );
  assert(
    !(await verifyMessage(key, {
      id: "msg_other",
      timestamp: "1614265330",
      signature: headers["webhook-signature"],
    }, '{"test": 2432232314}')),
  );
});

/**
 * A Standard Webhooks receiver on a real port, verifying with the official `standardwebhooks`
 * library (signature and timestamp); `failFirstTry(n)` decides which messages fail once.
 */
function receiver(secret: string, failFirstTry: (nth: number) => boolean) {
  const verifier = new Webhook(secret);
  const attempts = new Map<string, number>();
  const delivered = new Map<string, Record<string, unknown>>();
  const badSignatures: string[] = [];
  let order = 0;
  const seenOrder = new Map<string, number>();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const body = await req.text();
    const id = req.headers.get("webhook-id") ?? "";
    let ok = true;
    try {
      verifier.verify(body, Object.fromEntries(req.headers));
    } catch {
      ok = false;
    }
    if (!ok) {
      badSignatures.push(id);
      return new Response("bad signature", { status: 401 });
    }
    attempts.set(id, (attempts.get(id) ?? 0) + 1);
    if (!seenOrder.has(id)) seenOrder.set(id, ++order);
    if (attempts.get(id) === 1 && failFirstTry(seenOrder.get(id)!)) {
      return new Response("try later", { status: 503 });
    }
    delivered.set(id, JSON.parse(body));
    return new Response(null, { status: 204 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    attempts,
    delivered,
    badSignatures,
    server,
  };
}

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function forwardingApp(destinations: Destination[], retryDelaysMs = [50, 100, 200]) {
  const kv = await Deno.openKv(":memory:");
  const forwarder = createForwarder({ kv, destinations, retryDelaysMs });
  const config = parseConfig({ KV_PATH: ":memory:", HOLD_MS: "0" });
  const app = createApp({ kv, config, forwarder, log: () => {} });
  const post = async (body: unknown) => {
    const res = await app.request("/webhooks/thinkific", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
    return { status: res.status, json: await res.json() };
  };
  return { kv, forwarder, app, post };
}

Deno.test("forward: every record delivered once per message id, first try of every fifth message failing", async () => {
  const sign = createSigner(WHSEC);
  const rx = receiver(WHSEC, (nth) => nth % 5 === 0);
  const { kv, forwarder, post } = await forwardingApp([webhookDestination(rx.url, sign)]);
  try {
    const pairs = 30;
    for (let i = 0; i < pairs; i++) {
      const at = BASE_TIME + i * 10_000;
      await post(progressWebhook({ at, user: 1 + (i % 4) }));
      const r = await post(lessonWebhook({ at, user: 1 + (i % 4), lesson: 100 + i }));
      assertEquals(r.json.status, "collated");
    }
    await until(() => rx.delivered.size === pairs);
    await forwarder.sweep();
    assertEquals(rx.badSignatures, []);
    const records = await dump(kv);
    const recordCount = records.filter((e) => e.key[0] === "records" && e.key[1] === "all").length;
    assertEquals(rx.delivered.size, recordCount);
    for (const [id, message] of rx.delivered) {
      const data = message.data as {
        tenant_id: string;
        progress_event_id: string;
        collated_at: string;
      };
      assertEquals(id, messageIdOf(data));
      assertEquals(message.type, "lesson.progress");
      assertEquals(message.timestamp, data.collated_at);
    }
    const retried = [...rx.attempts.values()].filter((n) => n === 2).length;
    assertEquals(retried, pairs / 5, "each failed first try retried under the same id");
    assert([...rx.attempts.values()].every((n) => n <= 2));
  } finally {
    await forwarder.close();
    await rx.server.shutdown();
    kv.close();
  }
});

Deno.test("forward: after the last attempt the entry is dead, listed, and retried on request", async () => {
  const sign = createSigner(WHSEC);
  let up = false;
  const rx = receiver(WHSEC, () => !up);
  const real = webhookDestination(rx.url, sign);
  const failing: Destination = {
    name: "webhook",
    async deliver(entry, signal) {
      if (!up) throw new Error("receiver down");
      await real.deliver(entry, signal);
    },
    close: () => real.close?.(),
  };
  const { kv, forwarder, app, post } = await forwardingApp([failing], [20, 20]);
  try {
    await post(lessonWebhook());
    await post(progressWebhook());
    let dead: { id: string; attempts: number; lastError: string }[] = [];
    await until(async () => {
      const res = await app.request("/api/outbox?status=dead");
      dead = (await res.json()).entries;
      return dead.length === 1;
    });
    assertEquals(dead[0].attempts, 3);
    assertEquals(dead[0].lastError, "receiver down");
    const pending = await (await app.request("/api/outbox?status=pending")).json();
    assertEquals(pending.entries, []);

    up = true;
    const retry = await app.request(`/api/outbox/${dead[0].id}/retry`, { method: "POST" });
    assertEquals(retry.status, 202);
    await retry.body?.cancel();
    await until(() => rx.delivered.size === 1);
    await forwarder.sweep();
    const after = await (await app.request("/api/outbox?status=dead")).json();
    assertEquals(after.entries, []);
    const again = await app.request(`/api/outbox/${dead[0].id}/retry`, { method: "POST" });
    assertEquals(again.status, 409);
    await again.body?.cancel();
    const missing = await app.request("/api/outbox/webhook:msg_1_2/retry", { method: "POST" });
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
    const bad = await app.request("/api/outbox/..%2Fx/retry", { method: "POST" });
    assertEquals(bad.status, 400);
    await bad.body?.cancel();
  } finally {
    await forwarder.close();
    await rx.server.shutdown();
    kv.close();
  }
});

Deno.test("forward: a TypeScript handler runs through the same outbox and retries", async () => {
  const calls: string[] = [];
  let failures = 1;
  const handler = handlerDestination("crm", async (record) => {
    calls.push(record.lesson_event_id);
    if (failures-- > 0) throw new Error("crm is down");
    await Promise.resolve();
  });
  const { kv, forwarder, post } = await forwardingApp([handler]);
  try {
    const lesson = lessonWebhook();
    await post(progressWebhook());
    await post(lesson);
    await until(() => calls.length === 2);
    await forwarder.sweep();
    assertEquals(calls, [lesson.id, lesson.id]);
    const entries = (await dump(kv)).filter((e) => e.key[0] === "outbox");
    assertEquals(entries.map((e) => (e.value as { status: string }).status), ["delivered"]);
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forward: the outbox entry is projected from the record's commit, once", async () => {
  const kv = await Deno.openKv(":memory:");
  const idle = idleForwarder();
  const config = parseConfig({ KV_PATH: ":memory:", HOLD_MS: "0" });
  const app = createApp({ kv, config, forwarder: idle, log: () => {} });
  try {
    for (const body of [lessonWebhook(), progressWebhook()]) {
      const res = await app.request("/webhooks/thinkific", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
      });
      await res.body?.cancel();
    }
    const count = async (prefix: string) =>
      (await dump(kv)).filter((e) => e.key[0] === prefix).length;
    // The record's commit holds its projection entry; the entry is written when it is projected.
    assertEquals([await count("projection"), await count("outbox")], [1, 0]);
    for (let i = 0; i < 2; i++) {
      await projectPending(kv, { destinations: idle.destinations, now: Date.now() });
      assertEquals(await count("projection"), 0);
      assertEquals(await count("outbox"), 1);
      assertEquals(await count("outbox_due"), 1);
    }
  } finally {
    kv.close();
  }
});

Deno.test("forward: two processes sweeping one database never deliver the same attempt twice", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/kv.sqlite3`;
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  const deliveries = new Map<string, number>();
  const counting: Destination = {
    name: "webhook",
    async deliver(entry) {
      deliveries.set(entry.messageId, (deliveries.get(entry.messageId) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 2));
    },
  };
  const h = await harness({}, kvA);
  const a = createForwarder({ kv: kvA, destinations: [counting] });
  const b = createForwarder({ kv: kvB, destinations: [counting] });
  try {
    // Records written with outbox entries for "webhook", nobody sweeping yet.
    const app = createApp({
      kv: kvA,
      config: h.config,
      forwarder: idleForwarder(),
      log: () => {},
    });
    for (let i = 0; i < 40; i++) {
      const at = BASE_TIME + i * 10_000;
      for (const body of [lessonWebhook({ at }), progressWebhook({ at })]) {
        const res = await app.request("/webhooks/thinkific", await signedInit(body));
        await res.body?.cancel();
      }
    }
    await Promise.all([a.sweep(), b.sweep(), a.sweep(), b.sweep()]);
    await until(() => deliveries.size === 40);
    assertEquals(
      [...deliveries.values()].every((n) => n === 1),
      true,
      JSON.stringify([...deliveries]),
    );
  } finally {
    await a.close();
    await b.close();
    kvA.close();
    kvB.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forward: message ids never collide, whatever '_' and '.' the ids contain", () => {
  const id = (t: string, e: string) => messageIdOf({ tenant_id: t, progress_event_id: e });
  const part = fc.stringMatching(/^[\w.-]{1,20}$/);
  const sep = fc.constantFrom("_", ".", "._", "_.", "..", "__");
  fc.assert(
    fc.property(part, sep, part, part, (a, s, b, c) => {
      // The same characters split differently between school and event id.
      return id(`${a}${s}${b}`, c) !== id(a, `${b}${s}${c}`) && /^msg_[\w.-]+$/.test(id(a, b));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(part, part, part, part, (t1, e1, t2, e2) => {
      fc.pre(t1 !== t2 || e1 !== e2);
      return id(t1, e1) !== id(t2, e2);
    }),
    { numRuns: 2000 },
  );
  assertEquals(id("48213", "2026"), "msg_48213_2026", "Thinkific's ids are unchanged");
});

Deno.test("forward: records whose school and event ids read alike both get their own message", async () => {
  const sent: string[] = [];
  const counting: Destination = {
    name: "webhook",
    deliver: (entry) => Promise.resolve(void sent.push(entry.messageId)),
  };
  const { kv, forwarder, app, post } = await forwardingApp([counting]);
  try {
    // msg_a_b_c would be both school "a_b" with event "c" and school "a" with event "b_c".
    for (const [tenant, id] of [["a_b", "c"], ["a", "b_c"]]) {
      await post(lessonWebhook({ tenant, id: `lesson-${id}` }));
      const r = await post(progressWebhook({ tenant, id }));
      assertEquals([r.status, r.json.status], [200, "collated"], JSON.stringify(r.json));
    }
    await until(() => sent.length === 2);
    assertEquals(sent.sort(), ["msg_a.ub_c", "msg_a_b.uc"]);
    for (const id of sent) {
      const res = await app.request(`/api/outbox/webhook:${id}/retry`, { method: "POST" });
      assertEquals(res.status, 409, `webhook:${id} is a valid outbox id, already delivered`);
      await res.body?.cancel();
    }
  } finally {
    await forwarder.close();
    kv.close();
  }
});

/** `promise`, or an error naming `what` when it has not settled after `ms` (a hang guard). */
async function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The app on `kv`, writing records with outbox entries for "webhook" that nobody sweeps (the
 * test's own forwarder does).
 */
async function recordingApp(kv: Deno.Kv) {
  const h = await harness({}, kv);
  return createApp({ kv, config: h.config, forwarder: idleForwarder(), log: () => {} });
}

/** Posts `n` pairs to `app` (new records with outbox entries), from `from` on. */
async function postPairs(app: ReturnType<typeof createApp>, from: number, n: number) {
  for (let i = from; i < from + n; i++) {
    const at = BASE_TIME + i * 10_000;
    for (const body of [lessonWebhook({ at, lesson: 100 + i }), progressWebhook({ at })]) {
      const res = await app.request("/webhooks/thinkific", await signedInit(body));
      await res.body?.cancel();
    }
  }
}

Deno.test("forward: a failed cron sweep is logged, never unhandled, and the next tick delivers", async () => {
  const real = await Deno.openKv(":memory:");
  let down = true;
  const kv = instrumentKv(real, {
    before: () => {
      if (down) throw new Error("disk I/O error");
    },
  });
  const delivered: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [
      handlerDestination("webhook", (r) => Promise.resolve(void delivered.push(r.lesson_event_id))),
    ],
    log: (line) => logs.push(line),
  });
  const ticks: (() => Promise<void>)[] = [];
  sweepEveryMinute(forwarder, (_name, _schedule, handler) => ticks.push(handler));
  try {
    const app = await recordingApp(real);
    await postPairs(app, 0, 1);
    assertEquals(ticks.length, 1);
    await ticks[0](); // the storage fails: the tick resolves, and says so
    assertEquals(delivered, []);
    assert(logs.some((l) => l.level === "error" && l.msg === "forward sweep failed"));
    // Give an unhandled rejection, if any, the chance to surface and fail this test.
    await new Promise((r) => setTimeout(r, 50));
    down = false;
    await ticks[0]();
    assertEquals(delivered.length, 1);
  } finally {
    down = false;
    await forwarder.close();
    real.close();
  }
});

Deno.test("forward: a hung destination times out and never stalls the others", async () => {
  const kv = await Deno.openKv(":memory:");
  const signals: AbortSignal[] = [];
  const hungCalls = new Map<string, number>();
  // Never settles, and ignores its signal.
  const hung = handlerDestination("hung", (record, signal) => {
    signals.push(signal);
    hungCalls.set(record.lesson_event_id, (hungCalls.get(record.lesson_event_id) ?? 0) + 1);
    return new Promise(() => {});
  });
  // Honours its signal: fails when it aborts.
  const slow = handlerDestination(
    "slow",
    (_record, signal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
  );
  const crm: string[] = [];
  const fine = handlerDestination("crm", (r) => Promise.resolve(void crm.push(r.lesson_event_id)));
  const forwarder = createForwarder({
    kv,
    destinations: [hung, slow, fine],
    attemptTimeoutMs: 100,
    retryDelaysMs: [20, 20, 20, 20, 20],
  });
  const h = await harness({}, kv);
  const app = createApp({ kv, config: h.config, forwarder, log: () => {} });
  try {
    await postPairs(app, 0, 3);
    await until(() => crm.length === 3);
    await within(forwarder.sweep(), "a sweep with a hung destination");
    // Later records still go out, while the hung attempts are still running.
    await postPairs(app, 3, 3);
    await until(() => crm.length === 6);
    await until(async () => {
      const entries = (await dump(kv)).filter((e) => e.key[0] === "outbox")
        .map((e) => e.value as { destination: string; attempts: number; lastError: string });
      // Six records for each of the two: an entry each once its first attempt has failed.
      const failing = entries.filter((e) => e.destination !== "crm");
      return failing.length === 12 &&
        failing.every((e) => e.attempts >= 1 && e.lastError === "no answer within 100 ms");
    });
    assert(signals.length >= 6 && signals.every((s) => s.aborted), "every hung attempt aborted");
    await within(forwarder.sweep(), "a later sweep");
    // An attempt still running is not started again beside itself.
    assertEquals([...hungCalls.values()], [1, 1, 1, 1, 1, 1]);
  } finally {
    await within(forwarder.close(), "close");
    kv.close();
  }
});

Deno.test("forward: a kick while a finished sweep reads the next due time is not lost", async () => {
  const real = await Deno.openKv(":memory:");
  // Holds the next read of the due index by prefix (the sweep's look for its next due time)
  // after the read is made, until `release`: the window in which a new entry and its kick come.
  let hold: { read: PromiseWithResolvers<void>; release: PromiseWithResolvers<void> } | null = null;
  const kv = withList(real, (selector, options, db) => {
    const entries = db.list(selector, options);
    const h = hold;
    if (!h || !("prefix" in selector) || selector.prefix[0] !== "outbox_due") return entries;
    hold = null;
    return (async function* () {
      const read = await Array.fromAsync(entries);
      h.read.resolve();
      await h.release.promise;
      yield* read;
    })();
  });
  const delivered: string[] = [];
  const forwarder = createForwarder({
    kv,
    destinations: [
      handlerDestination("webhook", (r) => Promise.resolve(void delivered.push(r.lesson_event_id))),
    ],
  });
  try {
    const app = await recordingApp(real);
    hold = { read: Promise.withResolvers(), release: Promise.withResolvers() };
    const { read, release } = hold;
    const sweep = forwarder.sweep(); // nothing due: it ends by reading the next due time
    await read.promise; // ... which finds nothing
    await postPairs(app, 0, 1); // a record and its outbox entry are committed
    forwarder.kick(); // as the collator does after the commit
    await new Promise((r) => setTimeout(r, 0));
    release.resolve();
    await sweep;
    assertEquals(delivered.length, 1, "the kicked entry is delivered without waiting for the cron");
  } finally {
    await forwarder.close();
    real.close();
  }
});
