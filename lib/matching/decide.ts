/**
 * What one delivery does, decided from what it read: the outcome, and the commit plan that makes it
 * so. Pure: no I/O, no clock (the caller passes `now`). The collator (`lib/collator.ts`) reads,
 * calls {@linkcode decide}, commits the plan, and decides again from a fresh read when the commit
 * lost to another writer.
 *
 * Every plan that stores, pairs or gives up an event checks and rewrites the enrollment's summary:
 * the enrollment's serial order. Two deliveries of one learner in one course therefore never both
 * commit from a view without each other.
 *
 * @example
 * ```ts
 * const { outcome, plan } = decide({ event, body, view, options, now: Date.now(), counted: false, mayGiveUp: true });
 * if (plan) await committer.commit(plan);
 * ```
 * @module
 */
import type { HandledTopic } from "../config.ts";
import { insertedForm, insertEvent, remaining, updateEvent } from "../store/events.ts";
import type { EventView } from "../store/events.ts";
import {
  countsAsLearner,
  previousPercentage,
  saveEnrollment,
  withLesson,
  withLone,
  withProgress,
} from "../store/enrollments.ts";
import {
  type CourseInfo,
  type EnrollmentSummary,
  EVENT_ID_GRACE_MS,
  type StoredEvent,
} from "../store/keys.ts";
import { CommitPlan } from "../store/plan.ts";
import { placeRecord, recordPositionOf, unlistedOf, writeUnmatched } from "../store/records.ts";
import { checkNotErased } from "../store/erasure.ts";
import { learnerProgress } from "../store/learners.ts";
import { addProjection } from "../store/projections.ts";
import { addCourse } from "../store/stats.ts";
import type { Writes } from "../store/warm.ts";
import type { LessonFacts, ProgressFacts, ThinkificEvent } from "../thinkific/schemas.ts";
import { type Candidate, choosePartner, needsRivals, type Self } from "./policy.ts";
import { buildRecord, type EventSide, type LessonProgressRecord } from "./record.ts";

/** What happened to an event; the HTTP edge turns it into a status code. */
export type Outcome =
  | {
    status: "collated";
    record: LessonProgressRecord;
    /** written by this call */
    fresh: boolean;
    /** On fresh records: when the pair's first event was first delivered (epoch ms). */
    firstDeliveredAt?: number;
    /** On fresh records: this event's deliveries as counted. */
    deliveries?: number;
  }
  | { status: "pending"; attempts: number }
  | { status: "unmatched"; attempts: number }
  | { status: "stored" }
  /** The id was first received with another topic: refused, nothing stored. */
  | { status: "conflict"; topic: HandledTopic }
  /** The learner was erased (`DELETE /api/learners/…`): nothing stored. */
  | { status: "erased" };

/** Matching and retention settings (from `Config`). */
export interface DecideOptions {
  matchWindowMs: number;
  logicTopic: HandledTopic;
  giveUpAfterAttempts: number;
  retentionDays: number;
  /** A lone companion event is listed as unmatched this long after it was received. */
  unmatchedAfterMs: number;
}

/** What {@linkcode decide} needs. */
export interface DecideInput {
  event: ThinkificEvent;
  body: Uint8Array;
  view: EventView;
  /** The unclaimed events of the event's cluster, when read (see `needsRivals`). */
  cluster?: readonly Deno.KvEntry<StoredEvent>[];
  options: DecideOptions;
  now: number;
  /** This request already counted its delivery (a held delivery deciding again). */
  counted: boolean;
  /** A lone logic event on its last delivery may give up now (false while it is held). */
  mayGiveUp: boolean;
}

/** The outcome, and the plan to commit for it (`null`: nothing to write). */
export type Decided =
  | { outcome: Outcome; plan: null }
  | {
    outcome: Outcome;
    plan: CommitPlan;
    /** The enrollment's summary, the events it writes and the course's name, once committed. */
    writes: Writes;
  };

const toCandidate = (e: Deno.KvEntry<StoredEvent>): Candidate => ({
  id: e.value.id,
  at: e.value.at,
  gaveUp: e.value.gaveUpAt !== null,
});

/** A new event as stored on its first delivery. */
function newStoredEvent(event: ThinkificEvent, now: number): StoredEvent {
  return {
    ...event,
    receivedAt: now,
    deliveries: 1,
    gaveUpAt: null,
    pairedWith: null,
    recordAt: null,
    listedAt: null,
  };
}

function courseOf(e: Pick<StoredEvent, "tenantId" | "courseId" | "facts">): CourseInfo {
  return { tenant_id: e.tenantId, course_id: e.courseId, course_name: e.facts.courseName };
}

/**
 * Adds the course's name to `plan`, unless it is stored as it is (read with the view). Returns the
 * course as stored once the plan has committed.
 */
function namesCourse(plan: CommitPlan, view: EventView, course: CourseInfo): CourseInfo {
  const known = view.course;
  if (known?.course_name === course.course_name && known.tenant_id === course.tenant_id) {
    return known;
  }
  addCourse(plan, course);
  return course;
}

function sides(a: StoredEvent, b: StoredEvent) {
  const [lesson, progress] = a.facts.kind === "lesson" ? [a, b] : [b, a];
  return {
    lesson: lesson as EventSide<LessonFacts>,
    progress: progress as EventSide<ProgressFacts>,
  };
}

