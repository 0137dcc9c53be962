/**
 * The KV key layout: every key this service reads or writes is built here, nowhere else.
 *
 * | key | value | lifetime |
 * | --- | --- | --- |
 * | `["events", tenant, user, course, topic, at_ms, event_id]` | {@linkcode StoredEvent}, with its raw body inside (its facts are read from it) | `RETENTION_DAYS` |
 * | `["event_bodies", tenant, event_id]` | the raw webhook body (bytes), when larger than `MAX_INLINE_BODY_BYTES` (the event then keeps its facts) | `RETENTION_DAYS` |
 * | `["event_ids", tenant, event_id]` | {@linkcode EventPointer}: where the event lives | `RETENTION_DAYS` + {@linkcode EVENT_ID_GRACE_MS} |
 * | `["learner_event_ids", tenant, user, event_id]` | `null`: the learner's events stored without a pair, beyond those its enrollment summary lists (to erase their pointers) | as its pointer |
 * | `["enrollments", tenant, user, course]` | {@linkcode EnrollmentSummary}; written by every commit that changes the enrollment's events (its serial order) | kept |
 * | `["unmatched", listed_ms, tenant, event_id]` | {@linkcode UnmatchedEntry}, listed from `listed_ms` on | until its record is projected, or the event expires |
 * | `["records", "all", completed_ms, tenant, progress_event_id]` | the record, written by the projector | kept |
 * | `["records", "t" \| "u" \| "c", id, completed_ms, tenant, progress_event_id]` | index (see {@linkcode recordEntries}), written by the projector | kept |
 * | `["feed", collated_ms, tenant, progress_event_id]` | the record's {@linkcode RecordPosition} (see {@linkcode feedKey}), written by the projector | kept |
 * | `["feed_fence"]` | epoch ms: the feed may serve every entry before it, and no record commits before it (see {@linkcode FEED_FENCE_KEY}) | kept |
 * | `["projection", tenant, user, course, n]` | {@linkcode Projection}: the `n`-th record of the enrollment, made and waiting for the projector (see `lib/store/projections.ts`) | until projected |
 * | `["projector"]` | {@linkcode ProjectorLease}: rewritten by every projection batch, so two batches never both commit | kept |
 * | `["outbox", entry_id]` | {@linkcode OutboxEntry}: one record for one destination, written by the projector, or by a flight's landing (a failed attempt) or expansion; once delivered, a {@linkcode DeliveredOutboxEntry} without the record | until delivered + `RETENTION_DAYS` |
 * | `["outbox_due", due_ms, entry_id]` | entry id, while pending | until delivered or dead |
 * | `["outbox_dead", dead_ms, entry_id]` | entry id, while dead | until retried |
 * | `["outbox_flight", until_ms, flight_id]` | {@linkcode OutboxFlight}: records of one projection batch being forwarded by the process that projected them, to one destination | until their attempts end, or expanded into outbox entries after `until_ms` |
 * | `["dash_course", course]` | {@linkcode CourseInfo} | kept |
 * | `["dash_course_n", course, counter]` | `Deno.KvU64`: learners | kept |
 * | `["dash_course_day", course, day]` | `Deno.KvU64`: completions that day (UTC days since 1970) | kept |
 * | `["dash_lesson", course, lesson]` | {@linkcode LessonInfo} | kept |
 * | `["dash_lesson_n", course, lesson]` | `Deno.KvU64`: distinct learners who completed it | kept |
 * | `["learners", course, user]` | {@linkcode LearnerEntry}: where a learner stands in a course | until erased |
 * | `["learners_by_activity", course, last_activity_ms, user]` | `null`: learners, newest first | until moved |
 * | `["erased", tenant, user]` | {@linkcode ErasureTombstone}: the learner's data was erased | kept |
 *
 * Events are ordered by school, user, course, topic and time, so finding a counterpart is one
 * bounded range list over `at ± window`, never a scan.
 * Every commit that stores, pairs or gives up an event of an enrollment checks and rewrites the
 * enrollment's key, so two deliveries of one learner in one course never both decide from a view
 * without each other: one commit fails, re-reads and decides again. A record is stored once (`"all"`) and indexed
 * by school, user and course with small entries (see {@linkcode recordPlan}), so every
 * `/api/records` query is one ordered range plus reads of the records it finds.
 * An event's own value says whether it is paired and where its record is.
 *
 * A record's commit writes only what deciding needs (its events, their ids, the enrollment) and a
 * {@linkcode Projection} entry with the record inside; it checks the feed's fence. The record and
 * what derives from it (the record itself and its indexes, its feed entry, the end of its events'
 * unmatched entries, learner entries, dashboard counters and outbox entries) are written from those
 * entries by the projector, in batches (`lib/store/projections.ts`); every reader of these projects
 * what is pending first (the feed: after moving its fence), so it reads what it read before the
 * projector.
 *
 * @module
 */
