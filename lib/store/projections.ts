/**
 * Projections: records and the views derived from them (the record itself and its indexes by
 * school, user and course, its change-feed entry, the end of its events' unmatched entries,
 * learner entries, dashboard counters, outbox entries, or the flights a forwarder's sweep sends
 * them from: see `flights.ts`), written off the request path.
 *
 * A record's commit adds one {@linkcode Projection} entry, the record inside, under
 * `["projection", tenant, user, course, n]` ({@linkcode addProjection}), `n` counting the
 * enrollment's records, so an enrollment's records are projected in the order they were made. A
 * projection batch ({@linkcode projectBatch}) reads the first entries and commits in one atomic:
 * every write of those records, the deletion of their entries (each checked as listed), and a
 * rewrite of the lease key `["projector"]`, checked as read. Two processes projecting at once
 * therefore never both commit a batch, nor one a batch of entries the other projected between its
 * list and its read of the lease, and each record is projected exactly once, whatever the
 * crashes or restarts: an entry left by a process that stopped is projected by the next batch of
 * any process. {@linkcode projectPending} runs batches until none is left; readers of records and
 * derived views call it first (through the process's projector, `lib/projector.ts`), so they read
 * what they read when these were written in the record's own commit. A redelivery of a paired
 * event reads its record where it is, stored or pending ({@linkcode readRecord}).
 *
 * @example
 * ```ts
 * const projected = await projectPending(kv, { destinations: ["webhook"], now: Date.now() });
 * ```
 * @module
 */
import type { LessonProgressRecord } from "../matching/record.ts";
import {
  type EventCoordinates,
  type Projection,
  PROJECTION_PREFIX,
  projectionKey,
  PROJECTOR_LEASE_KEY,
  type ProjectorLease,
  recordKey,
  type RecordPosition,
  type StoredEvent,
} from "./keys.ts";
import { addLearnerProgress } from "./learners.ts";
import { readAll } from "./_read.ts";
import {
  addFlights,
  FLIGHT_BYTES_PER_RECORD,
  FLIGHT_RECORDS,
  flightsSize,
  type HeldFlight,
} from "./flights.ts";
import { addOutboxEntries, entryIdOf, existingEntries } from "./outbox.ts";
import { CommitPlan, fitsWithin, grow, type Mutations } from "./plan.ts";
import { storeRecord } from "./records.ts";
import { addCompletion, addLearner } from "./stats.ts";

/**
 * Entries one batch reads at most (a batch commits those that fit in one atomic): a record takes
 * about 11 mutations, and 2 more per destination, so this many fit within Deno KV's 1,000; and a
 * check of its entry, and one more per destination, within its 100 checks.
 */
export const PROJECTION_BATCH = 64;

/** Adds the projection entry of an enrollment's `n`-th record to `op` (the record's commit). */
export function addProjection(
  op: Mutations,
  enrollment: Omit<EventCoordinates, "at">,
  n: number,
  projection: Projection,
) {
  return op.set(projectionKey(enrollment, n), projection);
}

/** Adds the writes of one pending record to `op`: the record, then what derives from it. */
export function project(
  op: Mutations,
  projection: Projection,
  destinations: readonly string[],
  now: number,
) {
  const { record } = projection;
  storeRecord(op, record, projection.unlisted);
  addCompletion(op, record, projection.firstLesson);
  addLearnerProgress(op, record, projection.learner);
  if (projection.newLearner) {
    addLearner(op, {
      tenant_id: record.tenant_id,
      course_id: record.course_id,
      course_name: record.course_name,
    });
  }
  return addOutboxEntries(op, record, destinations, now);
}

/** Options of {@linkcode projectBatch} and {@linkcode projectPending}. */
export interface ProjectOptions {
  /** Each projected record gets a pending outbox entry for each. */
  destinations: readonly string[];
  now: number;
  /**
   * Forwards the batch's records from the process that projects (its forwarder delivers them at
   * once): instead of outbox entries, the commit writes flights held for `ms` (see `flights.ts`),
   * and `to` receives them after the commit.
   */
  flights?: { ms: number; to: (flights: HeldFlight[]) => void };
}

/** What {@linkcode projectBatch} did. */
export interface BatchResult {
  /** Records projected by this batch's commit. */
  projected: number;
  /** Entries were waiting (a lost race or a full batch: run another batch). */
  more: boolean;
}

/**
 * Projects the first pending entries (up to {@linkcode PROJECTION_BATCH}, and what fits in one
 * atomic commit) in one commit checked against the lease and each entry as read. A batch that
 * loses to another process's projects nothing and says `more`. An outbox entry that exists already
 * (made by hand, or by a copy of the database) is left as it is.
 */
