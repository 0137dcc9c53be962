/**
 * Section 3: KV round trips per webhook on the common path, counted in-process through
 * `instrumentKv` under the real application.
 *
 * Scenario A: lesson first (stored), then progress (pairs). Scenario B: progress first (409), then
 * lesson (pairs), then the progress retry (200). Scenario C (for reference, not the common path):
 * a redelivery of an already paired lesson.
 *
 * Two figures per webhook: KV calls (each `get`, `getMany`, `list`, `commit`) and sequential
 * waits (calls issued while another is in flight, e.g. under `Promise.all`, share one wait).
 * @module
 */
import { serialize } from "node:v8";
import { parseConfig } from "../lib/config.ts";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/log.ts";
import type { KvCall } from "../lib/store/instrument.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { type Delivery, deliveryInit, makeLoad } from "./_load.ts";
import { BENCH_SECRET } from "./_proc.ts";

const KINDS: KvCall[] = ["get", "getMany", "list", "commit"];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Round trips of one step over all its webhooks. */
export interface StepCount {
  step: string;
  expectStatus: number;
  webhooks: number;
  /** KV calls per webhook. */
  mean: number;
  max: number;
  /** Sequential waits on KV per webhook. */
  waitsMean: number;
  waitsMax: number;
  /** Mutations (set, sum, max, delete …) and checks in its successful commit, mean. */
  mutationsMean: number;
  checksMean: number;
  /** Deno Deploy write units (1 KiB per key written) and read units (4 KiB per key read), mean. */
  writeUnitsMean: number;
  readUnitsMean: number;
  /** Mean per webhook, by call kind. */
  byKind: Record<KvCall, number>;
  /** Webhooks answered otherwise than expected. */
  unexpected: number;
}

export interface RoundTrips {
  pairs: number;
  steps: StepCount[];
  /** Over every webhook of scenarios A and B. */
  commonMean: number;
  commonMax: number;
  commonWaitsMean: number;
  commonWaitsMax: number;
}

export interface Tracked {
  inflight: number;
  waits: number;
  mutations: number;
  checks: number;
  /** Deno Deploy's billing units: a write unit per KiB written per key, a read unit per 4 KiB read. */
  writeUnits: number;
  readUnits: number;
}

/** A {@linkcode Tracked} with nothing counted yet. */
export const noneTracked = (): Tracked => ({
  inflight: 0,
  waits: 0,
  mutations: 0,
  checks: 0,
  writeUnits: 0,
  readUnits: 0,
});

/** Bytes of a value as Deno KV stores it (V8 serialization; raw bytes as they are). */
function storedBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (value instanceof Deno.KvU64) return 8;
  return serialize(value).byteLength;
}

function keyBytesOf(key: Deno.KvKey): number {
  return serialize(key).byteLength;
}

const readUnitsOf = (e: Deno.KvEntryMaybe<unknown>) =>
  e.versionstamp === null ? 0 : Math.max(1, Math.ceil(storedBytes(e.value) / 4096));

/**
 * Counts sequential waits (a call started while none is in flight begins a new one), and the
 * mutations, checks and billing units of each successful commit and each read.
 */
