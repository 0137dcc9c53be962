/**
 * The collator: stores an incoming event, asks the matching policy whether it can pair now, and
 * commits the outcome in one atomic operation checked against everything it read. A commit lost
 * to a concurrent writer (another request, another process) is re-read and decided again.
 *
 * Every delivery costs the same three KV calls on the common path: one `getMany` (the event's
 * state, its id and its enrollment) beside one range list of the counterparts, then one commit. A
 * redelivery of a paired event reads its record instead of committing.
 *
 * @example
 * ```ts
 * const outcome = await collate(kv, event, rawBody, options);
 * if (outcome.status === "collated") console.log(outcome.record.lesson_name);
 * ```
 * @module
 */
import { type HandledTopic, LESSON_TOPIC, PROGRESS_TOPIC } from "./config.ts";
import { type Candidate, choosePartner, needsRivals } from "./matching/policy.ts";
import { buildRecord, type EventSide, type LessonProgressRecord } from "./matching/record.ts";
import { insertEvent, listUnclaimed, readEventState, updateEvent } from "./store/events.ts";
import {
  previousPercentage,
  readEnrollment,
  saveEnrollment,
  withLesson,
  withProgress,
} from "./store/enrollments.ts";
import type { CourseInfo, StoredEvent } from "./store/keys.ts";
import { addCompletion, addLearner, addUnmatched } from "./store/stats.ts";
import { addLearnerProgress } from "./store/learners.ts"; // issue 12
import { checkNotErased, isErased } from "./store/erasure.ts"; // issue 12
import { MAX_COMMIT_ATTEMPTS } from "./store/limits.ts";
import { addOutboxEntries } from "./store/outbox.ts";
import { getRecords, recordPositionOf, writeRecord, writeUnmatched } from "./store/records.ts";
import type { LessonFacts, ProgressFacts, ThinkificEvent } from "./thinkific/schemas.ts";

/** What happened to an event; the HTTP edge turns it into a status code. */
export type Outcome =
  | {
    status: "collated";
    record: LessonProgressRecord;
    /** written by this call */
    fresh: boolean;
    /** issue 12: when the pair's first event was first delivered (epoch ms), on fresh records */
    firstDeliveredAt?: number;
    /** issue 12: this event's deliveries as counted (the logic channel's), on fresh records */
    deliveries?: number;
  }
  | { status: "pending"; attempts: number }
  | { status: "unmatched"; attempts: number }
  | { status: "stored" }
  | { status: "erased" }; // issue 12: the learner was erased (DELETE /api/learners/…)

/** Matching and retention settings (from {@linkcode Config}). */
export interface CollatorOptions {
  matchWindowMs: number;
  logicTopic: HandledTopic;
  giveUpAfterAttempts: number;
  retentionDays: number;
  /** Forwarding destinations: each new record gets an outbox entry per name, in its commit. */
  forwardTo?: readonly string[];
  /** The clock; tests pass their own. */
  now?: () => number;
}

/** Too many concurrent writers: the caller should answer 503 and let the sender retry. */
export class ContentionError extends Error {
  override name = "ContentionError";
}

const counterpartOf = (topic: HandledTopic): HandledTopic =>
  topic === LESSON_TOPIC ? PROGRESS_TOPIC : LESSON_TOPIC;

const toCandidate = (e: Deno.KvEntry<StoredEvent>): Candidate => ({
  id: e.value.id,
  at: e.value.at,
  gaveUp: e.value.gaveUpAt !== null,
});

function newStoredEvent(event: ThinkificEvent, now: number): StoredEvent {
  return {
    ...event,
    receivedAt: now,
    deliveries: 1,
    gaveUpAt: null,
    pairedWith: null,
    recordAt: null,
  };
}

function courseOf(e: Pick<StoredEvent, "tenantId" | "courseId" | "facts">): CourseInfo {
  return { tenant_id: e.tenantId, course_id: e.courseId, course_name: e.facts.courseName };
}

function sides(a: StoredEvent, b: StoredEvent) {
  const [lesson, progress] = a.facts.kind === "lesson" ? [a, b] : [b, a];
  return {
    lesson: lesson as EventSide<LessonFacts>,
    progress: progress as EventSide<ProgressFacts>,
  };
}

/**
 * Handles one delivery of a validated event. `body` is the raw request body, stored as received.
 *
 * @throws {ContentionError} when concurrent writers keep winning the commit.
 */
