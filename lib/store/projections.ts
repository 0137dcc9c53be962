/**
 * Projections: the views derived from records (record indexes by school, user and course, learner
 * entries, dashboard counters, outbox entries), written off the request path.
 *
 * A record's commit adds one {@linkcode Projection} entry under
 * `["projection", tenant, user, course, n]` ({@linkcode addProjection}), `n` counting the
 * enrollment's records, so an enrollment's records are projected in the order they were made. A
 * projection batch ({@linkcode projectBatch}) reads the first entries and their records, and
 * commits in one atomic: every derived write of those records, the deletion of their entries, and
 * a rewrite of the lease key `["projector"]`, checked as read. Two processes projecting at once
 * therefore never both commit a batch, and each record is projected exactly once, whatever the
 * crashes or restarts: an entry left by a process that stopped is projected by the next batch of
 * any process. {@linkcode projectPending} runs batches until none is left; readers of a derived
 * view call it first (through the process's projector, `lib/projector.ts`), so they read what they
 * read when these views were written in the record's own commit.
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
  type OutboxEntry,
  outboxIdOf,
  outboxKey,
  type Projection,
  PROJECTION_PREFIX,
  projectionKey,
  PROJECTOR_LEASE_KEY,
  type ProjectorLease,
} from "./keys.ts";
import { addLearnerProgress } from "./learners.ts";
import { readAll } from "./_read.ts";
import { addOutboxEntries, type Leased, messageIdOf } from "./outbox.ts";
import { CommitPlan, fitsWithin, grow, type Mutations } from "./plan.ts";
import { getRecords, indexRecord } from "./records.ts";
import { addCompletion, addLearner } from "./stats.ts";

/** Entries one batch reads at most (a batch commits those that fit in one atomic). */
export const PROJECTION_BATCH = 100;

/** Adds the projection entry of an enrollment's `n`-th record to `op` (the record's commit). */
export function addProjection(
  op: Mutations,
  enrollment: Omit<EventCoordinates, "at">,
  n: number,
  projection: Projection,
) {
  return op.set(projectionKey(enrollment, n), projection);
}

/** Adds the derived writes of one record to `op`. */
export function project(
  op: Mutations,
  record: LessonProgressRecord,
  projection: Projection,
  destinations: readonly string[],
  now: number,
  outbox: { leaseUntil?: number; made?: OutboxEntry[] } = {},
) {
  indexRecord(op, record);
  addCompletion(op, record, projection.firstLesson);
  addLearnerProgress(op, record, projection.learner);
  if (projection.newLearner) {
    addLearner(op, {
      tenant_id: record.tenant_id,
      course_id: record.course_id,
      course_name: record.course_name,
    });
  }
  return addOutboxEntries(op, record, destinations, now, outbox);
}

/** Options of {@linkcode projectBatch} and {@linkcode projectPending}. */
export interface ProjectOptions {
  /** Each projected record gets a pending outbox entry for each. */
  destinations: readonly string[];
  now: number;
  /**
   * Makes the outbox entries already leased for `ms` by the process that projects (its forwarder
   * delivers them at once): `to` receives them after each batch's commit.
   */
  lease?: { ms: number; to: (leased: Leased[]) => void };
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
 * atomic commit) in one commit checked against the lease as read. A batch that loses to another
 * process's projects nothing and says `more`. An outbox entry that exists already (made by hand,
 * or by a copy of the database) is left as it is.
 */
export async function projectBatch(kv: Deno.Kv, options: ProjectOptions): Promise<BatchResult> {
  // The list first: should it throw at once, no read is left running with nobody awaiting it.
  const listed = Array.fromAsync(kv.list<Projection>({ prefix: PROJECTION_PREFIX }, {
    limit: PROJECTION_BATCH,
  }));
  const [lease, entries] = await Promise.all([
    kv.get<ProjectorLease>(PROJECTOR_LEASE_KEY),
    listed,
  ]);
  if (entries.length === 0) return { projected: 0, more: false };
  const records = new Map(
    (await getRecords(kv, entries.map((e) => e.value.position))).map((r) => [
      `${r.tenant_id}\u0000${r.progress_event_id}`,
      r,
    ]),
  );
  const recordOf = (entry: Deno.KvEntry<Projection>) => {
    const [, tenant, id] = entry.value.position;
    return records.get(`${tenant}\u0000${id}`);
  };
  let destinationsOf = (_: LessonProgressRecord) => options.destinations;
  const { lease: handOver } = options;
  const leaseUntil = handOver ? options.now + handOver.ms : undefined;
  for (let attempt = 0;; attempt++) {
    const op = new CommitPlan().check(lease);
    const total = op.profile().size;
    total.mutations += 1; // the lease's rewrite
    let taken = 0;
    const made: OutboxEntry[] = [];
    for (const entry of entries) {
      const record = recordOf(entry);
      const writes = new CommitPlan().delete(entry.key);
      const mine: OutboxEntry[] = [];
      // A record that is gone (its learner erased meanwhile) leaves nothing to derive.
      if (record) {
        project(writes, record, entry.value, destinationsOf(record), options.now, {
          leaseUntil,
          made: mine,
        });
      }
      const size = writes.profile().size;
      // The first entry always goes in: a batch that could take none would never end.
      if (taken > 0 && !fitsWithin(total, size)) break;
      grow(total, size);
      op.checks.push(...writes.checks);
      op.mutations.push(...writes.mutations);
      made.push(...mine);
      taken++;
    }
    const next: ProjectorLease = { at: options.now, projected: taken };
    op.set(PROJECTOR_LEASE_KEY, next);
    const res = await op.applyTo(kv.atomic()).commit();
    if (res.ok) {
      if (handOver && made.length > 0) {
        const { versionstamp } = res;
        handOver.to(made.map((value) => ({ key: outboxKey(value.id), value, versionstamp })));
      }
      return {
        projected: taken,
        more: taken < entries.length || entries.length === PROJECTION_BATCH,
      };
    }
    const now = await kv.get(PROJECTOR_LEASE_KEY);
    if (attempt > 0 || now.versionstamp !== lease.versionstamp) return { projected: 0, more: true };
    // The lease held: an outbox entry of the batch exists already. Leave those as they are.
    const existing = await existingOutbox(kv, [...records.values()], options.destinations);
    destinationsOf = (r) =>
      options.destinations.filter((d) => !existing.has(outboxIdOf(d, messageIdOf(r))));
  }
}

/** The ids of the outbox entries of `records` that exist. */
async function existingOutbox(
  kv: Deno.Kv,
  records: LessonProgressRecord[],
  destinations: readonly string[],
): Promise<Set<string>> {
  const ids = records.flatMap((r) => destinations.map((d) => outboxIdOf(d, messageIdOf(r))));
  const read = await readAll(kv, ids.map(outboxKey));
  return new Set(ids.filter((_, i) => read[i].versionstamp !== null));
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
