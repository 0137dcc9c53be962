/**
 * Where each learner stands in a course: one entry per (course, learner) and an index by last
 * activity, both rewritten for each record by the projector, so the learners page costs
 * O(learners shown).
 *
 * The record's commit decides (see {@linkcode learnerProgress}), and the projector moves the learner's index key without reading the old entry: the old key's
 * time is the latest progress of the enrollment summary the collator has already read (leaving out
 * this record's own progress). A progress that never made a record (one that gave up, or still
 * waits) can make that guess miss and leave an old index key behind; the listing drops such keys
 * by comparing them with the entry, so they cost a skipped key, never a wrong row; an erasure finds
 * them by a scan of the course's index ({@linkcode learnerActivityKeys}).
 *
 * @example
 * ```ts
 * addLearnerProgress(op, record, learnerProgress(record, before, after)); // projected
 * const page = await listLearners(kv, 2100013, { limit: 50 });
 * ```
 * @module
 */
import type { Mutations } from "./plan.ts";
import type { LessonProgressRecord } from "../matching/record.ts";
import {
  type EnrollmentSummary,
  learnerActivityKey,
  learnerActivityPrefix,
  type LearnerEntry,
  learnerKey,
  type LearnerProgress,
} from "./keys.ts";
import { KV_MAX_GET_MANY } from "./limits.ts";
import { encodeCursor } from "./_page.ts";

/** The latest `[at_ms, percentage]` of a summary, leaving out progress at `except`. */
function latestProgress(
  summary: EnrollmentSummary | null,
  except?: number,
): [number, number] | null {
  let best: [number, number] | null = null;
  for (const p of summary?.progress ?? []) {
    if (p[0] !== except && (best === null || p[0] >= best[0])) best = p;
  }
  return best;
}

/**
 * Where the learner stands after a record: `before` is the enrollment summary as the record's
 * commit read it, `after` the one it saves. The activity index key moves from the latest progress
 * before (leaving out this record's own) to the latest after, without reading the old entry.
 */
export function learnerProgress(
  record: LessonProgressRecord,
  before: EnrollmentSummary | null,
  after: EnrollmentSummary,
): LearnerProgress {
  const progressAt = Date.parse(record.completed_at) + record.skew_ms;
  const [lastAt, percentage] = latestProgress(after) ??
    [progressAt, record.percentage_completed];
  const previousAt = latestProgress(before, progressAt)?.[0];
  return {
    lastAt,
    percentage,
    lessons: after.lessons.length,
    previousAt: previousAt !== undefined && previousAt !== lastAt ? previousAt : null,
  };
}

/**
 * Adds a record's learner entry and activity index key to `op` (the projector's batch, which
 * applies an enrollment's records in the order they were made). Only `.set()` and `.delete()` on
 * keys of this (course, learner).
 */
export function addLearnerProgress(
  op: Mutations,
  record: LessonProgressRecord,
  progress: LearnerProgress,
) {
  const course = record.course_id;
  const user = record.user_id;
  if (progress.previousAt !== null) {
    op.delete(learnerActivityKey(course, progress.previousAt, user));
  }
  const entry: LearnerEntry = {
    tenant_id: record.tenant_id,
    user_id: user,
    user_email: record.user_email,
    course_id: course,
    last_lesson_id: record.lesson_id,
    last_lesson_name: record.lesson_name,
    last_chapter_name: record.chapter_name,
    percentage_completed: progress.percentage,
    lessons_completed: progress.lessons,
    last_activity_at: new Date(progress.lastAt).toISOString(),
  };
  op.set(learnerKey(course, user), entry);
  op.set(learnerActivityKey(course, progress.lastAt, user), null);
  return op;
}

/**
 * Every activity index key of a learner in a course, stale ones included (to erase them): one scan
 * of the course's index, since a stale key's time may be older than anything the summary keeps.
 */
export async function learnerActivityKeys(kv: Deno.Kv, course: number, user: number) {
  const keys: Deno.KvKey[] = [];
  const prefix = learnerActivityPrefix(course);
  for await (const e of kv.list({ prefix }, { batchSize: 500 })) {
    if (e.key[prefix.length + 1] === user) keys.push(e.key);
  }
  return keys;
}

/** A position in the activity index: last activity, user id. */
export type LearnerPosition = [at: number, user: number];

/**
 * One page of a course's learners, newest activity first. `inactiveSince` keeps only those whose
 * last activity is at or before it (who stalled); `after` is the position of the previous page's
 * last.
 */
export async function listLearners(
  kv: Deno.Kv,
  course: number,
  query: { limit: number; inactiveSince?: number; after?: LearnerPosition },
): Promise<{ learners: LearnerEntry[]; cursor: string | null }> {
  const prefix = learnerActivityPrefix(course);
  const end = query.after
    ? [...prefix, ...query.after]
    : query.inactiveSince !== undefined
    ? [...prefix, query.inactiveSince + 1]
    : undefined;
  const learners: LearnerEntry[] = [];
  let last: LearnerPosition | null = null;
  let more = false;
  let batch: LearnerPosition[] = [];
  const resolve = async () => {
    const entries = await kv.getMany<LearnerEntry[]>(batch.map(([, u]) => learnerKey(course, u)));
    for (const [i, e] of entries.entries()) {
      const position = batch[i];
      // An index key the learner has moved on from: skip it.
      if (!e.value || Date.parse(e.value.last_activity_at) !== position[0]) continue;
      if (learners.length === query.limit) {
        more = true;
        break;
      }
      learners.push(e.value);
      last = position;
    }
    batch = [];
  };
  const selector = end ? { prefix, end } : { prefix };
  for await (const e of kv.list(selector, { reverse: true, batchSize: KV_MAX_GET_MANY * 5 })) {
    batch.push(e.key.slice(prefix.length) as LearnerPosition);
    if (batch.length === KV_MAX_GET_MANY) await resolve();
    if (more) break;
  }
  if (batch.length > 0) await resolve(); // (after a full page, `resolve` left it empty)
  return { learners, cursor: more && last ? encodeCursor(`learners/${course}`, last) : null };
}
