/**
 * The forwarder's contract beyond delivery (tests/forward_test.ts): its options are checked with
 * errors saying what is allowed; a sweep resolves with the number of attempts and logs each one's
 * outcome; an entry for a destination this process lacks fails with that reason; at most
 * `maxInFlight` attempts run per destination; `close()` waits for attempts in flight, and a closed
 * forwarder attempts nothing more.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook, SECRET, signedInit } from "./_helpers.ts";
import { projectPending } from "../lib/store/projections.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import {
  createForwarder,
  type Forwarder,
  handlerDestination,
  messageBody,
  RETRY_DELAYS_MS,
  sweepEveryMinute,
  webhookDestination,
} from "../lib/forward/forwarder.ts";
import {
  createSigner,
  importStandardKey,
  verifyMessage,
} from "../lib/forward/standard_webhooks.ts";
import type { OutboxEntry } from "../lib/store/keys.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import type { LogLine } from "./_helpers.ts";

/** A KV database holding one outbox entry per destination for each of `pairs` new records. */
async function outbox(destinations: string[], pairs: number) {
  const kv = await Deno.openKv(":memory:");
  const writer: Forwarder = {
    destinations,
    kick() {},
    sweep: () => Promise.resolve(0),
    tick: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
  const app = createApp({ kv, config, forwarder: writer, log: () => {} });
  for (let i = 0; i < pairs; i++) {
    const at = BASE_TIME + i * 60_000;
    for (const body of [lessonWebhook({ at, lesson: 100 + i }), progressWebhook({ at })]) {
      const res = await app.request("/webhooks/thinkific", await signedInit(body));
      await res.body?.cancel();
    }
  }
  await projectPending(kv, { destinations, now: Date.now() });
  return kv;
}

async function entries(kv: Deno.Kv) {
  const out: { id: string; status: string; attempts: number; lastError: string | null }[] = [];
  for await (const e of kv.list<(typeof out)[number]>({ prefix: ["outbox"] })) out.push(e.value);
  return out;
}

const throwsWith = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return "did not throw";
};

Deno.test("forwarder: options out of range are refused with what is allowed", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const crm = handlerDestination("crm", () => Promise.resolve());
    for (const attemptTimeoutMs of [0, -1, 60_000, 90_000]) {
      assertEquals(
        throwsWith(() => createForwarder({ kv, destinations: [crm], attemptTimeoutMs })),
        "attemptTimeoutMs must be between 0 and the lease (60000 ms)",
        `attemptTimeoutMs ${attemptTimeoutMs}`,
      );
    }
    await createForwarder({ kv, destinations: [crm], attemptTimeoutMs: 59_999 }).close();
    assertEquals(
      throwsWith(() => createForwarder({ kv, destinations: [crm, crm] })),
      "destination names must differ",
    );
    for (const name of ["", "a b", "x".repeat(33), "crm!", "é"]) {
      assertEquals(
        throwsWith(() => handlerDestination(name, () => Promise.resolve())),
        `handler name "${name}": use 1-32 of [A-Za-z0-9_-]`,
      );
    }
    for (const name of ["a", "x".repeat(32), "Crm_2-b"]) {
      assertEquals(handlerDestination(name, () => Promise.resolve()).name, name);
    }
  } finally {
    kv.close();
  }
});

