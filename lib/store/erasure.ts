/**
 * Erasing a learner (a GDPR-style deletion request): everything stored about one user of one
 * school, and their share of the dashboard counters, removed in bounded atomic batches.
 *
 * A tombstone `["erased", tenant, user]` is written first and never removed: every collator commit
 * checks it is absent ({@linkcode checkNotErased}), so no delivery, in flight or later, brings the
 * learner back. Then each deleter of {@linkcode DELETERS} removes one kind of data. Every batch is
 * one commit checked against the entries it read, and adjusts the counters of exactly what it
 * removed, so a repeated or interrupted erasure finishes the job without counting anything twice.
 * Records committed before the tombstone are projected first (see `projections.ts`), so their
 * derived views are there to be erased. Nothing but the tombstone names the learner afterwards: expired events' pointers are found through
 * their enrollment summaries' lists and the learner's own index of ids
 * ({@linkcode eventIdsOfLearnerPrefix}), old activity keys by a scan
 * of the course's index, and the lessons they were counted in from their records (so the
 * enrollment summaries are erased before the records).
 *
 * To erase a new kind of key, add a deleter to {@linkcode DELETERS}.
 *
 * @example
 * ```ts
 * const removed = await eraseLearner(kv, { tenantId: "48213", userId: 5000049 }, { destinations });
 * ```
 * @module
 */
import type { Mutations } from "./plan.ts";
import type { LessonProgressRecord } from "../matching/record.ts";
import {
  courseCounterKey,
  courseDayKey,
  enrollmentsOfLearnerPrefix,
  type EnrollmentSummary,
  erasedKey,
  type ErasureTombstone,
  eventBodyKey,
  eventIdKey,
  eventIdsOfLearnerPrefix,
  eventsOfLearnerPrefix,
  feedKey,
  type LearnerEntry,
  learnerKey,
  lessonCounterKey,
  outboxDeadKey,
  outboxDueKey,
  outboxKey,
  recordKey,
  recordKeys,
  type RecordPosition,
  recordsOfUserPrefix,
  type StoredOutboxEntry,
  UNMATCHED_PREFIX,
  type UnmatchedEntry,
} from "./keys.ts";
import { countedLessons, countsAsLearner } from "./enrollments.ts";
import { withoutRecords } from "./flights.ts";
import { learnerActivityKeys } from "./learners.ts";
import { readAll } from "./_read.ts";
import { entryIdOf } from "./outbox.ts";
import { projectPending } from "./projections.ts";
import { feedPositionOf } from "./records.ts";
import { DAY_MS, MINUS_ONE } from "./stats.ts";

/** One learner of one school. */
export interface Learner {
  tenantId: string;
  userId: number;
}

/** What was removed, by kind. */
export type Removed = Record<
  "events" | "records" | "enrollments" | "learner_entries" | "unmatched" | "outbox",
  number
>;

/** What a deleter gets. */
export interface ErasureContext {
  kv: Deno.Kv;
  who: Learner;
  /** Forwarding destination names: their outbox entries of the learner's records are removed. */
  destinations: readonly string[];
  removed: Removed;
}

/** Removes one kind of the learner's data, in bounded batches. */
export type Deleter = (ctx: ErasureContext) => Promise<void>;

/** Items per batch: every batch stays far under Deno KV's 1000 mutations and 100 checks. */
const BATCH = 25;

/** Adds "fail unless the learner is not erased" to a commit (the collator's). */
export function checkNotErased(
  op: Mutations,
  e: { tenantId: string; userId: number },
) {
  return op.check({ key: erasedKey(e.tenantId, e.userId), versionstamp: null });
}

/** Whether the learner was erased. */
export async function isErased(
  kv: Deno.Kv,
  e: { tenantId: string; userId: number },
): Promise<boolean> {
  return (await kv.get(erasedKey(e.tenantId, e.userId))).value !== null;
}

/**
 * Commits `build`'s batch, re-reading (via `build`) while a concurrent writer wins; returns what
 * the committed `build` returned.
 */
async function commitBatch<T>(
  kv: Deno.Kv,
  build: (op: Deno.AtomicOperation) => Promise<T>,
): Promise<T> {
  for (;;) {
    const op = kv.atomic();
    const result = await build(op);
    if ((await op.commit()).ok) return result;
  }
}

/** Lists keys under `prefix` in pages of {@linkcode BATCH}, handing each page to `each`. */
async function inBatches<T>(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  each: (entries: Deno.KvEntry<T>[]) => Promise<void>,
  keep: (e: Deno.KvEntry<T>) => boolean = () => true,
) {
  for (;;) {
    const page: Deno.KvEntry<T>[] = [];
    for await (const e of kv.list<T>({ prefix })) {
      if (!keep(e)) continue;
      page.push(e);
      if (page.length === BATCH) break;
    }
    if (page.length === 0) return;
    await each(page);
  }
}

