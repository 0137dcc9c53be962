/**
 * Flights: records a forwarder's sweep projects and forwards at once, without an outbox entry
 * each. The projection batch's commit writes one {@linkcode OutboxFlight} per destination under
 * `["outbox_flight", until, id]` ({@linkcode addFlights}) instead of an entry and a due key per
 * record, and hands the flights to the process's forwarder. When every attempt of a flight has
 * ended, {@linkcode landFlight} deletes it in one commit, with a pending (or dead) outbox entry for
 * each record whose attempt failed: those are retried like any other entry. Delivered records leave
 * nothing in the outbox.
 *
 * A process that stops leaves its flights: past `until` (the lease, longer than any attempt), any
 * process's sweep expands a flight into pending outbox entries ({@linkcode expandFlights}), so its
 * records are delivered again (delivery is at least once; a receiver deduplicates by message id).
 * An erasure takes its learner's records out of the flights ({@linkcode withoutRecords}); a flight
 * landed after that writes no entry for them.
 *
 * @example
 * ```ts
 * const op = new CommitPlan();
 * const flights = addFlights(op, records, ["webhook"], now, now + LEASE_MS);
 * // …commit op, deliver each flight's records, then:
 * await landFlight(kv, held, [{ record, error: "HTTP 500", retryInMs: 10_000 }], Date.now());
 * ```
 * @module
 */
import type { LessonProgressRecord } from "../matching/record.ts";
import { decodeEvent, type EventValue } from "./events.ts";
import {
  eventIdKey,
  eventKey,
  type EventPointer,
  OUTBOX_FLIGHT_PREFIX,
  type OutboxFlight,
  outboxFlightKey,
  outboxKey,
  recordKey,
  type RecordPosition,
} from "./keys.ts";
import {
  addFailedEntry,
  addOutboxEntries,
  entryIdOf,
  existingEntries,
  messageParts,
} from "./outbox.ts";
import { PROGRESS_TOPIC } from "../config.ts";
import { keyBytes, type Mutations, type PlanSize } from "./plan.ts";
import { recordPositionOf } from "./records.ts";
import { retryWhenBusy } from "./retry.ts";
import { readAll } from "./_read.ts";

/**
 * Records one flight holds at most, so that landing or expanding it is one commit within Deno KV's
 * 100 checks (one per entry it may write, and the flight's).
 */
export const FLIGHT_RECORDS = 64;

/** A flight as its process holds it: the committed key and value, and the records themselves. */
export interface HeldFlight {
  entry: Deno.KvEntry<OutboxFlight>;
  /** When other processes may expand it: its key's `until_ms`. */
  until: number;
  records: LessonProgressRecord[];
}

/** A flight written to a commit, before the commit's version is known. */
export type NewFlight = Omit<HeldFlight, "entry"> & { key: Deno.KvKey; value: OutboxFlight };

/** A record of a flight whose attempt failed: retried after `retryInMs`, or dead (`null`). */
export interface FlightFailure {
  record: LessonProgressRecord;
  error: string;
  retryInMs: number | null;
}

/** A position's identity, to compare positions. */
const positionId = (p: RecordPosition) => `${p[0]} ${p[1]} ${p[2]}`;

/**
 * Adds the flights of `records` to `op` (a projection batch's commit): one per destination and
 * {@linkcode FLIGHT_RECORDS} records, expandable by others from `until` on.
 */
export function addFlights(
  op: Mutations,
  records: readonly LessonProgressRecord[],
  destinations: readonly string[],
  now: number,
  until: number,
): NewFlight[] {
  const flights: NewFlight[] = [];
  for (const destination of destinations) {
    for (let i = 0; i < records.length; i += FLIGHT_RECORDS) {
      const part = records.slice(i, i + FLIGHT_RECORDS);
      const value: OutboxFlight = {
        destination,
        records: part.map(recordPositionOf),
        createdAt: now,
      };
      // A fresh random id: no other commit writes this key, so it needs no check.
      const key = outboxFlightKey(until, crypto.randomUUID());
      op.set(key, value);
      flights.push({ key, value, until, records: part });
    }
  }
  return flights;
}

/** Bytes a flight's value takes per record, at most (for commit sizes). */
export const FLIGHT_BYTES_PER_RECORD = 160;

/** A flight key's bytes, at most (its id is a UUID). */
const FLIGHT_KEY_BYTES = keyBytes(
  outboxFlightKey(Number.MAX_SAFE_INTEGER, "00000000-0000-0000-0000-000000000000"),
);

/**
 * What the flights of `destinations` destinations add to a commit besides their records (each
 * record adds {@linkcode FLIGHT_BYTES_PER_RECORD} per destination), estimated from above.
 */
export function flightsSize(destinations: number): PlanSize {
  return {
    checks: 0,
    mutations: destinations,
    keyBytes: destinations * FLIGHT_KEY_BYTES,
    // The key counted twice, as `CommitPlan.measure` does, and the value's fields (a name of up
    // to 32 characters and a time).
    totalBytes: destinations * (2 * FLIGHT_KEY_BYTES + 128),
  };
}