Deno.test("forwarder: a sweep counts its attempts and logs how each ended", async () => {
  const kv = await outbox(["crm"], 3);
  const logs: LogLine[] = [];
  let calls = 0;
  const crm = handlerDestination("crm", () => {
    calls++;
    return calls === 1 ? Promise.reject(new Error("crm down")) : Promise.resolve();
  });
  const forwarder = createForwarder({ kv, destinations: [crm], log: (l) => logs.push(l) });
  try {
    assertEquals(await forwarder.sweep(), 3);
    const lines = logs.filter((l) => l.msg === "forward");
    const failed = lines.filter((l) => l.outcome === "retry");
    assertEquals(failed.length, 1);
    const { id: _, ...rest } = failed[0];
    assertEquals(rest, {
      level: "warn",
      msg: "forward",
      outcome: "retry",
      attempt: 1,
      error: "crm down",
      retry_in_ms: RETRY_DELAYS_MS[0],
    });
    const delivered = lines.filter((l) => l.outcome === "delivered");
    assertEquals(delivered.length, 2);
    for (const l of delivered) {
      assertEquals([l.attempt, typeof l.ms, Number(l.ms) >= 0], [1, "number", true]);
      assertEquals(l.level, undefined);
    }
    const ids = (await entries(kv)).map((e) => e.id).sort();
    assertEquals(lines.map((l) => l.id).sort(), ids);
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder: after the last attempt an entry is dead, logged as an error", async () => {
  const kv = await outbox(["crm"], 1);
  const logs: LogLine[] = [];
  const crm = handlerDestination("crm", () => Promise.reject(new Error("gone")));
  const forwarder = createForwarder({
    kv,
    destinations: [crm],
    retryDelaysMs: [],
    log: (l) => logs.push(l),
  });
  try {
    assertEquals(await forwarder.sweep(), 1);
    const line = logs.find((l) => l.msg === "forward")!;
    assertEquals(
      [line.level, line.outcome, line.attempt, line.retry_in_ms, line.error],
      ["error", "dead", 1, null, "gone"],
    );
    assertEquals((await entries(kv)).map((e) => [e.status, e.lastError]), [["dead", "gone"]]);
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder: an entry for a destination this process lacks fails saying so", async () => {
  const kv = await outbox(["gone"], 1);
  const crm = handlerDestination("crm", () => Promise.resolve());
  const forwarder = createForwarder({ kv, destinations: [crm], log: () => {} });
  try {
    assertEquals(await forwarder.sweep(), 1);
    const [e] = await entries(kv);
    assertEquals([e.status, e.attempts, e.lastError], [
      "pending",
      1,
      'no destination "gone" in this process',
    ]);
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder: at most maxInFlight attempts run at once per destination", async () => {
  const kv = await outbox(["crm", "erp"], 6);
  let running = 0;
  let most = 0;
  const gates: (() => void)[] = [];
  const slow = (name: string) =>
    handlerDestination(name, async () => {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
    });
  const forwarder = createForwarder({
    kv,
    destinations: [slow("crm"), slow("erp")],
    maxInFlight: 2,
    log: () => {},
  });
  try {
    const swept = forwarder.sweep();
    // Release attempts one by one as they come; never more than 2 per destination at once.
    let released = 0;
    while (released < 12) {
      if (gates.length === 0) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      await new Promise((r) => setTimeout(r, 5));
      gates.shift()!();
      released++;
    }
    assertEquals(await swept, 12);
    assertEquals(most, 4, "2 for each destination");
    assert((await entries(kv)).every((e) => e.status === "delivered"));
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder: close() waits for the attempts in flight; a closed forwarder attempts nothing more", async () => {
  const kv = await outbox(["crm"], 2);
  let calls = 0;
  let release = () => {};
  const crm = handlerDestination("crm", async () => {
    calls++;
    await new Promise<void>((r) => (release = r));
  });
  const forwarder = createForwarder({ kv, destinations: [crm], maxInFlight: 1, log: () => {} });
  try {
    const swept = forwarder.sweep();
    while (calls === 0) await new Promise((r) => setTimeout(r, 5));
    let closed = false;
    const closing = forwarder.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(closed, false, "close waits for the attempt in flight");
    release();
    await closing;
    assertEquals(await swept, 1, "no attempt started after close");
    forwarder.kick();
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(calls, 1);
  } finally {
    kv.close();
  }
});

Deno.test("forwarder: work that arrives while a destination hangs is started without waiting for it", async () => {
  const kv = await outbox(["slow", "fast"], 1);
  const hanging: (() => void)[] = [];
  const releaseSlow = () => hanging.splice(0).forEach((r) => r());
  const fastDone: string[] = [];
  const slow = handlerDestination("slow", () => new Promise<void>((r) => hanging.push(r)));
  const fast = handlerDestination("fast", (record) => {
    fastDone.push(record.lesson_event_id);
    return Promise.resolve();
  });
  const forwarder = createForwarder({ kv, destinations: [slow, fast], log: () => {} });
  try {
    const swept = forwarder.sweep();
    while (fastDone.length < 1) await new Promise((r) => setTimeout(r, 5));
    // The sweep still runs (slow hangs) when a new record for both destinations comes in.
    const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
    const app = createApp({ kv, config, forwarder, log: () => {} });
    const at = BASE_TIME + 3_600_000;
    for (const body of [lessonWebhook({ at, lesson: 900 }), progressWebhook({ at })]) {
      const res = await app.request("/webhooks/thinkific", await signedInit(body));
      await res.body?.cancel();
    }
    for (let i = 0; i < 400 && fastDone.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assertEquals(fastDone.length, 2, "the new record reached fast while slow still hangs");
    while (hanging.length < 2) await new Promise((r) => setTimeout(r, 5));
    releaseSlow();
    assertEquals(await swept, 4);
  } finally {
    releaseSlow();
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder: the webhook destination POSTs the signed JSON message, and a non-2xx fails it", async () => {
  const secret = `whsec_${btoa("k".repeat(32))}`;
  const key = await importStandardKey(secret);
  const sent: { url: string; init: RequestInit }[] = [];
  let status = 200;
  const fetchStub = (url: string | URL | Request, init?: RequestInit) => {
    sent.push({ url: String(url), init: init! });
    return Promise.resolve(new Response("ok", { status }));
  };
  const destination = webhookDestination("https://crm.example/hook", createSigner(secret), {
    fetch: fetchStub as typeof fetch,
    now: () => 1_700_000_000_000,
  });
  assertEquals(destination.name, "webhook");
  const kv = await outbox(["webhook"], 1);
  try {
    const [entry] = await entries(kv) as unknown as OutboxEntry[];
    const attempt = new AbortController();
    await destination.deliver(entry, attempt.signal);
    const { url, init } = sent[0];
    assertEquals([url, init.method], ["https://crm.example/hook", "POST"]);
    const headers = init.headers as Record<string, string>;
    assertEquals(headers["content-type"], "application/json");
    assertEquals(init.body, messageBody(entry.record));
    assertEquals(headers["webhook-id"], entry.messageId);
    assertEquals(headers["webhook-timestamp"], "1700000000");
    assert(
      await verifyMessage(key, {
        id: headers["webhook-id"],
        timestamp: headers["webhook-timestamp"],
        signature: headers["webhook-signature"],
      }, String(init.body)),
    );
    // Once answered, the request no longer follows the attempt's signal.
    attempt.abort(new Error("too late"));
    assertEquals(init.signal?.aborted, false);
    // The attempt's signal reaches the request while it runs, with its reason.
    const hanging = webhookDestination("https://crm.example/hook", createSigner(secret), {
      fetch: ((_url: string, init: RequestInit) =>
        new Promise((_, reject) => {
          init.signal!.addEventListener("abort", () => reject(init.signal!.reason));
        })) as typeof fetch,
    });
    const running = new AbortController();
    const hung = hanging.deliver(entry, running.signal).catch((e: Error) => e.message);
    running.abort(new Error("deadline"));
    assertEquals(await hung, "deadline");
    const over = new AbortController();
    over.abort(new Error("already over"));
    assertEquals(await hanging.deliver(entry, over.signal).catch((e) => e.message), "already over");
    status = 500;
    let error = "";
    await destination.deliver(entry, new AbortController().signal).catch((e) => error = e.message);
    assertEquals(error, "HTTP 500");
  } finally {
    kv.close();
  }
});

Deno.test("forwarder: Deno.cron sweeps every minute", () => {
  const crons: [string, string][] = [];
  const forwarder: Forwarder = {
    destinations: [],
    kick() {},
    sweep: () => Promise.resolve(0),
    tick: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  sweepEveryMinute(forwarder, (name, schedule) => crons.push([name, schedule]));
  assertEquals(crons, [["forward due outbox entries", "* * * * *"]]);
});

Deno.test("forwarder: an attempt failing after its deadline is no unhandled rejection", async () => {
  const kv = await outbox(["crm"], 1);
  const late = handlerDestination(
    "crm",
    () => new Promise((_, reject) => setTimeout(() => reject(new Error("too late")), 80)),
  );
  const forwarder = createForwarder({
    kv,
    destinations: [late],
    attemptTimeoutMs: 20,
    log: () => {},
  });
  try {
    assertEquals(await forwarder.sweep(), 1);
    await new Promise((r) => setTimeout(r, 150));
    const [e] = await entries(kv);
    assertEquals(e.lastError, "no answer within 20 ms");
  } finally {
    await forwarder.close();
    kv.close();
  }
});

Deno.test("forwarder: when recording attempts fails, it logs an error and those entries stay pending", async () => {
  const real = await outbox(["crm"], 2);
  let commits = 0;
  const kv = instrumentKv(real, {
    before(c) {
      // The lease commits first; recording the two attempts' ends is the next commit.
      if (c === "commit" && ++commits === 2) throw new Error("disk full");
    },
  });
  const logs: LogLine[] = [];
  const crm = handlerDestination("crm", () => Promise.resolve());
  const forwarder = createForwarder({ kv, destinations: [crm], log: (l) => logs.push(l) });
  try {
    assertEquals(await forwarder.sweep(), 2);
    const failed = logs.filter((l) => l.msg === "forward settle failed");
    assertEquals(failed.length, 1);
    assertEquals([failed[0].level, failed[0].error], ["error", "Error: disk full"]);
    // The ends that could not be recorded leave their entries pending (due when the lease ends).
    const pending = (await entries(real)).filter((e) => e.status === "pending");
    assertEquals(pending.length, failed[0].entries);
  } finally {
    await forwarder.close();
    real.close();
  }
});
