/**
 * Data access for stored events: reads, range lists and the atomic mutations that insert and update
 * them. Callers compose the mutations into one commit.
 *
 * @example
 * ```ts
 * const op = kv.atomic();
 * insertEvent(op, stored, retentionMs);
 * const { ok } = await op.commit(); // false when the event id was already stored
 * ```
 * @module
 */
import type { HandledTopic } from "../config.ts";
import {
  enrollmentKey,
  type EnrollmentSummary,
  eventBodyKey,
  type EventCoordinates,
  eventIdKey,
  eventKey,
  type EventPointer,
  eventRange,
  type StoredEvent,
} from "./keys.ts";

/** What is known about an incoming event id, and its enrollment. */
export interface EventState {
  /** The stored event (`value: null` when it is not stored, or has expired). */
  entry: Deno.KvEntryMaybe<StoredEvent>;
  /** The id was seen before (even if the stored event has since expired). */
  known: boolean;
  /** The first delivery placed the event elsewhere than this body says (other user, time…). */
  moved: boolean;
  /** The enrollment summary of the body's school, user and course. */
  enrollment: Deno.KvEntryMaybe<EnrollmentSummary>;
}

type EventIdentity = EventCoordinates & { id: string; topic: HandledTopic };

/**
 * Reads an event's state and its enrollment in one round trip. When a redelivery's body places
 * the event elsewhere than the first delivery did, the first delivery's placement wins (one more
 * read, and `moved` is set).
 */
export async function readEventState(kv: Deno.Kv, e: EventIdentity): Promise<EventState> {
  const [entry, pointer, enrollment] = await kv.getMany<
    [StoredEvent, EventPointer, EnrollmentSummary]
  >([eventKey(e), eventIdKey(e.tenantId, e.id), enrollmentKey(e)]);
  const p = pointer.value;
  if (entry.value !== null || p === null) {
    return { entry, known: p !== null, moved: false, enrollment };
  }
  const stored = await kv.get<StoredEvent>(eventKey({ ...e, ...p }));
  return { entry: stored, known: true, moved: true, enrollment };
}

/** Unclaimed events of one topic of an enrollment with `from <= at <= to`, oldest first. */
export async function listUnclaimed(
  kv: Deno.Kv,
  e: Omit<EventCoordinates, "at">,
  topic: HandledTopic,
  from: number,
  to: number,
): Promise<Deno.KvEntry<StoredEvent>[]> {
  const out: Deno.KvEntry<StoredEvent>[] = [];
  for await (const entry of kv.list<StoredEvent>(eventRange(e, topic, from, to))) {
    if (entry.value.pairedWith === null) out.push(entry);
  }
  return out;
}

/** How long a stored event has left to live, given when it was first stored. */
function remaining(event: StoredEvent, retentionMs: number, now: number): number {
  return Math.max(60_000, event.receivedAt + retentionMs - now);
}

/**
 * Adds the insertion of a new event to `op`: fails the commit if its id was stored before, so a
 * redelivery or a concurrent duplicate is never stored twice. The raw body goes under its own key,
 * written once, so the event's own value stays small when it is updated.
 */
export function insertEvent(
  op: Deno.AtomicOperation,
  event: StoredEvent,
  body: Uint8Array,
  retentionMs: number,
) {
  const idKey = eventIdKey(event.tenantId, event.id);
  const pointer: EventPointer = {
    userId: event.userId,
    courseId: event.courseId,
    topic: event.topic,
    at: event.at,
  };
  op.check({ key: idKey, versionstamp: null })
    .set(idKey, pointer)
    .set(eventKey(event), event, { expireIn: retentionMs })
    .set(eventBodyKey(event.tenantId, event.id), body, { expireIn: retentionMs });
  return op;
}

/**
 * Adds the update of a stored event to `op`, checked against the version that was read, so a
 * concurrent change makes the commit fail and the caller re-read.
 */
export function updateEvent(
  op: Deno.AtomicOperation,
  read: Deno.KvEntry<StoredEvent>,
  next: StoredEvent,
  retentionMs: number,
  now: number,
) {
  return op.check(read).set(read.key, next, { expireIn: remaining(next, retentionMs, now) });
}