/**
 * Unmatched entries (the unmatched list is short: it is scanned) and their event-id pointers
 * (their events may have expired). Courses count their unmatched events from this list.
 */
const unmatched: Deleter = async ({ kv, who, removed }) => {
  const mine = (e: Deno.KvEntry<UnmatchedEntry>) =>
    e.value.tenant_id === who.tenantId && e.value.user_id === who.userId;
  await inBatches<UnmatchedEntry>(kv, UNMATCHED_PREFIX, async (page) => {
    const op = kv.atomic();
    for (const e of page) {
      op.check(e).delete(e.key).delete(eventIdKey(who.tenantId, e.value.event_id));
    }
    if ((await op.commit()).ok) removed.unmatched += page.length;
  }, mine);
};

/** Records with their indexes and change-feed entries, event-id pointers, outbox entries and day counts. */
const recordsDeleter: Deleter = async ({ kv, who, destinations, removed }) => {
  const prefix = recordsOfUserPrefix(who.userId);
  await inBatches<number>(kv, prefix, async (page) => {
    const positions = page.map((e) => e.key.slice(prefix.length) as RecordPosition);
    const [records, outbox] = await commitBatch(kv, async (op) => {
      const read = await readAll<LessonProgressRecord>(
        kv,
        positions.map((p, i) => recordKeys(p, who.userId, page[i].value)[0]),
      );
      // Records in a flight first: taken out, checked, so a landing or an expansion that commits
      // after this list fails, and one that committed before it wrote entries the read below sees.
      const flown = await withoutRecords(kv, op, positions);
      const outboxIds = read.flatMap((r) =>
        r.value ? destinations.map((d) => entryIdOf(d, r.value!)) : []
      );
      const outbox = await readAll<StoredOutboxEntry>(kv, outboxIds.map(outboxKey));
      for (const [i, r] of read.entries()) {
        for (const key of recordKeys(positions[i], who.userId, page[i].value)) op.delete(key);
        if (!r.value) continue;
        op.check(r).sum(
          courseDayKey(r.value.course_id, dayOf(r.value.completed_at)),
          MINUS_ONE.value,
        )
          .delete(eventIdKey(who.tenantId, r.value.progress_event_id))
          .delete(eventIdKey(who.tenantId, r.value.lesson_event_id))
          .delete(feedKey(feedPositionOf(r.value)));
      }
      for (const o of outbox) {
        if (!o.value) continue;
        op.check(o).delete(o.key).delete(outboxDueKey(o.value.dueAt, o.value.id));
        if (o.value.deadAt !== null) op.delete(outboxDeadKey(o.value.deadAt, o.value.id));
      }
      return [read.filter((r) => r.value).length, outbox.filter((o) => o.value).length + flown];
    });
    removed.records += records;
    removed.outbox += outbox;
  }, (e) => e.key[4] === who.tenantId);
};

const dayOf = (iso: string) => Math.floor(Date.parse(iso) / DAY_MS);

/**
 * What an enrollment summary holds while its erasure runs: whether the learner was counted in the
 * course, and how many of the lessons they were counted in (see {@linkcode lessonCounts}) have had
 * their counters lowered. Written over the summary, so an interrupted erasure resumes there.
 */
interface ErasingSummary extends EnrollmentSummary {
  erasing?: { counted: boolean; done: number };
}

/** How many times each lesson's counter counted the learner, from their records in the course. */
async function lessonCounts(
  kv: Deno.Kv,
  who: Learner,
  course: number,
): Promise<[lesson: number, times: number][]> {
  const prefix = recordsOfUserPrefix(who.userId);
  const positions: RecordPosition[] = [];
  for await (const e of kv.list<number>({ prefix })) {
    const position = e.key.slice(prefix.length) as RecordPosition;
    if (position[1] === who.tenantId && e.value === course) positions.push(position);
  }
  const records = (await readAll<LessonProgressRecord>(kv, positions.map(recordKey)))
    .flatMap((r) => r.value ? [r.value] : [])
    .sort((a, b) => a.collated_at.localeCompare(b.collated_at));
  const counted = countedLessons(records.map((r) => r.lesson_id));
  return [...counted].sort((a, b) => a[0] - b[0]);
}

/** `times` subtracted from a KvU64 (which wraps). */
const minus = (times: number) => (1n << 64n) - BigInt(times);

/**
 * Enrollment summaries, the learner entries and activity keys of their courses, and the courses'
 * learner and per-lesson counts. Runs before the records go: the lessons a learner was counted in
 * are read from their records (the summary keeps only the latest), and their counters are lowered
 * a chunk at a time, each chunk with the summary marking how far it got. A course's learners count
 * is lowered only if the learner was counted there (`countsAsLearner`: their summary holds a
 * completed lesson; a learner with only a lone lesson or only progress events never was).
 */
