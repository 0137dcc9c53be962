/**
 * Storage faults: a read or a commit that fails answers 503 with Retry-After (the sender retries),
 * leaves nothing half-written, and the next delivery succeeds.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { dump, harness, lessonWebhook, progressWebhook, signedInit } from "./_helpers.ts";
import { instrumentKv, type KvCall } from "../lib/store/instrument.ts";

/** A KV handle whose `n`-th call of kind `call` throws (once). */
async function faultyKv(fail: { call: KvCall; n: number } | null) {
  const real = await Deno.openKv(":memory:");
  const seen: Record<KvCall, number> = { get: 0, getMany: 0, list: 0, commit: 0 };
  const kv = instrumentKv(real, {
    before(call) {
      seen[call]++;
      if (fail && call === fail.call && seen[call] === fail.n) {
        throw new Error(`injected ${call} failure`);
      }
    },
  });
  return { kv, real, seen, disarm: () => (fail = null) };
}

/**
 * Faults while a lesson then its progress arrive: 1 getMany, 2 lists and 2 commits in all (the
 * progress decides from what the lesson's commit left, see `lib/store/warm.ts`); with
 * `warm: false`, 2 getMany, 4 lists and 2 commits.
 */
const faults: { call: KvCall; n: number; cold?: true }[] = [
  { call: "getMany", n: 1 },
  { call: "list", n: 1 },
  { call: "list", n: 2 },
  { call: "commit", n: 1 },
  { call: "commit", n: 2 },
  { call: "getMany", n: 2, cold: true },
  { call: "list", n: 3, cold: true },
  { call: "list", n: 4, cold: true },
];

for (const fault of faults) {
  Deno.test(`storage fault: ${fault.call} #${fault.n}${fault.cold ? " (no warm views)" : ""} fails → 503, nothing half-written, retry works`, async () => {
    const { kv, real, disarm } = await faultyKv(fault);
    const h = await harness({}, kv, fault.cold ? { warm: false } : undefined);
    try {
      const lesson = lessonWebhook();
      const progress = progressWebhook();
      const answers = [];
      for (const body of [lesson, progress]) {
        const before = await dump(real);
        const r = await h.post(body);
        answers.push(r.status);
        if (r.status === 503) {
          assertMatch(String(r.json.error), /retry/);
          assertEquals(await dump(real), before, "a failed delivery writes nothing");
          disarm();
          const again = await h.post(body);
          assertEquals(again.status, 200, JSON.stringify(again.json));
        }
      }
      assertEquals(answers.filter((s) => s === 503).length, 1, `answers ${answers}`);
      const records = (await h.get("/api/records")).json.records as unknown[];
      assertEquals(records.length, 1);
    } finally {
      real.close();
    }
  });
}

Deno.test("storage fault: 503 carries Retry-After", async () => {
  const { kv, real } = await faultyKv({ call: "commit", n: 1 });
  const h = await harness({}, kv);
  try {
    const res = await h.app.request("/webhooks/thinkific", await signedInit(lessonWebhook()));
    assertEquals(res.status, 503);
    assertEquals(res.headers.get("retry-after"), "5");
    await res.body?.cancel();
    const errors = h.logs.filter((l) => l.level === "error");
    assertEquals(errors.length, 1);
  } finally {
    real.close();
  }
});

Deno.test("storage fault: a failing read of the records API is a 503, not a 500", async () => {
  const { kv, real } = await faultyKv({ call: "list", n: 1 });
  const h = await harness({}, kv);
  try {
    const r = await h.get("/api/records");
    assertEquals(r.status, 503);
  } finally {
    real.close();
  }
});

Deno.test("round trips: a first delivery makes at most 4 KV calls, its counterpart's delivery 1", async () => {
  const { kv, real, seen } = await faultyKv(null);
  const h = await harness({}, kv);
  try {
    const total = () => seen.get + seen.getMany + seen.list + seen.commit;
    const per: number[] = [];
    const counterparts: number[] = [];
    for (let i = 0; i < 20; i++) {
      const at = Date.parse("2026-11-02T14:15:12.334Z") + i * 5_000;
      const lesson = lessonWebhook({ at });
      const progress = progressWebhook({ at });
      // Half lesson first; half progress first (409), then the lesson, then the progress retry.
      const order = i % 2 ? [lesson, progress] : [progress, lesson, progress];
      for (const [j, body] of order.entries()) {
        const before = total();
        const r = await h.post(body);
        assert(r.status === 200 || r.status === 409);
        per.push(total() - before);
        if (j === 1) counterparts.push(total() - before);
      }
    }
    // A getMany and two lists at once, then a commit; the counterpart: its commit alone.
    assertEquals(Math.max(...per) <= 4, true, `KV calls per webhook: ${per}`);
    assertEquals(counterparts, Array(20).fill(1));
  } finally {
    real.close();
  }
});