export async function projectBatch(kv: Deno.Kv, options: ProjectOptions): Promise<BatchResult> {
  // The list first: should it throw at once, no read is left running with nobody awaiting it.
  const listed = Array.fromAsync(
    kv.list<Projection | LegacyProjection>({ prefix: PROJECTION_PREFIX }, {
      limit: PROJECTION_BATCH,
    }),
  );
  const [lease, entries] = await Promise.all([
    kv.get<ProjectorLease>(PROJECTOR_LEASE_KEY),
    listed,
  ]);
  if (entries.length === 0) return { projected: 0, more: false };
  const projections = await upgraded(kv, entries);
  const { flights: handOver } = options;
  // The destinations that get outbox entries in this commit: none when forwarded from flights.
  const entryDestinations = handOver ? [] : options.destinations;
  let destinationsOf = (_: LessonProgressRecord) => entryDestinations;
  const flightCount = handOver ? options.destinations.length : 0;
  for (let attempt = 0;; attempt++) {
    const op = new CommitPlan().check(lease);
    const total = op.measure().size;
    total.mutations += 1; // the lease's rewrite
    // A flight per destination and FLIGHT_RECORDS records of the batch.
    grow(total, flightsSize(flightCount * Math.ceil(PROJECTION_BATCH / FLIGHT_RECORDS)));
    let taken = 0;
    const forwarded: LessonProgressRecord[] = [];
    for (const [i, entry] of entries.entries()) {
      // Checked as listed: the list and the lease's read are two reads, so another process's
      // batch may have committed between them (the lease read after it, the entries before).
      const writes = new CommitPlan().check(entry).delete(entry.key);
      const projection = projections[i];
      // A legacy entry whose record is gone (its learner erased meanwhile) leaves nothing.
      if (projection) {
        project(writes, projection, destinationsOf(projection.record), options.now);
      }
      const size = writes.measure().size;
      size.totalBytes += FLIGHT_BYTES_PER_RECORD * flightCount;
      // The first entry always goes in: a batch that could take none would never end.
      if (taken > 0 && !fitsWithin(total, size)) break;
      grow(total, size);
      op.checks.push(...writes.checks);
      op.mutations.push(...writes.mutations);
      if (projection) forwarded.push(projection.record);
      taken++;
    }
    const next: ProjectorLease = { at: options.now, projected: taken };
    op.set(PROJECTOR_LEASE_KEY, next);
    const made = handOver
      ? addFlights(op, forwarded, options.destinations, options.now, options.now + handOver.ms)
      : [];
    const res = await op.applyTo(kv.atomic()).commit();
    if (res.ok) {
      if (handOver && made.length > 0) {
        const { versionstamp } = res;
        handOver.to(made.map(({ key, value, until, records }) => ({
          entry: { key, value, versionstamp },
          until,
          records,
        })));
      }
      return {
        projected: taken,
        more: taken < entries.length || entries.length === PROJECTION_BATCH,
      };
    }
    const now = await kv.get(PROJECTOR_LEASE_KEY);
    if (attempt > 0 || now.versionstamp !== lease.versionstamp) return { projected: 0, more: true };
    // The lease held: an outbox entry of the batch exists already. Leave those as they are.
    const records = projections.flatMap((p) => p ? [p.record] : []);
    const existing = await existingEntries(kv, records, entryDestinations);
    destinationsOf = (r) => entryDestinations.filter((d) => !existing.has(entryIdOf(d, r)));
  }
}

/**
 * A projection entry left by a version that stored the record in the record's own commit (with its
 * feed entry, and the end of its events' unmatched entries): where the record is.
 */
interface LegacyProjection extends Omit<Projection, "record" | "unlisted"> {
  position: RecordPosition;
}

/**
 * The projections of `entries`, legacy ones with their records read (`null`: the record is gone).
 * Projecting a legacy entry stores its record again as it is.
 */
async function upgraded(
  kv: Deno.Kv,
  entries: Deno.KvEntry<Projection | LegacyProjection>[],
): Promise<(Projection | null)[]> {
  const legacy = entries.flatMap((e) => "position" in e.value ? [recordKey(e.value.position)] : []);
  if (legacy.length === 0) return entries.map((e) => e.value as Projection);
  // In the order of the legacy entries.
  const read = await readAll<LessonProgressRecord>(kv, legacy);
  let next = 0;
  return entries.map(({ value }) => {
    if (!("position" in value)) return value;
    const { position: _, ...rest } = value;
    const record = read[next++].value;
    return record ? { ...rest, record, unlisted: [] } : null;
  });
}

/**
 * Projects every pending entry, batch after batch, until none is left (batches lost to another
 * process are run again: that process is projecting the same entries). Returns how many records
 * this call projected.
 */
export async function projectPending(
  kv: Deno.Kv,
  options: Omit<ProjectOptions, "now"> & { now: number | (() => number) },
): Promise<number> {
  const now = typeof options.now === "function" ? options.now : () => options.now as number;
  let projected = 0;
  for (;;) {
    const batch = await projectBatch(kv, { ...options, now: now() });
    projected += batch.projected;
    if (!batch.more) return projected;
  }
}

/**
 * The record of a paired event, in one read: stored at its `recordAt`, or still waiting for the
 * projector in its enrollment's projection entry `recordNumber`. `null`: neither, so its learner is
 * being erased.
 */
export async function readRecord(
  kv: Deno.Kv,
  event: Pick<StoredEvent, "tenantId" | "userId" | "courseId" | "recordAt" | "recordNumber">,
): Promise<LessonProgressRecord | null> {
  if (!event.recordAt) return null;
  const keys: Deno.KvKey[] = [recordKey(event.recordAt)];
  if (event.recordNumber !== undefined) keys.push(projectionKey(event, event.recordNumber));
  const [stored, pending] = await kv.getMany<[LessonProgressRecord, Projection]>(
    keys as [Deno.KvKey, Deno.KvKey],
  );
  return stored.value ?? pending?.value?.record ?? null;
}
