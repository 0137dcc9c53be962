/**
 * Section 4: the cost of one pairing as stored data grows. A KV file is seeded with events written
 * directly by `insertEvent` (batched atomic commits), for many tenants, users and courses spread
 * over 30 days; then fresh users' pairings (lesson, then progress, equal timestamps) go through
 * the real application in-process and are timed. The file grows from one size to the next.
 * @module
 */
import { parseConfig } from "../lib/config.ts";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/log.ts";
import { CommitPlan } from "../lib/store/plan.ts";
import { insertEvent } from "../lib/store/events.ts";
import type { StoredEvent } from "../lib/store/keys.ts";
import { importSigningKey, signBody } from "../lib/thinkific/signature.ts";
import { BASE_TIME, LESSON, lessonBody, type PairSpec, PROGRESS, progressBody } from "./_load.ts";
import { BENCH_SECRET } from "./_proc.ts";
import { quantile, randInt, rng } from "./_stats.ts";

const TENANTS = 50;
const COURSES = 12;
const SPREAD_MS = 30 * 86_400_000;
/** Pairs per commit: 5 mutations and ~2.4 KB a pair, under 1,000 mutations, 80 KB of keys and
 * 800 KB per commit. */
const PAIRS_PER_COMMIT = 150;
const RETENTION_MS = 30 * 86_400_000;

/** One measured size. */
export interface GrowthPoint {
  events: number;
  seedMs: number;
  fileBytes: number;
  pairings: number;
  /** Lesson + progress, ms. */
  p50Ms: number;
  p99Ms: number;
  /** The pairing request (the progress) alone, ms. */
  progressP50Ms: number;
  lessonP50Ms: number;
  /** Per pairing: time waiting on KV reads and on commits (p50), the rest is in JS. */
  kvReadP50Ms: number;
  kvCommitP50Ms: number;
}

export interface Growth {
  points: GrowthPoint[];
  /** p50 at the largest size / p50 at the smallest (target <= 1.3). */
  ratio: number;
  totalSeedMs: number;
}

const encoder = new TextEncoder();

/** The two stored events of a seeded pair (with their raw bodies), as the collator stores them. */
export function storedPair(
  p: PairSpec,
  paired: boolean,
  receivedAt: number,
): { event: StoredEvent; body: Uint8Array }[] {
  const l = lessonBody(p);
  const g = progressBody(p);
  const common = {
    tenantId: p.tenant,
    userId: p.user,
    courseId: p.course,
    at: p.at,
    receivedAt,
    deliveries: 1,
    gaveUpAt: null,
    recordAt: null,
  };
  const lesson: StoredEvent = {
    ...common,
    id: l.id,
    topic: LESSON,
    facts: {
      kind: "lesson",
      userEmail: l.payload.user.email,
      courseName: l.payload.course.name,
      enrollmentId: l.payload.enrollment.id,
      lessonId: l.payload.lesson.id,
      lessonName: l.payload.lesson.name,
      lessonType: l.payload.lesson.type,
      lessonPosition: l.payload.lesson.position,
      chapterId: l.payload.chapter.id,
      chapterName: l.payload.chapter.name,
    },
    pairedWith: paired ? g.id : null,
  };
  const progress: StoredEvent = {
    ...common,
    id: g.id,
    topic: PROGRESS,
    facts: {
      kind: "progress",
      userEmail: g.payload.user.email,
      courseName: g.payload.course.name,
      enrollmentId: g.payload.id,
      percentage: Number(g.payload.percentage_completed),
    },
    pairedWith: paired ? l.id : null,
  };
  return [
    { event: lesson, body: encoder.encode(JSON.stringify(l)) },
    { event: progress, body: encoder.encode(JSON.stringify(g)) },
  ];
}

/** Where and when a pair happens: seeded users are even, measured fresh users odd. */
function pairAt(random: () => number, fresh: boolean, usersPerTenant: number): PairSpec {
  return {
    tenant: String(30_000 + randInt(random, 0, TENANTS - 1)),
    user: 6_000_000 + 2 * randInt(random, 0, usersPerTenant - 1) + (fresh ? 1 : 0),
    course: 2_100_000 + randInt(random, 0, COURSES - 1),
    at: BASE_TIME - SPREAD_MS + Math.floor(random() * SPREAD_MS),
    lessonId: 24_000 + randInt(random, 0, 999),
    percentage: String(randInt(random, 1, 40) * 2.5),
    lessonEventId: "",
    progressEventId: "",
  };
}