const enrollments: Deleter = async ({ kv, who, removed }) => {
  await inBatches<EnrollmentSummary>(
    kv,
    enrollmentsOfLearnerPrefix(who.tenantId, who.userId),
    async (page) => {
      for (const first of page) {
        const course = first.key[3] as number;
        const read = await kv.get<LearnerEntry>(learnerKey(course, who.userId));
        // Course ids are Thinkific-wide: an entry of another school is not this learner's.
        const learner = read.value?.tenant_id === who.tenantId ? read.value : null;
        const keys = learner || !read.value
          ? [read.key, ...await learnerActivityKeys(kv, course, who.userId)]
          : [];
        for (let i = 0; i < keys.length; i += BATCH * 8) {
          const op = kv.atomic();
          for (const key of keys.slice(i, i + BATCH * 8)) op.delete(key);
          await op.commit();
        }
        if (learner) removed.learner_entries++;
        const counts = await lessonCounts(kv, who, course);
        for (;;) {
          const read = await kv.get<ErasingSummary>(first.key);
          if (!read.value) break;
          const erasing = read.value.erasing ??
            { counted: countsAsLearner(read.value), done: 0 };
          const chunk = counts.slice(erasing.done, erasing.done + BATCH * 8);
          const op = kv.atomic().check(read);
          for (const [l, times] of chunk) op.sum(lessonCounterKey(course, l), minus(times));
          const done = erasing.done + chunk.length;
          const last = done === counts.length;
          if (!last) {
            const next: ErasingSummary = {
              progress: [],
              lessons: [],
              erasing: { ...erasing, done },
            };
            op.set(read.key, next);
          } else {
            op.delete(read.key);
            if (erasing.counted) op.sum(courseCounterKey(course, "learners"), MINUS_ONE.value);
          }
          if ((await op.commit()).ok && last) removed.enrollments++;
        }
      }
    },
  );
};

/**
 * Event-id pointers of the learner's events stored without a pair, from their enrollment summaries'
 * lists and the learner's index of them: those of expired events are found nowhere else.
 */
const eventIds: Deleter = async ({ kv, who }) => {
  const summaries = kv.list<EnrollmentSummary>({
    prefix: enrollmentsOfLearnerPrefix(who.tenantId, who.userId),
  });
  for await (const { value } of summaries) {
    if (!value.lone?.length) continue;
    const op = kv.atomic();
    for (const [id] of value.lone) op.delete(eventIdKey(who.tenantId, id));
    await op.commit();
  }
  await inBatches<null>(kv, eventIdsOfLearnerPrefix(who.tenantId, who.userId), async (page) => {
    const op = kv.atomic();
    for (const e of page) op.delete(e.key).delete(eventIdKey(who.tenantId, e.key[3] as string));
    await op.commit();
  });
};

/** Stored events, their raw bodies and their event-id pointers. */
const events: Deleter = async ({ kv, who, removed }) => {
  await inBatches<unknown>(
    kv,
    eventsOfLearnerPrefix(who.tenantId, who.userId),
    async (page) => {
      const op = kv.atomic();
      for (const e of page) {
        const id = e.key.at(-1) as string; // an event's key ends with its id
        op.check(e).delete(e.key).delete(eventBodyKey(who.tenantId, id))
          .delete(eventIdKey(who.tenantId, id));
      }
      if ((await op.commit()).ok) removed.events += page.length;
    },
  );
};

/** Every kind of the learner's data, in the order it is erased. */
export const DELETERS: readonly Deleter[] = [
  unmatched,
  eventIds,
  enrollments,
  recordsDeleter,
  events,
];

/**
 * Erases a learner: writes the tombstone (keeping the first erasure's time), then runs every
 * deleter. Idempotent: erasing again removes nothing more and reports zeros.
 */
export async function eraseLearner(
  kv: Deno.Kv,
  who: Learner,
  opts: { destinations: readonly string[]; now: number },
): Promise<Removed> {
  const tombstone: ErasureTombstone = { erased_at: new Date(opts.now).toISOString() };
  const key = erasedKey(who.tenantId, who.userId);
  await kv.atomic().check({ key, versionstamp: null }).set(key, tombstone).commit();
  // No record of the learner can commit now: project those that did, so their derived views exist
  // to be erased (and no batch can write them afterwards).
  await projectPending(kv, { destinations: opts.destinations, now: opts.now });
  const removed: Removed = {
    events: 0,
    records: 0,
    enrollments: 0,
    learner_entries: 0,
    unmatched: 0,
    outbox: 0,
  };
  const ctx: ErasureContext = { kv, who, destinations: opts.destinations, removed };
  for (const deleter of DELETERS) await deleter(ctx);
  return removed;
}
