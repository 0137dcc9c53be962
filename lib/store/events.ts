/**
 * Data access for stored events: the read of an event's surroundings, and the mutations that insert
 * and update events. Callers compose the mutations into one commit plan.
 *
 * @example
 * ```ts
 * const view = await readView(kv, event, 500);
 * const plan = new CommitPlan();
 * insertEvent(plan, stored, body, retentionMs);
 * ```
 * @module
 */
import { type HandledTopic, LESSON_TOPIC, PROGRESS_TOPIC } from "../config.ts";
import { clusterSpan } from "../matching/policy.ts";
import {
  type CourseInfo,
  courseInfoKey,
  enrollmentKey,
  type EnrollmentSummary,
  EVENT_ID_GRACE_MS,
  eventBodyKey,
  type EventCoordinates,
  eventIdKey,
  eventKey,
  type EventPointer,
  eventRange,
  FEED_FENCE_KEY,
  learnerEventIdKey,
  type StoredEvent,
} from "./keys.ts";
import { MAX_CLUSTER_SPAN_MS, MAX_INLINE_BODY_BYTES } from "./limits.ts";
import type { Mutations } from "./plan.ts";
import { parseWebhook, type ThinkificEvent } from "../thinkific/schemas.ts";

/**
 * What an event's key holds: its delivery state and its raw body, what the body says (the event's
 * identity and facts) left out, since it is read from the body; or, for a body stored under its own
 * key (and for events stored by earlier versions), the whole event without its body.
 */
export type EventValue =
  | Omit<StoredEvent, keyof ThinkificEvent>
  | Omit<StoredEvent, "body">;

/** What an event's key holds for `event` (see {@linkcode EventValue}). */
export function encodeEvent(event: StoredEvent): EventValue {
  const { id, topic, tenantId, userId, courseId, at, facts, body, ...state } = event;
  if (body !== undefined) return { ...state, body };
  return { ...state, id, topic, tenantId, userId, courseId, at, facts };
}

const decoder = new TextDecoder();

/**
 * The event an event's key holds, its identity and facts read from its body when they are not
 * stored. The body was validated when it was received; the schemas must keep accepting what they
 * once accepted for as long as events are kept (`RETENTION_DAYS`).
 */
export function decodeEvent(value: EventValue): StoredEvent {
  if ("facts" in value) return value;
  const parsed = parseWebhook(JSON.parse(decoder.decode(value.body)), null);
  // Stryker disable next-line all: unreachable unless the schemas stop accepting a stored body
  if (parsed.kind !== "event") throw new Error(`a stored event's body no longer parses`);
  return { ...parsed.event, ...value };
}

/** An entry of an event's key, decoded (see {@linkcode decodeEvent}). */
const decoded = (e: Deno.KvEntry<EventValue>): Deno.KvEntry<StoredEvent> => ({
  ...e,
  value: decodeEvent(e.value),
});

/** An event's identity and place. */
export type EventIdentity = EventCoordinates & { id: string; topic: HandledTopic };

/** What one delivery reads before it decides. */
export interface EventView {
  /** Where the event is: the body's place, or the first delivery's when a redelivery moved it. */
  place: EventIdentity;
  /** The event-id index entry (`value: null`: the id was never seen, or has expired). */
  pointer: Deno.KvEntryMaybe<EventPointer>;
  /** The stored event, if it is stored. */
  self: Deno.KvEntry<StoredEvent> | null;
  /** The enrollment's summary: also its serial-order key, checked by every commit. */
  enrollment: Deno.KvEntryMaybe<EnrollmentSummary>;
  /** Unclaimed events of the other topic within `at ± window`, oldest first. */
  counterparts: Deno.KvEntry<StoredEvent>[];
  /** The change feed's fence (see {@linkcode FEED_FENCE_KEY}): a record is placed at or after it. */
  fence: Deno.KvEntryMaybe<number>;
  /** The course as the dashboard names it (`null` when not read: it is then written again). */
  course: CourseInfo | null;
  /**
   * Every unclaimed event of the enrollment, of both topics, with `from <= at <= to`, each topic's
   * in key order (absent: not known). A commit of this process keeps it up to date for its
   * enrollment's next delivery (see `warm.ts`).
   */
  known?: KnownEvents;
  /** Not read: presumed, as in an enrollment with no events (see `presumed.ts`). */
  presumed?: true;
}