const idOf = (prefix: string, n: number) => `${prefix}${String(n).padStart(13, "0")}`;

/**
 * Seeds pairs `from..to`. The pairs are random; they are written in key order (tenant, user,
 * course, time, with ids given in that order), so each commit appends to a few B-tree pages
 * instead of touching hundreds: the same data, stored several times faster.
 */
async function seed(
  kv: Deno.Kv,
  from: number,
  to: number,
  random: () => number,
  usersPerTenant: number,
): Promise<void> {
  const receivedAt = Date.now();
  const pairs: PairSpec[] = [];
  for (let j = from; j < to; j++) pairs.push(pairAt(random, false, usersPerTenant));
  pairs.sort((a, b) =>
    a.tenant.localeCompare(b.tenant) || a.user - b.user || a.course - b.course || a.at - b.at
  );
  for (const [i, p] of pairs.entries()) {
    p.lessonEventId = idOf("2026100100", 2 * (from + i));
    p.progressEventId = idOf("2026100100", 2 * (from + i) + 1);
  }
  for (let i = 0; i < pairs.length; i += PAIRS_PER_COMMIT) {
    const plan = new CommitPlan();
    for (const p of pairs.slice(i, i + PAIRS_PER_COMMIT)) {
      // 98% of stored history is paired; the rest waits for a counterpart that never came.
      const paired = random() < 0.98;
      for (const e of storedPair(p, paired, receivedAt)) {
        insertEvent(plan, e.event, e.body, RETENTION_MS);
      }
    }
    // `insertEvent` adds a uniqueness check per event; Deno KV allows 100 checks per commit.
    // Seeded ids are unique by construction, so the seeder drops the checks to batch more.
    plan.checks.length = 0;
    const res = await plan.applyTo(kv.atomic()).commit();
    if (!res.ok) throw new Error("seed commit failed");
  }
}

/** Milliseconds spent waiting on KV, by kind, since the last reset. */
interface KvTime {
  read: number;
  commit: number;
}

/**
 * Wraps a KV handle to time its round trips (reads: `get`, `getMany`, every step of a `list`;
 * writes: `commit`), so the growth of a pairing's time can be put where it belongs.
 */