import type { HandledTopic } from "../config.ts";
import type { LessonProgressRecord } from "../matching/record.ts";
import type { LessonFacts, ThinkificEvent } from "../thinkific/schemas.ts";

/**
 * A validated event as stored, with its delivery state. Its raw body is in its own value (`body`),
 * or, when larger than `MAX_INLINE_BODY_BYTES`, under {@linkcode eventBodyKey}; see `encodeEvent`
 * for what the key holds.
 */
export interface StoredEvent extends ThinkificEvent {
  /** The raw body, when it is stored inside the event's value (read back with it). */
  body?: Uint8Array;
  receivedAt: number;
  deliveries: number;
  gaveUpAt: number | null;
  /** The id of the counterpart it was paired with: set once, in the record's commit. */
  pairedWith: string | null;
  /** Where the record of its pair is (see {@linkcode recordKey}). */
  recordAt: RecordPosition | null;
  /**
   * Its record's number among its enrollment's records: while the record waits for the projector,
   * it is in the {@linkcode projectionKey} of that number (absent on events paired before records
   * were stored by the projector).
   */
  recordNumber?: number;
  /**
   * When it shows in the unmatched list (the time in its {@linkcode unmatchedKey}): when a logic
   * event gave up, or when a lone companion event passes the unmatched horizon. `null`: never listed.
   */
  listedAt?: number | null;
}

/**
 * How long the event-id index outlives `RETENTION_DAYS`: a redelivery within it is recognised
 * (and answered from the state left), after it the event is stored again as new.
 */
export const EVENT_ID_GRACE_MS = 30 * 86_400_000;

/** The fields of an event that make its ordered key. */
export type EventCoordinates = Pick<StoredEvent, "tenantId" | "userId" | "courseId" | "at">;

/** What `["event_ids", …]` holds: enough to rebuild the ordered key. */
export interface EventPointer {
  userId: number;
  courseId: number;
  topic: HandledTopic;
  at: number;
}

/**
 * An event that found no counterpart (the `/api/unmatched` shape): a logic-channel event that gave
 * up, or a companion event still alone after the unmatched horizon.
 */
export interface UnmatchedEntry {
  event_id: string;
  topic: HandledTopic;
  tenant_id: string;
  user_id: number;
  course_id: number;
  created_at: string;
  attempts: number;
  gave_up_at: string;
  /** The percentage the event reported (absent from entries written before it was added). */
  percentage_completed?: number | null;
}

/** Every stored event of one learner of one school. */
export const eventsOfLearnerPrefix = (tenantId: string, userId: number): Deno.KvKey => [
  "events",
  tenantId,
  userId,
];

export const eventKey = (e: EventCoordinates & { topic: HandledTopic; id: string }): Deno.KvKey => [
  ...eventsOfLearnerPrefix(e.tenantId, e.userId),
  e.courseId,
  e.topic,
  e.at,
  e.id,
];

/** The range of one topic's events of one enrollment with `from <= at <= to`. */
export function eventRange(
  e: Omit<EventCoordinates, "at">,
  topic: HandledTopic,
  from: number,
  to: number,
): { start: Deno.KvKey; end: Deno.KvKey } {
  const prefix = [...eventsOfLearnerPrefix(e.tenantId, e.userId), e.courseId, topic];
  return { start: [...prefix, from], end: [...prefix, to + 1] };
}

export const eventIdKey = (tenantId: string, id: string): Deno.KvKey => [
  "event_ids",
  tenantId,
  id,
];

/**
 * The learner's own index of the ids of their events stored without a pair, written with the
 * event when its enrollment summary has no room for it (see {@linkcode EnrollmentSummary.lone}):
 * an erasure finds their `event_ids` pointers here once the events have expired. (A paired
 * event's id is in its record, which is kept.)
 */
export const eventIdsOfLearnerPrefix = (tenantId: string, userId: number): Deno.KvKey => [
  "learner_event_ids",
  tenantId,
  userId,
];

