/**
 * The load generator: realistic signed Thinkific webhook pairs, delivered the way Thinkific sends
 * them (both halves in random order, pairs overlapping, a few redeliveries, 409s retried after a
 * short delay), and a check that every pair became exactly one record.
 *
 * @example
 * ```ts
 * const load = await makeLoad({ pairs: 500, seed: 1, secret: "bench-webhook-secret" });
 * const result = await runLoad("http://127.0.0.1:8000", load, { concurrency: 32 });
 * await verifyRecords("http://127.0.0.1:8000", [load]);
 * ```
 * @module
 */
import { importSigningKey, signBody } from "../lib/thinkific/signature.ts";
import { quantile, randInt, rng, sleep } from "./_stats.ts";

export const LESSON = "lesson.completed";
export const PROGRESS = "enrollment.progress";
export type Topic = typeof LESSON | typeof PROGRESS;

/** 2026-11-02T14:15:12.334Z, the time the generated history starts from. */
export const BASE_TIME = Date.parse("2026-11-02T14:15:12.334Z");

const FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia"];
const LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman"];
const COURSES = ["Watercolor for beginners", "Sourdough at home", "Intro to statistics"];
const CHAPTERS = ["Getting started", "Mixing colours", "Working with layers", "Final project"];
const TYPES = ["Video", "Text", "Quiz", "Download"];

const slugOf = (course: number) =>
  `${COURSES[course % COURSES.length].toLowerCase().replaceAll(" ", "-")}-${course}`;

/** Who and when: the coordinates both halves of a pair share. */
export interface PairSpec {
  tenant: string;
  user: number;
  course: number;
  /** `created_at` of both halves, epoch ms. */
  at: number;
  lessonId: number;
  percentage: string;
  lessonEventId: string;
  progressEventId: string;
}

/** The learner of a pair, as both payloads carry it. */
function userOf(p: PairSpec) {
  const first = FIRST[p.user % FIRST.length];
  const last = LAST[p.user % LAST.length];
  return {
    email: `${first.toLowerCase()}.${last.toLowerCase()}.${p.user}@example.com`,
    first_name: first,
    id: p.user,
    last_name: last,
    external_source: null,
    company: "Example Learning Co.",
  };
}

/** The enrollment of a pair's learner in its course (the same in both payloads). */
const enrollmentIdOf = (p: PairSpec) => 90_000_000 + (p.user % 1_000_000) * 10 + (p.course % 10);

/** A `lesson.completed` body (about 700 bytes as JSON). */
export function lessonBody(p: PairSpec) {
  return {
    id: p.lessonEventId,
    resource: "lesson",
    action: "completed",
    tenant_id: p.tenant,
    tenant_global_id: `5f0c7a2e-1b7d-4c39-9a51-${String(p.tenant).padStart(12, "0")}`,
    created_at: new Date(p.at).toISOString(),
    payload: {
      chapter: { id: 7000 + (p.lessonId % 40), name: CHAPTERS[p.lessonId % CHAPTERS.length] },
      course: { id: p.course, name: COURSES[p.course % COURSES.length], slug: slugOf(p.course) },
      enrollment: { id: enrollmentIdOf(p) },
      lesson: {
        id: p.lessonId,
        name: `Lesson ${p.lessonId}: ${CHAPTERS[p.lessonId % CHAPTERS.length].toLowerCase()}`,
        position: p.lessonId % 100,
        type: TYPES[p.lessonId % TYPES.length],
      },
      user: userOf(p),
    },
  };
}