function timedKv(kv: Deno.Kv, t: KvTime): Deno.Kv {
  const timed = <T>(p: Promise<T>, kind: keyof KvTime): Promise<T> => {
    const started = performance.now();
    return p.finally(() => (t[kind] += performance.now() - started));
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "get" || prop === "getMany") {
        return (...args: unknown[]) =>
          timed(
            (Reflect.get(target, prop, target) as (...a: unknown[]) => Promise<unknown>).apply(
              target,
              args,
            ),
            "read",
          );
      }
      if (prop === "list") {
        return (...args: Parameters<Deno.Kv["list"]>) => {
          const iter = target.list(...args);
          return {
            [Symbol.asyncIterator]() {
              return this;
            },
            next: () => timed(iter.next(), "read"),
            get cursor() {
              return iter.cursor;
            },
          };
        };
      }
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const proxy: Deno.AtomicOperation = new Proxy(op, {
            get(o, name) {
              if (name === "commit") return () => timed(o.commit(), "commit");
              const value = Reflect.get(o, name, o);
              if (typeof value !== "function") return value;
              return (...args: unknown[]) => {
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

async function fileBytes(path: string): Promise<number> {
  let total = 0;
  for (const suffix of ["", "-wal", "-shm"]) {
    total += await Deno.stat(path + suffix).then((s) => s.size, () => 0);
  }
  return total;
}

interface Request {
  body: Uint8Array<ArrayBuffer>;
  topic: string;
  signature: string;
}

async function signedPairings(n: number, seedBase: number, usersPerTenant: number) {
  const key = await importSigningKey(BENCH_SECRET);
  const random = rng(seedBase);
  const out: [Request, Request][] = [];
  for (let i = 0; i < n; i++) {
    const p = pairAt(random, true, usersPerTenant);
    p.lessonEventId = idOf("2026120300", 2 * (seedBase * 100_000 + i));
    p.progressEventId = idOf("2026120300", 2 * (seedBase * 100_000 + i) + 1);
    const reqs = [[LESSON, lessonBody(p)], [PROGRESS, progressBody(p)]] as const;
    const pair: Request[] = [];
    for (const [topic, body] of reqs) {
      const bytes = encoder.encode(JSON.stringify(body));
      pair.push({ body: bytes, topic, signature: await signBody(key, bytes) });
    }
    out.push(pair as [Request, Request]);
  }
  return out;
}

interface Site {
  size: number;
  path: string;
  kv: Deno.Kv;
  app: ReturnType<typeof createApp>;
  kvTime: KvTime;
  usersPerTenant: number;
  seedMs: number;
  samples: { lesson: number; progress: number; read: number; commit: number }[];
}

/**
 * Seeds one KV file per size, then times `pairings` fresh pairings per size in interleaved rounds
 * (small, large, small, large, …) so that drift on the machine touches every size alike.
 */
export async function measureGrowth(
  sizes: readonly number[],
  pairings: number,
  progress: (msg: string) => void,
  rounds = 5,
): Promise<Growth> {
  const dir = await Deno.makeTempDir({ prefix: "bench-growth-" });
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: BENCH_SECRET });
  const sites: Site[] = [];
  let totalSeedMs = 0;
  try {
    for (const size of sizes) {
      const path = `${dir}/kv-${size}.sqlite3`;
      // About 10 stored events per user, whatever the size.
      const usersPerTenant = Math.max(10, Math.ceil(size / 10 / TENANTS));
      const seeding = await Deno.openKv(path);
      const t0 = performance.now();
      await seed(seeding, 0, Math.ceil(size / 2), rng(2024 + size), usersPerTenant);
      seeding.close(); // checkpoints the WAL: measure on a settled file
      const seedMs = performance.now() - t0;
      totalSeedMs += seedMs;
      progress(
        `  seeded ${size.toLocaleString("en-US")} events in ${(seedMs / 1000).toFixed(1)} s`,
      );
      const kv = await Deno.openKv(path);
      const kvTime: KvTime = { read: 0, commit: 0 };
      const app = createApp({ kv: timedKv(kv, kvTime), config, log: silentLogger });
      sites.push({ size, path, kv, app, kvTime, usersPerTenant, seedMs, samples: [] });
    }

    const send = async (site: Site, r: Request) => {
      const t = performance.now();
      const res = await site.app.request("/webhooks/thinkific", {
        method: "POST",
        body: r.body,
        headers: {
          "content-type": "application/json",
          "x-thinkific-topic": r.topic,
          "x-thinkific-hmac-sha256": r.signature,
        },
      });
      if (res.status !== 200) {
        throw new Error(`pairing answered ${res.status}: ${await res.text()}`);
      }
      await res.arrayBuffer();
      return performance.now() - t;
    };
    const perRound = Math.ceil(pairings / rounds);
    // Round 0 is a warm-up (JIT, SQLite caches), not counted.
    for (let round = 0; round <= rounds; round++) {
      for (const [index, site] of sites.entries()) {
        const n = round === 0 ? 50 : perRound;
        const reqs = await signedPairings(n, 1 + index * 10 + round, site.usersPerTenant);
        for (const [lesson, prog] of reqs) {
          site.kvTime.read = site.kvTime.commit = 0;
          const a = await send(site, lesson);
          const b = await send(site, prog);
          if (round === 0) continue;
          site.samples.push({
            lesson: a,
            progress: b,
            read: site.kvTime.read,
            commit: site.kvTime.commit,
          });
        }
      }
    }

    const points: GrowthPoint[] = [];
    for (const site of sites) {
      site.kv.close();
      const totals = site.samples.map((x) => x.lesson + x.progress);
      const q = (f: (x: Site["samples"][number]) => number) => quantile(site.samples.map(f), 0.5);
      points.push({
        events: site.size,
        seedMs: site.seedMs,
        fileBytes: await fileBytes(site.path),
        pairings: site.samples.length,
        p50Ms: quantile(totals, 0.5),
        p99Ms: quantile(totals, 0.99),
        lessonP50Ms: q((x) => x.lesson),
        progressP50Ms: q((x) => x.progress),
        kvReadP50Ms: q((x) => x.read),
        kvCommitP50Ms: q((x) => x.commit),
      });
      progress(
        `  ${site.size.toLocaleString("en-US")} events: pairing p50 ` +
          `${quantile(totals, 0.5).toFixed(2)} ms, p99 ${quantile(totals, 0.99).toFixed(2)} ms`,
      );
    }
    return {
      points,
      ratio: points[points.length - 1].p50Ms / points[0].p50Ms,
      totalSeedMs,
    };
  } finally {
    for (const site of sites) {
      try {
        site.kv.close();
      } catch { /* closed */ }
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