export const learnerEventIdKey = (tenantId: string, userId: number, id: string): Deno.KvKey => [
  ...eventIdsOfLearnerPrefix(tenantId, userId),
  id,
];

export const eventBodyKey = (tenantId: string, id: string): Deno.KvKey => [
  "event_bodies",
  tenantId,
  id,
];

/**
 * One learner in one course: what the records need from their history. Small and bounded (see
 * limits.ts), because every commit of the enrollment rewrites it.
 */
export interface EnrollmentSummary {
  /** Progress seen, oldest first: `[at_ms, percentage]` (the latest ones). */
  progress: [number, number][];
  /** Lessons this learner completed (ids, the latest ones first seen). */
  lessons: number[];
  /**
   * Records made for the enrollment (absent: none yet): the last one's {@linkcode projectionKey}
   * number, so the projector applies an enrollment's records in the order they were made.
   */
  records?: number;
  /**
   * The enrollment's events stored without a pair, as `[event_id, until_ms]` (when its
   * `event_ids` pointer expires): an erasure finds their pointers here once the events have
   * expired. Bounded (see `withLone`): beyond it, an id goes to {@linkcode learnerEventIdKey}.
   * Absent: none.
   */
  lone?: [string, number][];
}

/** Every enrollment summary of one learner of one school. */
export const enrollmentsOfLearnerPrefix = (tenantId: string, userId: number): Deno.KvKey => [
  "enrollments",
  tenantId,
  userId,
];

export const enrollmentKey = (e: Omit<EventCoordinates, "at">): Deno.KvKey => [
  ...enrollmentsOfLearnerPrefix(e.tenantId, e.userId),
  e.courseId,
];

export const UNMATCHED_PREFIX: Deno.KvKey = ["unmatched"];

export const unmatchedKey = (listedAt: number, tenantId: string, id: string): Deno.KvKey => [
  ...UNMATCHED_PREFIX,
  listedAt,
  tenantId,
  id,
];

/**
 * A record made by a commit, waiting for the projector: the record itself, and what the projector
 * needs beyond it, decided in the record's commit from the enrollment summary it read (the summary
 * has moved on by the time the projector runs).
 */
export interface Projection {
  /** The record: the projector stores it (see `storeRecord`), with its feed entry and indexes. */
  record: LessonProgressRecord;
  /** The unmatched entries of its two events, removed with it: `[listed_ms, event_id]`. */
  unlisted: [number, string][];
  /**
   * The lesson's place in its course, when the learner had not completed it before (its learners
   * counter goes up; the rest of the lesson is in the record).
   */
  firstLesson: Pick<LessonFacts, "lessonPosition"> | null;
  /** The enrollment starts to count as a learner of its course with this record. */
  newLearner: boolean;
  /** Where the learner stands after this record (see `learnerProgress`). */
  learner: LearnerProgress;
}

/** A learner's standing after a record, from the enrollment summaries before and after it. */
export interface LearnerProgress {
  /** The latest progress's time: the learner's key in the activity index. */
  lastAt: number;
  /** The latest progress's percentage. */
  percentage: number;
  /** Distinct lessons completed. */
  lessons: number;
  /** The activity index key's time before this record, when it moves (`null`: it does not). */
  previousAt: number | null;
}

export const PROJECTION_PREFIX: Deno.KvKey = ["projection"];

/** The `n`-th record of an enrollment, waiting to be projected. */
export const projectionKey = (e: Omit<EventCoordinates, "at">, n: number): Deno.KvKey => [
  ...PROJECTION_PREFIX,
  e.tenantId,
  e.userId,
  e.courseId,
  n,
];

/** What the projector's lease key holds: when and by how many records it was last moved. */
export interface ProjectorLease {
  at: number;
  projected: number;
}

/**
 * Rewritten by every projection batch, which checks it as read: two processes projecting at once
 * never both commit a batch, so each record is projected exactly once.
 */
export const PROJECTOR_LEASE_KEY: Deno.KvKey = ["projector"];

/** Optional filters of `/api/records`. */
export interface RecordFilter {
  tenantId?: string;
  userId?: number;
  courseId?: number;
}

/** The key suffix that orders records: completion time, then a unique id. */
export type RecordPosition = [completedMs: number, tenantId: string, progressEventId: string];

/** Where the record itself is stored. */
export const recordKey = (position: RecordPosition): Deno.KvKey => [
  "records",
  "all",
  ...position,
];