/** The unclaimed events of an enrollment over a span of time, of both topics (see `EventView`). */
export interface KnownEvents {
  from: number;
  to: number;
  events: Deno.KvEntry<StoredEvent>[];
}

const counterpartOf = (topic: HandledTopic): HandledTopic =>
  topic === LESSON_TOPIC ? PROGRESS_TOPIC : LESSON_TOPIC;

/** Unclaimed events of one topic of an enrollment with `from <= at <= to`, oldest first. */
export async function listUnclaimed(
  kv: Deno.Kv,
  e: Omit<EventCoordinates, "at">,
  topic: HandledTopic,
  from: number,
  to: number,
): Promise<Deno.KvEntry<StoredEvent>[]> {
  const out: Deno.KvEntry<StoredEvent>[] = [];
  if (to < from) return out;
  for await (const entry of kv.list<EventValue>(eventRange(e, topic, from, to))) {
    if (entry.value.pairedWith === null) out.push(decoded(entry));
  }
  return out;
}

/**
 * Reads what a delivery decides from, in one round trip: the stored event, the event-id index, the
 * enrollment, the feed's fence and the course's name (one `getMany`) beside two range lists of the
 * enrollment's unclaimed events, one per topic, over `at ± 2 windows` (`known`; the counterparts are
 * those of the other topic within `at ± window`). When a redelivery's body places the event
 * elsewhere than its first delivery did, the first delivery's place wins (one more read, and no
 * `known`).
 */
export async function readView(
  kv: Deno.Kv,
  e: EventIdentity,
  windowMs: number,
): Promise<EventView> {
  const other = counterpartOf(e.topic);
  const near = (x: EventIdentity) => listUnclaimed(kv, x, other, x.at - windowMs, x.at + windowMs);
  // Both topics over twice the window: what the enrollment's next delivery (its counterpart, most
  // often) needs to decide without a read, once this one has committed.
  const [from, to] = [e.at - 2 * windowMs, e.at + 2 * windowMs];
  const [[self, pointer, enrollment, fence, course], mine, theirs] = await Promise.all([
    kv.getMany<[EventValue, EventPointer, EnrollmentSummary, number, CourseInfo]>([
      eventKey(e),
      eventIdKey(e.tenantId, e.id),
      enrollmentKey(e),
      FEED_FENCE_KEY,
      courseInfoKey(e.courseId),
    ]),
    listUnclaimed(kv, e, e.topic, from, to),
    listUnclaimed(kv, e, other, from, to),
  ]);
  const p = pointer.value;
  if (self.value !== null || p === null || p.topic !== e.topic) {
    return {
      place: e,
      pointer,
      self: self.value ? decoded(self as Deno.KvEntry<EventValue>) : null,
      enrollment,
      counterparts: theirs.filter((x) => Math.abs(x.value.at - e.at) <= windowMs),
      fence,
      course: course.value,
      known: { from, to, events: [...mine, ...theirs] },
    };
  }
  // Seen before, elsewhere (or expired): read it where its first delivery put it.
  const place: EventIdentity = { ...e, userId: p.userId, courseId: p.courseId, at: p.at };
  const [[moved, placeEnrollment], placeCounterparts] = await Promise.all([
    kv.getMany<[EventValue, EnrollmentSummary]>([eventKey(place), enrollmentKey(place)]),
    near(place),
  ]);
  return {
    place,
    pointer,
    self: moved.value ? decoded(moved as Deno.KvEntry<EventValue>) : null,
    enrollment: placeEnrollment,
    counterparts: placeCounterparts,
    fence,
    course: place.courseId === e.courseId ? course.value : null,
  };
}

/**
 * The unclaimed events of both topics in the chain of overlapping windows around `place` (its
 * cluster, see `clusterSpan`): read only when an inexact pair is possible, since rivals and their
 * own counterparts then decide who gets whom. The range starts at `at ± 2 windows` and grows until
 * it holds the whole chain, up to {@linkcode MAX_CLUSTER_SPAN_MS} either side.
 */