export async function collate(
  kv: Deno.Kv,
  event: ThinkificEvent,
  body: Uint8Array,
  options: CollatorOptions,
): Promise<Outcome> {
  const now = options.now ?? Date.now;
  const windowMs = options.matchWindowMs;
  const retentionMs = options.retentionDays * 86_400_000;
  const isLogic = event.topic === options.logicTopic;
  const otherTopic = counterpartOf(event.topic);
  const near = (e: StoredEvent | ThinkificEvent) =>
    listUnclaimed(kv, e, otherTopic, e.at - windowMs, e.at + windowMs);

  for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
    if (attempt > 1) await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    // One round trip: the event's own state and its enrollment, beside the counterpart range.
    const [state, listed] = await Promise.all([readEventState(kv, event), near(event)]);
    if (state.known && state.entry.value === null) {
      // Seen before and expired after RETENTION_DAYS: nothing left to pair.
      return isLogic ? { status: "unmatched", attempts: 0 } : { status: "stored" };
    }
    const read = state.entry.value ? state.entry as Deno.KvEntry<StoredEvent> : null;
    const stored = read?.value ?? newStoredEvent(event, now());
    if (stored.pairedWith !== null) {
      const [record] = stored.recordAt ? await getRecords(kv, [stored.recordAt]) : [];
      if (!record) throw new Error(`event ${stored.id} is paired but its record is missing`);
      return { status: "collated", record, fresh: false };
    }
    // A redelivery whose body moved the event (other user, course or time): use where it is.
    const [counterEntries, enrollment] = state.moved
      ? await Promise.all([near(stored), readEnrollment(kv, stored)])
      : [listed, state.enrollment];

    const deliveries = read && isLogic ? stored.deliveries + 1 : stored.deliveries;
    const self = {
      id: stored.id,
      at: stored.at,
      deliveries,
      isLogic,
      waitedMs: now() - stored.receivedAt,
      lastChance: deliveries >= options.giveUpAfterAttempts,
    };
    const counterparts = counterEntries.map(toCandidate);
    const rivals = needsRivals({ self, counterparts, windowMs })
      ? (await listUnclaimed(
        kv,
        stored,
        stored.topic,
        stored.at - 2 * windowMs,
        stored.at + 2 * windowMs,
      )).map(toCandidate)
      : undefined;
    const decision = choosePartner({ self, counterparts, rivals, windowMs });

    const op = kv.atomic();
    const next: StoredEvent = { ...stored, deliveries };
    const isNewProgress = !read && stored.facts.kind === "progress";
    let outcome: Outcome;

    if (decision) {
      const partnerEntry = counterEntries.find((e) => e.value.id === decision.partner.id)!;
      const partner: StoredEvent = { ...partnerEntry.value, pairedWith: stored.id };
      next.pairedWith = partner.id;
      const { lesson, progress } = sides(next, partner);
      const before = enrollment.value;
      const { summary, firstTime } = withLesson(
        isNewProgress ? withProgress(before, progress.at, progress.facts.percentage) : before,
        lesson.facts.lessonId,
      );
      const record = buildRecord({
        lesson,
        progress,
        previousPercentage: previousPercentage(before, progress.at),
        collatedAt: now(),
      });
      next.recordAt = partner.recordAt = recordPositionOf(record);
      updateEvent(op, partnerEntry, partner, retentionMs, now());
      saveEnrollment(op, enrollment, summary);
      if (before === null) addLearner(op, courseOf(progress));
      writeRecord(op, record, [next, partner]);
      addCompletion(op, record, lesson.facts, firstTime);
      addLearnerProgress(op, record, before, summary); // issue 12
      for (const e of [next, partner]) if (e.gaveUpAt !== null) addUnmatched(op, courseOf(e), -1);
      addOutboxEntries(op, record, options.forwardTo ?? [], now());
      const firstDeliveredAt = Math.min(next.receivedAt, partner.receivedAt); // issue 12
      outcome = { status: "collated", record, fresh: true, firstDeliveredAt, deliveries }; // issue 12: + firstDeliveredAt, deliveries
    } else if (!isLogic) {
      if (read) return { status: "stored" }; // a redelivery: nothing changes
      outcome = { status: "stored" };
    } else if (stored.gaveUpAt !== null) {
      return { status: "unmatched", attempts: stored.deliveries };
    } else if (deliveries >= options.giveUpAfterAttempts) {
      next.gaveUpAt = now();
      writeUnmatched(op, next, next.gaveUpAt);
      addUnmatched(op, courseOf(next), 1);
      outcome = { status: "unmatched", attempts: deliveries };
    } else {
      outcome = { status: "pending", attempts: deliveries };
    }

    if (read) updateEvent(op, read, next, retentionMs, now());
    else insertEvent(op, next, body, retentionMs);
    if (isNewProgress && !decision) {
      const { facts } = stored as EventSide<ProgressFacts>;
      saveEnrollment(op, enrollment, withProgress(enrollment.value, stored.at, facts.percentage));
      if (enrollment.value === null) addLearner(op, courseOf(stored));
    }
    checkNotErased(op, stored); // issue 12: fails the commit once the learner is erased
    if ((await op.commit()).ok) return outcome;
    if (await isErased(kv, stored)) return { status: "erased" }; // issue 12
  }
  throw new ContentionError(`event ${event.id}: too many concurrent writers`);
}