/** Where a record is in the change feed: collation time, school, progress event id. */
export type FeedPosition = [collatedMs: number, tenantId: string, progressEventId: string];

export const FEED_PREFIX: Deno.KvKey = ["feed"];

/**
 * The change feed's entry of a record, written by the projector at the place the record's commit
 * chose: `/api/feed` lists these in order of collation time, which is (within the feed's visibility
 * delay) commit order.
 */
export const feedKey = (position: FeedPosition): Deno.KvKey => [...FEED_PREFIX, ...position];

/**
 * The change feed's fence: a time (epoch ms) before which `/api/feed` may serve entries. Every
 * commit that makes a record reads it (in the delivery's one `getMany`), places the record at or
 * after it, and checks its versionstamp; the feed advances it before serving up to a new time. A
 * record commit overtaken by an advance fails its check and is decided again at a later place, so
 * no entry can land behind a cursor already served, whatever the pause or the clocks.
 */
export const FEED_FENCE_KEY: Deno.KvKey = ["feed_fence"];

/**
 * Every key a record is written under, with its value: the record under `"all"`; `null` under its
 * school; its course id under its user and its user id under its course, so the remaining filters
 * can be applied to an index without reading records.
 */
export function recordEntries(
  r: LessonProgressRecord,
  position: RecordPosition,
): [Deno.KvKey, LessonProgressRecord | number | null][] {
  const [all, byTenant, byUser, byCourse] = recordKeys(position, r.user_id, r.course_id);
  return [[all, r], [byTenant, null], [byUser, r.course_id], [byCourse, r.user_id]];
}

/** The keys of {@linkcode recordEntries}, from what the user index holds (to delete a record). */
export function recordKeys(
  position: RecordPosition,
  userId: number,
  courseId: number,
): Deno.KvKey[] {
  return [
    recordKey(position),
    ["records", "t", position[1], ...position],
    recordsOfUserPrefix(userId).concat(position),
    ["records", "c", courseId, ...position],
  ];
}

/** The user index of records: `["records", "u", user, …position]` → course id. */
export const recordsOfUserPrefix = (userId: number): Deno.KvKey => ["records", "u", userId];

/**
 * How to list the records matching `filter`: the narrowest index, and a test for the filters it
 * does not order by. A user's or a course's records are few, so the test scans little.
 */
export function recordPlan(filter: RecordFilter): {
  prefix: Deno.KvKey;
  keep: (position: RecordPosition, value: unknown) => boolean;
} {
  const { tenantId: t, userId: u, courseId: c } = filter;
  const tenantOk = (p: RecordPosition) => t === undefined || p[1] === t;
  if (u !== undefined) {
    return {
      prefix: recordsOfUserPrefix(u),
      keep: (p, course) => tenantOk(p) && (c === undefined || course === c),
    };
  }
  if (c !== undefined) return { prefix: ["records", "c", c], keep: tenantOk };
  if (t !== undefined) return { prefix: ["records", "t", t], keep: () => true };
  return { prefix: ["records", "all"], keep: () => true };
}

/** One record waiting for (or done with) one forwarding destination. */
export interface OutboxEntry {
  /** `${destination}:${messageId}` */
  id: string;
  destination: string;
  /** The Standard Webhooks `webhook-id`: the same on every attempt. */
  messageId: string;
  record: LessonProgressRecord;
  status: "pending" | "delivered" | "dead";
  attempts: number;
  /**
   * When it may next be attempted: its time in `["outbox_due", …]`. A process delivering it
   * (holding its lease) has moved this to the end of the lease.
   */
  dueAt: number;
  lastError: string | null;
  createdAt: number;
  deliveredAt: number | null;
  deadAt: number | null;
}

/**
 * What a delivered entry keeps for `RETENTION_DAYS`: its bookkeeping without the record, which
 * only its attempts needed (the record itself stays under `["records", …]`). It still answers
 * `POST /api/outbox/:id/retry` (409) and keeps the projection from writing the entry again.
 * Entries delivered by earlier versions kept their record, as an {@linkcode OutboxEntry}.
 */
export type DeliveredOutboxEntry = Omit<OutboxEntry, "record" | "status"> & { status: "delivered" };

/** An outbox entry as stored: pending or dead with its record, or delivered. */
export type StoredOutboxEntry = OutboxEntry | DeliveredOutboxEntry;