/** An `enrollment.progress` body (about 700 bytes as JSON). */
export function progressBody(p: PairSpec) {
  return {
    id: p.progressEventId,
    resource: "enrollment",
    action: "progress",
    tenant_id: p.tenant,
    created_at: new Date(p.at).toISOString(),
    payload: {
      activated_at: "2026-10-30T08:00:00.000Z",
      completed_at: null,
      course: { id: p.course, name: COURSES[p.course % COURSES.length], slug: slugOf(p.course) },
      course_id: p.course,
      created_at: "2026-10-30T08:00:00.000Z",
      expiry_date: null,
      free_trial: false,
      id: enrollmentIdOf(p),
      percentage_completed: p.percentage,
      started_at: "2026-10-30T08:03:41.120Z",
      updated_at: new Date(p.at - 14).toISOString(),
      user: userOf(p),
    },
  };
}

/** One HTTP delivery of one event, body and signature ready. */
export interface Delivery {
  eventId: string;
  topic: Topic;
  body: Uint8Array<ArrayBuffer>;
  signature: string;
  redelivery: boolean;
}

/**
 * A POST's init, narrower than `RequestInit` on purpose: Deno 2.5 types hono's `app.request` with
 * undici's `RequestInit`, which refuses Deno's `BodyInit` but takes a `Uint8Array`.
 */
export interface DeliveryInit {
  method: "POST";
  body: Uint8Array<ArrayBuffer>;
  headers: Record<string, string>;
}

/** The signed POST of one delivery, as Thinkific sends it. */
export function deliveryInit(d: Delivery): DeliveryInit {
  return {
    method: "POST",
    body: d.body,
    headers: {
      "content-type": "application/json",
      "x-thinkific-topic": d.topic,
      "x-thinkific-hmac-sha256": d.signature,
    },
  };
}

/** A generated load: its pairs and the deliveries in sending order. */
export interface Load {
  pairs: PairSpec[];
  deliveries: Delivery[];
}

export interface LoadOptions {
  pairs: number;
  seed: number;
  secret: string;
  /** Share of events delivered a second time (default 0.05). */
  redeliveryRate?: number;
  /** How many pairs later the second half may be sent, at most (default 8). */
  overlap?: number;
  /** Tenants the pairs spread over (default 8), numbered from `tenantBase`. */
  tenants?: number;
  tenantBase?: number;
  /** A prefix making event ids unique across loads (digits). */
  idPrefix?: string;
}

const encoder = new TextEncoder();

/** Ids and coordinates of `n` pairs spread over tenants, users and courses (no I/O). */
export function makePairs(opts: {
  pairs: number;
  seed: number;
  tenants?: number;
  tenantBase?: number;
  idPrefix?: string;
}): PairSpec[] {
  const random = rng(opts.seed);
  const tenants = opts.tenants ?? 8;
  const tenantBase = opts.tenantBase ?? 48_213;
  const users = Math.max(4, Math.ceil(opts.pairs / 3));
  const prefix = opts.idPrefix ?? "2026110209";
  const progressOf = new Map<string, number>();
  const pairs: PairSpec[] = [];
  for (let i = 0; i < opts.pairs; i++) {
    const tenant = String(tenantBase + randInt(random, 0, tenants - 1));
    const user = 5_000_000 + randInt(random, 0, users - 1);
    const course = 2_100_000 + randInt(random, 0, 11);
    const enrollment = `${tenant}/${user}/${course}`;
    const done = (progressOf.get(enrollment) ?? 0) + 1;
    progressOf.set(enrollment, done);
    pairs.push({
      tenant,
      user,
      course,
      // Pairs of one enrollment are more than two match windows apart (>= 1,001 ms).
      at: BASE_TIME + i * 2_000 + randInt(random, 0, 999),
      lessonId: 24_000 + randInt(random, 0, 999),
      percentage: String(Math.min(100, done * 2.5)),
      lessonEventId: `${prefix}${String(2 * i).padStart(13, "0")}`,
      progressEventId: `${prefix}${String(2 * i + 1).padStart(13, "0")}`,
    });
  }
  return pairs;
}

