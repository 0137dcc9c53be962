/**
 * The forwarder's retry schedule, on a controlled clock: after the n-th failed attempt an entry is
 * due again `RETRY_DELAYS_MS[n - 1]` later (10 s, 30 s, 2 min, … 1 day), not sooner, and dead after
 * the last.
 */
import { assertEquals } from "./_assert.ts";
import { harness, lessonWebhook, progressWebhook, signedInit } from "./_helpers.ts";
import { createApp } from "../lib/http/app.ts";
import { createForwarder, handlerDestination, RETRY_DELAYS_MS } from "../lib/forward/forwarder.ts";

interface Entry {
  status: string;
  attempts: number;
  dueAt: number;
  lastError: string | null;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("forward schedule: each failure waits its own delay, and the last one is dead", async () => {
  assertEquals(RETRY_DELAYS_MS, [
    10_000,
    30_000,
    120_000,
    600_000,
    1_800_000,
    3_600_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
  ]);
  const kv = await Deno.openKv(":memory:");
  let calls = 0;
  const failing = handlerDestination("crm", () => {
    calls++;
    return Promise.reject(new Error("crm down"));
  });
  const h = await harness({}, kv);
  const forwarder = createForwarder({ kv, destinations: [failing], now: () => h.clock.now });
  const app = createApp({ kv, config: h.config, forwarder, log: () => {}, now: () => h.clock.now });
  const entry = async () => {
    const entries: Entry[] = [];
    for await (const e of kv.list<Entry>({ prefix: ["outbox"] })) entries.push(e.value);
    assertEquals(entries.length, 1);
    return entries[0];
  };
  try {
    assertEquals((await h.post(lessonWebhook())).status, 200);
    // The harness's app has no forwarder: the record is made through the forwarding app.
    const res = await app.request("/webhooks/thinkific", await signedInit(progressWebhook()));
    assertEquals((await res.json()).status, "collated");
    await forwarder.sweep();
    await until(async () => (await entry()).attempts === 1);
    for (let n = 1; n <= RETRY_DELAYS_MS.length; n++) {
      const e = await entry();
      assertEquals(e.status, "pending");
      assertEquals(e.attempts, n);
      assertEquals(e.lastError, "crm down");
      assertEquals(e.dueAt - h.clock.now, RETRY_DELAYS_MS[n - 1], `wait after failure ${n}`);
      // One millisecond early: nothing is attempted.
      h.clock.now = e.dueAt - 1;
      await forwarder.sweep();
      assertEquals(calls, n, `no attempt before the wait after failure ${n} is over`);
      h.clock.now = e.dueAt;
      await forwarder.sweep();
      await until(async () => (await entry()).attempts === n + 1);
    }
    const dead = await entry();
    assertEquals(dead.status, "dead");
    assertEquals(dead.attempts, RETRY_DELAYS_MS.length + 1);
    assertEquals(calls, RETRY_DELAYS_MS.length + 1);
  } finally {
    await forwarder.close();
    h.close();
    kv.close();
  }
});