/**
 * Ends a flight whose attempts have all ended: deletes it and writes an outbox entry for each
 * failure, in one commit checked against the flight as held. When the flight changed meanwhile
 * (an erasure took records out), the records still in it are landed; an entry that exists already
 * is left as it is. Resolves `false` when the flight is gone (another process expanded it after
 * its lease: it delivers those records again).
 */
export async function landFlight(
  kv: Deno.Kv,
  flight: HeldFlight,
  failures: readonly FlightFailure[],
  now: number,
): Promise<boolean> {
  let current: Deno.KvEntry<OutboxFlight> = flight.entry;
  let left = failures;
  for (;;) {
    const still = new Set(current.value.records.map(positionId));
    left = left.filter((f) => still.has(positionId(recordPositionOf(f.record))));
    const { destination, createdAt } = current.value;
    const res = await retryWhenBusy(() => {
      const op = kv.atomic().check(current).delete(current.key);
      for (const f of left) {
        addFailedEntry(op, f.record, destination, { ...f, createdAt, now });
      }
      return op.commit();
    });
    if (res.ok) return true;
    const ids = left.map((f) => outboxKey(entryIdOf(destination, f.record)));
    const [again, ...existing] = await readAll<OutboxFlight>(kv, [current.key, ...ids]);
    if (again.value === null) return false;
    current = again as Deno.KvEntry<OutboxFlight>;
    left = left.filter((_, i) => existing[i].versionstamp === null);
  }
}

/**
 * Expands the flights whose lease ended by `now` (their process stopped) into pending outbox
 * entries due at `now`, one commit per flight, checked against the flight as read. Records erased
 * meanwhile and entries that exist already are left out. Resolves with the entries written.
 */
export async function expandFlights(kv: Deno.Kv, now: number): Promise<number> {
  const due = { start: [...OUTBOX_FLIGHT_PREFIX], end: [...OUTBOX_FLIGHT_PREFIX, now + 1] };
  const flights = await retryWhenBusy(() =>
    Array.fromAsync(kv.list<OutboxFlight>(due, { limit: 100 }))
  );
  let written = 0;
  for (let flight of flights) {
    for (;;) {
      const { destination, createdAt } = flight.value;
      const read = await readAll<LessonProgressRecord>(kv, flight.value.records.map(recordKey));
      const records = read.flatMap((r) => r.value ? [r.value] : []);
      const existing = await existingEntries(kv, records, [destination]);
      const fresh = records.filter((r) => !existing.has(entryIdOf(destination, r)));
      const op = kv.atomic().check(flight).delete(flight.key);
      for (const r of fresh) addOutboxEntries(op, r, [destination], now, { createdAt });
      if ((await retryWhenBusy(() => op.commit())).ok) {
        written += fresh.length;
        break;
      }
      const again = await kv.get<OutboxFlight>(flight.key);
      if (again.value === null) break;
      flight = again as Deno.KvEntry<OutboxFlight>;
    }
  }
  return written;
}

/** When the first flight's lease ends, or `null` when no flight is held. */
export async function firstFlightEnd(kv: Deno.Kv): Promise<number | null> {
  for await (const f of kv.list({ prefix: OUTBOX_FLIGHT_PREFIX }, { limit: 1 })) {
    return f.key[1] as number;
  }
  return null;
}

/**
 * Takes the records at `positions` out of every flight, in `op` (an erasure's commit), checked
 * against the flights as read. Resolves with how many records were taken out.
 */
export async function withoutRecords(
  kv: Deno.Kv,
  op: Mutations,
  positions: readonly RecordPosition[],
): Promise<number> {
  const gone = new Set(positions.map(positionId));
  let removed = 0;
  for await (const f of kv.list<OutboxFlight>({ prefix: OUTBOX_FLIGHT_PREFIX })) {
    const kept = f.value.records.filter((p) => !gone.has(positionId(p)));
    if (kept.length === f.value.records.length) continue;
    removed += f.value.records.length - kept.length;
    op.check(f);
    if (kept.length === 0) op.delete(f.key);
    else op.set(f.key, { ...f.value, records: kept });
  }
  return removed;
}

/**
 * Whether a message with no outbox entry is missing one because its record was forwarded from a
 * flight (or is being forwarded): its progress event is stored, and paired. Answers `false` once
 * the event has expired (`RETENTION_DAYS`), as a delivered entry's retention ends.
 */
export async function forwardedFromFlight(kv: Deno.Kv, messageId: string): Promise<boolean> {
  const parts = messageParts(messageId);
  if (!parts) return false;
  const pointer = await kv.get<EventPointer>(eventIdKey(parts.tenantId, parts.eventId));
  if (!pointer.value || pointer.value.topic !== PROGRESS_TOPIC) return false;
  const key = eventKey({ ...pointer.value, tenantId: parts.tenantId, id: parts.eventId });
  const event = await kv.get<EventValue>(key);
  return event.value !== null && decodeEvent(event.value).recordAt != null;
}