/** Builds a load: signed bodies, halves in random order, overlapping pairs, redeliveries. */
export async function makeLoad(opts: LoadOptions): Promise<Load> {
  const random = rng(opts.seed * 7 + 3);
  const overlap = opts.overlap ?? 8;
  const redeliveryRate = opts.redeliveryRate ?? 0.05;
  const key = await importSigningKey(opts.secret);
  const pairs = makePairs(opts);
  const slots: { at: number; delivery: Delivery }[] = [];
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i];
    const halves: Delivery[] = [];
    for (const [topic, body] of [[LESSON, lessonBody(p)], [PROGRESS, progressBody(p)]] as const) {
      const bytes = encoder.encode(JSON.stringify(body));
      halves.push({
        eventId: body.id,
        topic,
        body: bytes,
        signature: await signBody(key, bytes),
        redelivery: false,
      });
    }
    if (random() < 0.5) halves.reverse();
    const first = i + random();
    const second = first + random() * overlap;
    slots.push({ at: first, delivery: halves[0] }, { at: second, delivery: halves[1] });
    for (const [h, at] of [[halves[0], first], [halves[1], second]] as const) {
      if (random() < redeliveryRate) {
        slots.push({ at: at + 1 + random() * 40, delivery: { ...h, redelivery: true } });
      }
    }
  }
  slots.sort((a, b) => a.at - b.at);
  return { pairs, deliveries: slots.map((s) => s.delivery) };
}

export interface RunOptions {
  concurrency?: number;
  /** Delay before a 409 is retried, ms (default 20..50). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Instead: the n-th retry of an event waits `retryDoublingMs * 2^(n-1)` ms (5, 10, 20, …). */
  retryDoublingMs?: number;
  /** Deliveries of one event before the generator gives up on it (default 200). */
  maxAttempts?: number;
  seed?: number;
}

