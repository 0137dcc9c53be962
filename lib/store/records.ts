/**
 * Data access for lesson-progress records and the unmatched list.
 *
 * @example
 * ```ts
 * const page = await listRecords(kv, { filter: { tenantId: "48213" }, limit: 100 });
 * console.log(page.records.length, page.cursor);
 * ```
 * @module
 */
import type { LessonProgressRecord } from "../matching/record.ts";
import {
  pairKey,
  type RecordFilter,
  recordKeys,
  type RecordPosition,
  recordPrefix,
  type StoredEvent,
  UNMATCHED_PREFIX,
  type UnmatchedEntry,
  unmatchedKey,
} from "./keys.ts";
import { listPage, type Position } from "./_page.ts";

/**
 * Adds a record to `op`: the record under every filter combination, the pair marker of both events
 * (checked absent, so an event can never be in two records) and the end of their unmatched entries.
 */
export function writeRecord(
  op: Deno.AtomicOperation,
  record: LessonProgressRecord,
  events: readonly StoredEvent[],
) {
  for (const event of events) {
    const key = pairKey(event.tenantId, event.id);
    op.check({ key, versionstamp: null }).set(key, record);
    if (event.gaveUpAt !== null) op.delete(unmatchedKey(event.gaveUpAt, event.tenantId, event.id));
  }
  const position: RecordPosition = [
    Date.parse(record.completed_at),
    record.tenant_id,
    record.progress_event_id,
  ];
  for (const key of recordKeys(record, position)) op.set(key, record);
  return op;
}

/** Adds an unmatched entry for a logic-channel event that gave up. */
export function writeUnmatched(op: Deno.AtomicOperation, event: StoredEvent, gaveUpAt: number) {
  const entry: UnmatchedEntry = {
    event_id: event.id,
    topic: event.topic,
    tenant_id: event.tenantId,
    user_id: event.userId,
    course_id: event.courseId,
    created_at: new Date(event.at).toISOString(),
    attempts: event.deliveries,
    gave_up_at: new Date(gaveUpAt).toISOString(),
  };
  return op.set(unmatchedKey(gaveUpAt, event.tenantId, event.id), entry);
}

/** One page of records, oldest completion first. */
export async function listRecords(
  kv: Deno.Kv,
  query: { filter: RecordFilter; since?: number; limit: number; after?: Position },
): Promise<{ records: LessonProgressRecord[]; cursor: string | null }> {
  const after = query.after &&
      (query.since === undefined || Number(query.after[0]) >= query.since)
    ? query.after
    : undefined;
  const page = await listPage<LessonProgressRecord>(kv, recordPrefix(query.filter), {
    limit: query.limit,
    after,
    from: after || query.since === undefined ? undefined : [query.since],
  });
  return { records: page.items, cursor: page.cursor };
}

/** One page of unmatched events, oldest give-up first. */
export async function listUnmatched(
  kv: Deno.Kv,
  query: { limit: number; after?: Position },
): Promise<{ events: UnmatchedEntry[]; cursor: string | null }> {
  const page = await listPage<UnmatchedEntry>(kv, UNMATCHED_PREFIX, query);
  return { events: page.items, cursor: page.cursor };
}

/** The latest `limit` records matching `filter`, newest completion first. */
export async function recentRecords(
  kv: Deno.Kv,
  filter: RecordFilter,
  limit: number,
): Promise<LessonProgressRecord[]> {
  const out: LessonProgressRecord[] = [];
  const iter = kv.list<LessonProgressRecord>({ prefix: recordPrefix(filter) }, {
    reverse: true,
    limit,
  });
  for await (const e of iter) out.push(e.value);
  return out;
}
