/**
 * Forwarding's documented limits (README, "Forwarding"; lib/forward/forwarder.ts): a process runs
 * up to 64 attempts at once per destination, and each attempt has 30 s before its `AbortSignal`
 * aborts and it counts as failed. The numbers are written out here, not imported.
 */
import { assert, assertEquals } from "./_assert.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import { addOutboxEntries } from "../lib/store/outbox.ts";
import { createForwarder, type Destination } from "../lib/forward/forwarder.ts";

const NOW = Date.parse("2026-11-29T12:00:00.000Z");

/** A database with `count` entries due for the destination "crm". */
async function dueEntries(count: number): Promise<Deno.Kv> {
  const kv = await Deno.openKv(":memory:");
  for (let n = 0; n < count; n++) {
    const record = { tenant_id: "48213", progress_event_id: `p${n}` } as LessonProgressRecord;
    const op = kv.atomic();
    addOutboxEntries(op, record, ["crm"], NOW - 1_000);
    await op.commit();
  }
  return kv;
}

const tick = () => new Promise((r) => setTimeout(r, 10));

Deno.test("limits: at most 64 attempts run at once for one destination", async () => {
  const kv = await dueEntries(65);
  let running = 0;
  let open = false;
  const gates: (() => void)[] = [];
  const release = () => {
    open = true;
    gates.splice(0).forEach((go) => go());
  };
  const crm: Destination = {
    name: "crm",
    async deliver() {
      running++;
      if (!open) await new Promise<void>((r) => gates.push(r));
      running--;
    },
  };
  const forwarder = createForwarder({ kv, destinations: [crm], now: () => NOW, log: () => {} });
  try {
    const swept = forwarder.sweep();
    // Wait until no more attempts start.
    for (let seen = -1; seen !== running;) {
      seen = running;
      for (let i = 0; i < 5; i++) await tick();
    }
    assertEquals(running, 64);
    release();
    assertEquals(await swept, 65);
  } finally {
    release();
    await forwarder.close();
    kv.close();
  }
});

Deno.test("limits: an attempt that does not answer is aborted after 30 s and counts as failed", async () => {
  const kv = await dueEntries(1);
  const realSetTimeout = globalThis.setTimeout;
  const scheduled: number[] = [];
  // Timers of 20 s or more (the attempt's deadline) fire at once; the delay asked is noted.
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    if ((ms ?? 0) < 20_000) return realSetTimeout(fn, ms);
    scheduled.push(ms!);
    return realSetTimeout(fn, 0);
  }) as typeof setTimeout;
  const reasons: string[] = [];
  const hung: Destination = {
    name: "crm",
    deliver: (_entry, signal) =>
      new Promise<void>((_, reject) => {
        signal.addEventListener("abort", () => {
          reasons.push(String((signal.reason as Error).message));
          reject(signal.reason);
        });
      }),
  };
  const forwarder = createForwarder({ kv, destinations: [hung], now: () => NOW, log: () => {} });
  try {
    assertEquals(await forwarder.sweep(), 1);
    assertEquals(reasons, ["no answer within 30000 ms"]);
    assert(scheduled.includes(30_000), `deadlines asked: ${scheduled}`);
    const [entry] = await Array.fromAsync(kv.list<{ attempts: number; lastError: string }>({
      prefix: ["outbox"],
    }));
    assertEquals([entry.value.attempts, entry.value.lastError], [1, "no answer within 30000 ms"]);
  } finally {
    globalThis.setTimeout = realSetTimeout;
    await forwarder.close();
    kv.close();
  }
});