/** What one run of a load measured. */
export interface RunResult {
  wallMs: number;
  requests: number;
  statuses: Record<string, number>;
  /** Request latencies, ms. */
  latencies: number[];
  expectedEvents: number;
  /** Distinct events answered 2xx at least once. */
  acceptedEvents: number;
  /** Deliveries the generator gave up on (never answered 2xx). */
  failures: string[];
  /**
   * Per `enrollment.progress` event answered 200 `collated`: ms from the start of its first
   * delivery to that answer (its time to record, as the sender sees it).
   */
  recordWaitMs: number[];
  /** Of those, how many needed more than one delivery (waited for a sender retry). */
  recordsAfterRetry: number;
  eventsPerSec: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** Sends a load to `url` with `concurrency` senders; 409 and 5xx are retried after a short delay. */
export async function runLoad(url: string, load: Load, opts: RunOptions = {}): Promise<RunResult> {
  const concurrency = opts.concurrency ?? 32;
  const retryMin = opts.retryMinMs ?? 20;
  const retryMax = opts.retryMaxMs ?? 50;
  const maxAttempts = opts.maxAttempts ?? 200;
  const random = rng(opts.seed ?? 11);
  const endpoint = `${url}/webhooks/thinkific`;

  const queue = load.deliveries;
  let next = 0;
  const ready: Delivery[] = [];
  const attempts = new Map<Delivery, number>();
  let timers = 0;
  let wakers: (() => void)[] = [];
  const wakeAll = () => {
    const w = wakers;
    wakers = [];
    for (const f of w) f();
  };

  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const accepted = new Set<string>();
  const failures: string[] = [];
  const firstSent = new Map<string, number>();
  const recordWaitMs: number[] = [];
  let recordsAfterRetry = 0;

  const retryLater = (d: Delivery, ms: number) => {
    timers++;
    setTimeout(() => {
      timers--;
      ready.push(d);
      wakeAll();
    }, ms);
  };

  const send = async (d: Delivery) => {
    const n = (attempts.get(d) ?? 0) + 1;
    attempts.set(d, n);
    const started = performance.now();
    if (!firstSent.has(d.eventId)) firstSent.set(d.eventId, started);
    let status = 0;
    let collated = false;
    try {
      const res = await fetch(endpoint, deliveryInit(d));
      const text = new TextDecoder().decode(await res.arrayBuffer());
      status = res.status;
      collated = d.topic === PROGRESS && status === 200 && text.includes('"status":"collated"');
    } catch {
      status = 0; // connection error: retried like a 5xx
    }
    const ended = performance.now();
    latencies.push(ended - started);
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (collated && !accepted.has(d.eventId)) {
      recordWaitMs.push(ended - firstSent.get(d.eventId)!);
      if (n > 1) recordsAfterRetry++;
    }
    if (status >= 200 && status < 300) {
      accepted.add(d.eventId);
    } else if (status === 409 || status === 0 || status >= 500) {
      const wait = status !== 409
        ? 100
        : opts.retryDoublingMs
        ? Math.min(30_000, opts.retryDoublingMs * 2 ** (n - 1))
        : randInt(random, retryMin, retryMax);
      if (n >= maxAttempts) failures.push(`${d.eventId}: gave up after ${n} (last ${status})`);
      else retryLater(d, wait);
    } else {
      failures.push(`${d.eventId}: answered ${status}`);
    }
  };

  const worker = async () => {
    while (true) {
      const d = ready.shift() ?? (next < queue.length ? queue[next++] : undefined);
      if (d) {
        await send(d);
        continue;
      }
      if (timers === 0) return;
      await new Promise<void>((r) => wakers.push(r));
    }
  };

  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  // A sender that stopped early may leave a retry to the last one: make sure nothing is left.
  while (timers > 0 || ready.length > 0) {
    await sleep(5);
    const d = ready.shift();
    if (d) await send(d);
  }
  const wallMs = performance.now() - started;

  return {
    wallMs,
    requests: latencies.length,
    statuses,
    latencies,
    expectedEvents: load.pairs.length * 2,
    acceptedEvents: accepted.size,
    failures,
    recordWaitMs,
    recordsAfterRetry,
    eventsPerSec: accepted.size / (wallMs / 1000),
    requestsPerSec: latencies.length / (wallMs / 1000),
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  };
}

/** The outcome of {@linkcode verifyRecords}. */
export interface RecordCheck {
  ok: boolean;
  records: number;
  expected: number;
  problems: string[];
}

/**
 * Reads every record from `GET /api/records` (following cursors) and checks that each pair of the
 * loads became exactly one record joining the right two events, and nothing else was recorded.
 */
export async function verifyRecords(url: string, loads: readonly Load[]): Promise<RecordCheck> {
  const expected = new Map<string, string>();
  for (const load of loads) {
    for (const p of load.pairs) expected.set(p.progressEventId, p.lessonEventId);
  }
  const seen = new Set<string>();
  const problems: string[] = [];
  let records = 0;
  let cursor: string | null = null;
  do {
    const res = await fetch(`${url}/api/records?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    if (!res.ok) throw new Error(`GET /api/records: ${res.status} ${await res.text()}`);
    const page = await res.json() as {
      records: { progress_event_id: string; lesson_event_id: string }[];
      cursor: string | null;
    };
    for (const r of page.records) {
      records++;
      const lesson = expected.get(r.progress_event_id);
      if (lesson === undefined) problems.push(`unexpected record for ${r.progress_event_id}`);
      else if (lesson !== r.lesson_event_id) {
        problems.push(`${r.progress_event_id} paired with ${r.lesson_event_id}, not ${lesson}`);
      }
      if (seen.has(r.progress_event_id)) problems.push(`two records for ${r.progress_event_id}`);
      seen.add(r.progress_event_id);
    }
    cursor = page.cursor;
  } while (cursor);
  for (const id of expected.keys()) {
    if (!seen.has(id)) problems.push(`no record for ${id}`);
  }
  return { ok: problems.length === 0, records, expected: expected.size, problems };
}