export function trackWaits(kv: Deno.Kv, s: Tracked): Deno.Kv {
  const track = <T>(run: () => Promise<T>): Promise<T> => {
    if (s.inflight === 0) s.waits++;
    s.inflight++;
    return run().finally(() => s.inflight--);
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "get" || prop === "getMany") {
        const fn = Reflect.get(target, prop, target) as (...a: unknown[]) => Promise<unknown>;
        return (...args: unknown[]) =>
          track(() => fn.apply(target, args)).then((got) => {
            const entries = (Array.isArray(got) ? got : [got]) as Deno.KvEntryMaybe<unknown>[];
            for (const e of entries) s.readUnits += readUnitsOf(e);
            return got;
          });
      }
      if (prop === "list") {
        return (...args: Parameters<Deno.Kv["list"]>) => {
          const iter = target.list(...args);
          let first = true;
          return {
            [Symbol.asyncIterator]() {
              return this;
            },
            next: () => {
              const counted = (r: IteratorResult<Deno.KvEntry<unknown>>) => {
                if (!r.done) s.readUnits += readUnitsOf(r.value);
                return r;
              };
              if (!first) return iter.next().then(counted);
              first = false; // one batch: later steps of a short list cost no round trip
              return track(() => iter.next()).then(counted);
            },
            get cursor() {
              return iter.cursor;
            },
          };
        };
      }
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          let mutations = 0;
          let checks = 0;
          let units = 0;
          const unitsOf = (key: Deno.KvKey, value?: unknown) =>
            Math.max(
              1,
              Math.ceil((keyBytesOf(key) + (value === undefined ? 0 : storedBytes(value))) / 1024),
            );
          const proxy: Deno.AtomicOperation = new Proxy(op, {
            get(o, name) {
              if (name === "commit") {
                return () =>
                  track(() => o.commit()).then((res) => {
                    if (res.ok) {
                      s.mutations += mutations;
                      s.checks += checks;
                      s.writeUnits += units;
                    }
                    return res;
                  });
              }
              const value = Reflect.get(o, name, o);
              if (typeof value !== "function") return value;
              return (...args: unknown[]) => {
                if (name === "check") checks += args.length;
                else if (name === "mutate") {
                  for (const m of args as Deno.KvMutation[]) {
                    mutations++;
                    units += unitsOf(m.key, "value" in m ? m.value : undefined);
                  }
                } else if (["set", "sum", "min", "max", "delete"].includes(String(name))) {
                  mutations++;
                  units += unitsOf(args[0] as Deno.KvKey, name === "delete" ? undefined : args[1]);
                }
                const result = value.apply(o, args);
                return result === o ? proxy : result;
              };
            },
          });
          return proxy;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export async function countRoundTrips(pairs: number): Promise<RoundTrips> {
  const dir = await Deno.makeTempDir({ prefix: "bench-roundtrips-" });
  const counts: Record<KvCall, number> = { get: 0, getMany: 0, list: 0, commit: 0 };
  const raw = await Deno.openKv(`${dir}/kv.sqlite3`);
  const waits = noneTracked();
  const kv = instrumentKv(trackWaits(raw, waits), { before: (call) => void counts[call]++ });
  // Sequential deliveries: a held progress would only wait out HOLD_MS here.
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: BENCH_SECRET, HOLD_MS: "0" });
  const app = createApp({ kv, config, log: silentLogger });

  const steps = new Map<
    string,
    {
      expect: number;
      n: number[];
      w: number[];
      m: number[];
      c: number[];
      wu: number[];
      ru: number[];
      kinds: number[][];
      bad: number;
    }
  >();
  const post = async (step: string, d: Delivery, expect: number) => {
    const before = KINDS.map((k) => counts[k]);
    const waitsBefore = waits.waits;
    const mutationsBefore = waits.mutations;
    const checksBefore = waits.checks;
    const wuBefore = waits.writeUnits;
    const ruBefore = waits.readUnits;
    const res = await app.request("/webhooks/thinkific", deliveryInit(d));
    await res.arrayBuffer();
    const delta = KINDS.map((k, i) => counts[k] - before[i]);
    const s = steps.get(step) ??
      { expect, n: [], w: [], m: [], c: [], wu: [], ru: [], kinds: [], bad: 0 };
    s.wu.push(waits.writeUnits - wuBefore);
    s.ru.push(waits.readUnits - ruBefore);
    s.m.push(waits.mutations - mutationsBefore);
    s.c.push(waits.checks - checksBefore);
    s.n.push(delta.reduce((a, b) => a + b, 0));
    s.w.push(waits.waits - waitsBefore);
    s.kinds.push(delta);
    if (res.status !== expect) s.bad++;
    steps.set(step, s);
  };

  try {
    const load = await makeLoad({ pairs: 2 * pairs, seed: 5, secret: BENCH_SECRET, overlap: 0 });
    const byId = new Map(load.deliveries.map((d) => [d.eventId, d]));
    for (let i = 0; i < load.pairs.length; i++) {
      const p = load.pairs[i];
      const lesson = byId.get(p.lessonEventId)!;
      const progress = byId.get(p.progressEventId)!;
      if (i % 2 === 0) {
        await post("A1 lesson first (stored)", lesson, 200);
        await post("A2 progress (pairs)", progress, 200);
        if (i % 10 === 0) await post("C  redelivered lesson, paired", lesson, 200);
      } else {
        await post("B1 progress first (409)", progress, 409);
        await post("B2 lesson (pairs)", lesson, 200);
        await post("B3 progress retry (200)", progress, 200);
      }
    }
  } finally {
    raw.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  const out: StepCount[] = [...steps.entries()].sort(([a], [b]) => a.localeCompare(b)).map(
    ([step, s]) => ({
      step,
      expectStatus: s.expect,
      webhooks: s.n.length,
      mean: s.n.reduce((a, b) => a + b, 0) / s.n.length,
      max: Math.max(...s.n),
      waitsMean: s.w.reduce((a, b) => a + b, 0) / s.w.length,
      waitsMax: Math.max(...s.w),
      mutationsMean: mean(s.m),
      checksMean: mean(s.c),
      writeUnitsMean: mean(s.wu),
      readUnitsMean: mean(s.ru),
      byKind: Object.fromEntries(
        KINDS.map((k, i) => [k, s.kinds.reduce((a, row) => a + row[i], 0) / s.kinds.length]),
      ) as Record<KvCall, number>,
      unexpected: s.bad,
    }),
  );
  const commonSteps = [...steps.entries()].filter(([k]) => !k.startsWith("C"));
  const common = commonSteps.flatMap(([, s]) => s.n);
  const commonWaits = commonSteps.flatMap(([, s]) => s.w);
  return {
    pairs,
    steps: out,
    commonMean: common.reduce((a, b) => a + b, 0) / common.length,
    commonMax: Math.max(...common),
    commonWaitsMean: commonWaits.reduce((a, b) => a + b, 0) / commonWaits.length,
    commonWaitsMax: Math.max(...commonWaits),
  };
}