/** The event as the policy sees it on this delivery. */
function prepare(input: Omit<DecideInput, "cluster" | "body">) {
  const { event, view, options, now } = input;
  const isLogic = event.topic === options.logicTopic;
  const stored = view.self?.value ?? newStoredEvent(event, now);
  const deliveries = view.self && isLogic && !input.counted
    ? stored.deliveries + 1
    : stored.deliveries;
  const self: Self = {
    id: stored.id,
    at: stored.at,
    deliveries,
    isLogic,
    waitedMs: now - stored.receivedAt,
    lastChance: deliveries >= options.giveUpAfterAttempts,
  };
  return { stored, deliveries, self, isLogic };
}

/**
 * Whether this delivery must read its cluster before deciding (an inexact pair is possible, so
 * rivals and their counterparts decide who gets whom).
 */
export function needsCluster(input: Omit<DecideInput, "cluster" | "body">): boolean {
  return needsRivals({
    self: prepare(input).self,
    counterparts: input.view.counterparts.map(toCandidate),
    windowMs: input.options.matchWindowMs,
  });
}

/** Decides what one delivery does (see the module doc). */
export function decide(input: DecideInput): Decided {
  const { view, options, now } = input;
  const retentionMs = options.retentionDays * 86_400_000;
  const read = view.self;
  const { stored, deliveries, self, isLogic } = prepare(input);
  const pool = input.cluster ?? view.counterparts;
  const others = pool.filter((e) => e.value.topic !== stored.topic);
  const rivals = input.cluster
    ? input.cluster.filter((e) => e.value.topic === stored.topic && e.value.id !== stored.id)
      .map(toCandidate)
    : undefined;
  const decision = choosePartner({
    self,
    counterparts: others.map(toCandidate),
    rivals,
    windowMs: options.matchWindowMs,
  });

  const plan = new CommitPlan();
  const next: StoredEvent = { ...stored, deliveries };
  /** Events this plan pairs: off the enrollment's list of events stored without a pair. */
  const paired: string[] = [];
  const before = view.enrollment.value;
  let summary: EnrollmentSummary | null = before;
  if (!read && stored.facts.kind === "progress") {
    summary = withProgress(summary, stored.at, (stored.facts as ProgressFacts).percentage);
  }
  let outcome: Outcome;

  let partner: StoredEvent | undefined;
  let course = view.course;
  if (decision) {
    const partnerEntry = others.find((e) => e.value.id === decision.partner.id)!;
    partner = { ...partnerEntry.value, pairedWith: stored.id };
    next.pairedWith = partner.id;
    paired.push(next.id, partner.id);
    const { lesson, progress } = sides(next, partner);
    const added = withLesson(summary, lesson.facts.lessonId);
    summary = added.summary;
    const record = buildRecord({
      lesson,
      progress,
      previousPercentage: previousPercentage(before, progress.at),
      // Never before the feed's fence: a clock behind it cannot place a record behind a cursor.
      collatedAt: Math.max(now, view.fence.value ?? 0),
    });
    // The record and the views derived from it are the projector's: what it needs is decided here.
    const n = (before?.records ?? 0) + 1;
    next.recordAt = partner.recordAt = recordPositionOf(record);
    next.recordNumber = partner.recordNumber = n;
    updateEvent(plan, partnerEntry, partner, retentionMs, now);
    placeRecord(plan, record, view.fence);
    summary = { ...summary, records: n };
    addProjection(plan, next, n, {
      record,
      unlisted: unlistedOf([next, partner]),
      firstLesson: added.firstTime ? { lessonPosition: lesson.facts.lessonPosition } : null,
      newLearner: !countsAsLearner(before),
      learner: learnerProgress(record, before, summary),
    });
    const firstDeliveredAt = Math.min(next.receivedAt, partner.receivedAt);
    outcome = { status: "collated", record, fresh: true, firstDeliveredAt, deliveries };
  } else if (!isLogic) {
    if (read) return { outcome: { status: "stored" }, plan: null }; // a redelivery: nothing changes
    const listedAt = stored.receivedAt + options.unmatchedAfterMs;
    if (options.unmatchedAfterMs < retentionMs) {
      next.listedAt = listedAt;
      writeUnmatched(plan, next, listedAt, retentionMs);
    }
    course = namesCourse(plan, view, courseOf(next)); // for the unmatched page and the course's page
    outcome = { status: "stored" };
  } else if (stored.gaveUpAt !== null) {
    return { outcome: { status: "unmatched", attempts: stored.deliveries }, plan: null };
  } else if (self.lastChance && input.mayGiveUp) {
    next.gaveUpAt = next.listedAt = now;
    writeUnmatched(plan, next, now, remaining(next, retentionMs, now));
    course = namesCourse(plan, view, courseOf(next));
    outcome = { status: "unmatched", attempts: deliveries };
  } else {
    outcome = { status: "pending", attempts: deliveries };
    if (read && deliveries === stored.deliveries) return { outcome, plan: null }; // nothing new
  }

  // The enrollment's serial order: checked and rewritten by every plan that changes its events.
  // It lists the events stored without a pair (for an erasure), those it has room for.
  const lone = !read && next.pairedWith === null
    ? [next.id, now + retentionMs + EVENT_ID_GRACE_MS] as [string, number]
    : undefined;
  const after = withLone(summary ?? { progress: [], lessons: [] }, now, paired, lone);
  if (read) updateEvent(plan, read, next, retentionMs, now);
  else insertEvent(plan, next, input.body, retentionMs, lone !== undefined && !after.kept);
  saveEnrollment(plan, view.enrollment, after.summary);
  checkNotErased(plan, next); // an erased learner's deliveries write nothing
  const events = [read ? next : insertedForm(next, input.body)];
  if (partner) events.push(partner);
  return { outcome, plan, writes: { summary: after.summary, events, course } };
}