/**
 * Records of one projection batch that the projecting process forwards at once to `destination`
 * (see `lib/store/flights.ts`): written in the batch's commit instead of an outbox entry per
 * record, deleted when their attempts end (with outbox entries for those that failed), or, past its
 * key's `until_ms`, expanded into pending outbox entries by any process.
 */
export interface OutboxFlight {
  destination: string;
  /** Where the records are (`["records", "all", …]`). */
  records: RecordPosition[];
  createdAt: number;
}

export const OUTBOX_FLIGHT_PREFIX: Deno.KvKey = ["outbox_flight"];
export const outboxFlightKey = (until: number, id: string): Deno.KvKey => [
  ...OUTBOX_FLIGHT_PREFIX,
  until,
  id,
];

/** The id of the outbox entry of message `messageId` for `destination`. */
export const outboxIdOf = (destination: string, messageId: string) => `${destination}:${messageId}`;

/** The destination and message id an outbox entry's id was made of ({@linkcode outboxIdOf}). */
export function outboxIdParts(id: string): { destination: string; messageId: string } {
  const at = id.indexOf(":");
  return { destination: id.slice(0, at), messageId: id.slice(at + 1) };
}

export const outboxKey = (id: string): Deno.KvKey => ["outbox", id];
export const OUTBOX_DUE_PREFIX: Deno.KvKey = ["outbox_due"];
export const outboxDueKey = (at: number, id: string): Deno.KvKey => [...OUTBOX_DUE_PREFIX, at, id];
export const OUTBOX_DEAD_PREFIX: Deno.KvKey = ["outbox_dead"];
export const outboxDeadKey = (at: number, id: string): Deno.KvKey => [
  ...OUTBOX_DEAD_PREFIX,
  at,
  id,
];

/** A course as the dashboard names it. Course ids are Thinkific-wide, so they key the dashboard. */
export interface CourseInfo {
  tenant_id: string;
  course_id: number;
  course_name: string;
}

/** A lesson as the dashboard draws it. */
export interface LessonInfo {
  lesson_id: number;
  lesson_name: string;
  lesson_type: string;
  position: number | null;
  chapter_id: number;
  chapter_name: string;
}

/** Counters kept per course (unmatched events are counted from their list, which expires). */
export type CourseCounter = "learners";

export const courseInfoKey = (course: number): Deno.KvKey => ["dash_course", course];
export const COURSE_INFO_PREFIX: Deno.KvKey = ["dash_course"];
export const COURSE_COUNTER_PREFIX: Deno.KvKey = ["dash_course_n"];
export const courseCounterKey = (course: number, counter: CourseCounter): Deno.KvKey => [
  ...COURSE_COUNTER_PREFIX,
  course,
  counter,
];
export const courseDayKey = (course: number, day: number): Deno.KvKey => [
  "dash_course_day",
  course,
  day,
];
export const courseDayPrefix = (course: number): Deno.KvKey => ["dash_course_day", course];
export const lessonInfoKey = (course: number, lesson: number): Deno.KvKey => [
  "dash_lesson",
  course,
  lesson,
];
export const lessonCounterKey = (course: number, lesson: number): Deno.KvKey => [
  "dash_lesson_n",
  course,
  lesson,
];

/**
 * Where one learner stands in one course, rewritten in each of their records' commits. Course ids
 * are Thinkific-wide, so the course and the user id key it.
 */
export interface LearnerEntry {
  tenant_id: string;
  user_id: number;
  user_email: string;
  course_id: number;
  last_lesson_id: number;
  last_lesson_name: string;
  last_chapter_name: string;
  /** The percentage of the latest progress seen. */
  percentage_completed: number;
  /** Distinct lessons completed. */
  lessons_completed: number;
  /** The latest progress seen: its time is the key of the learner in the activity index. */
  last_activity_at: string;
}

export const learnerKey = (course: number, user: number): Deno.KvKey => ["learners", course, user];
export const learnerActivityPrefix = (course: number): Deno.KvKey => [
  "learners_by_activity",
  course,
];
export const learnerActivityKey = (course: number, at: number, user: number): Deno.KvKey => [
  ...learnerActivityPrefix(course),
  at,
  user,
];

/** What stays of an erased learner: enough to refuse their events, nothing else. */
export interface ErasureTombstone {
  erased_at: string;
}

export const erasedKey = (tenantId: string, userId: number): Deno.KvKey => [
  "erased",
  tenantId,
  userId,
];