export async function readCluster(
  kv: Deno.Kv,
  place: EventIdentity,
  windowMs: number,
): Promise<Deno.KvEntry<StoredEvent>[]> {
  const topics = [place.topic, counterpartOf(place.topic)];
  const lowest = place.at - MAX_CLUSTER_SPAN_MS;
  const highest = place.at + MAX_CLUSTER_SPAN_MS;
  let from = place.at - 2 * windowMs;
  let to = place.at + 2 * windowMs;
  const both = (a: number, b: number) =>
    Promise.all(topics.map((t) => listUnclaimed(kv, place, t, a, b))).then((x) => x.flat());
  let events = await both(from, to);
  for (;;) {
    const others = events.filter((x) => x.value.id !== place.id || x.value.topic !== place.topic);
    const span = clusterSpan(others.map((x) => x.value.at), place.at, windowMs);
    if (
      (span.from - windowMs >= from || from <= lowest) &&
      (span.to + windowMs <= to || to >= highest)
    ) return events;
    const newFrom = Math.max(lowest, Math.min(from, span.from - 2 * windowMs));
    const newTo = Math.min(highest, Math.max(to, span.to + 2 * windowMs));
    const [before, after] = await Promise.all([both(newFrom, from - 1), both(to + 1, newTo)]);
    events = [...before, ...events, ...after];
    from = newFrom;
    to = newTo;
  }
}

/** How long a stored event has left to live, given when it was first stored. */
export function remaining(event: StoredEvent, retentionMs: number, now: number): number {
  return Math.max(60_000, event.receivedAt + retentionMs - now);
}

/**
 * Adds the insertion of a new event to `op`: fails the commit if its id was stored before, so a
 * redelivery or a concurrent duplicate is never stored twice. The raw body goes inside the event's
 * value, in place of its facts (one key); a body over {@linkcode MAX_INLINE_BODY_BYTES} goes under
 * its own key, written once, so the event's value stays small when it is updated. With `indexId` (by
 * default: an event stored without a pair), the event also gets a key in its learner's index of
 * ids, which lives as long as its pointer: an erasure finds the pointer there after the event has
 * expired. (A paired event's record names it; the collator lists most unpaired ones in their
 * enrollment summary instead, see `withLone`.)
 */
export function insertEvent(
  op: Mutations,
  event: StoredEvent,
  body: Uint8Array,
  retentionMs: number,
  indexId = event.pairedWith === null,
) {
  const idKey = eventIdKey(event.tenantId, event.id);
  const pointer: EventPointer = {
    userId: event.userId,
    courseId: event.courseId,
    topic: event.topic,
    at: event.at,
  };
  const stored = insertedForm(event, body);
  op.check({ key: idKey, versionstamp: null })
    .set(idKey, pointer, { expireIn: retentionMs + EVENT_ID_GRACE_MS })
    .set(eventKey(event), encodeEvent(stored), { expireIn: retentionMs });
  if (stored.body === undefined) {
    op.set(eventBodyKey(event.tenantId, event.id), body, { expireIn: retentionMs });
  }
  if (indexId) {
    op.set(learnerEventIdKey(event.tenantId, event.userId, event.id), null, {
      expireIn: retentionMs + EVENT_ID_GRACE_MS,
    });
  }
  return op;
}

/**
 * The event as its key reads back once {@linkcode insertEvent} has stored it with `body`: the body
 * inside, unless it is over {@linkcode MAX_INLINE_BODY_BYTES} (then under its own key).
 */
export function insertedForm(event: StoredEvent, body: Uint8Array): StoredEvent {
  return { ...event, body: body.byteLength <= MAX_INLINE_BODY_BYTES ? body : undefined };
}

/**
 * Adds the update of a stored event to `op`, checked against the version that was read, so a
 * concurrent change makes the commit fail and the caller re-read.
 */
export function updateEvent(
  op: Mutations,
  read: Deno.KvEntry<StoredEvent>,
  next: StoredEvent,
  retentionMs: number,
  now: number,
) {
  return op.check(read).set(read.key, encodeEvent(next), {
    expireIn: remaining(next, retentionMs, now),
  });
}
