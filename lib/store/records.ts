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
import type { Mutations } from "./plan.ts";
import type { LessonProgressRecord } from "../matching/record.ts";
import {
  FEED_FENCE_KEY,
  FEED_PREFIX,
  feedKey,
  type FeedPosition,
  recordEntries,
  type RecordFilter,
  recordKey,
  recordPlan,
  type RecordPosition,
  type StoredEvent,
  UNMATCHED_PREFIX,
  type UnmatchedEntry,
  unmatchedKey,
} from "./keys.ts";
import { KV_MAX_GET_MANY } from "./limits.ts";
import { encodeCursor, listPage, type Position } from "./_page.ts";
import { retryWhenBusy } from "./retry.ts";

/** Where a record is stored: completion time, school, progress event id. */
export function recordPositionOf(record: LessonProgressRecord): RecordPosition {
  return [Date.parse(record.completed_at), record.tenant_id, record.progress_event_id];
}

/** Where a record is in the change feed: collation time, school, progress event id. */
export function feedPositionOf(record: LessonProgressRecord): FeedPosition {
  return [Date.parse(record.collated_at), record.tenant_id, record.progress_event_id];
}

/**
 * Adds a record's place in the change feed to `op` (the commit that makes the record, by pairing
 * its events): the commit checks the feed's `fence` as read, and the record's feed place (its
 * `collated_at`) must not be before the fence's time, so an advance of the fence since the read
 * fails the commit (see {@linkcode FEED_FENCE_KEY}). The events themselves (updated in the same
 * commit, checked against what was read) say they are paired, so neither can be in two records;
 * the record waits in a projection entry (see `addProjection`) until {@linkcode storeRecord}.
 */
export function placeRecord(
  op: Mutations,
  record: LessonProgressRecord,
  fence: Deno.KvEntryMaybe<number>,
) {
  if (Date.parse(record.collated_at) < (fence.value ?? 0)) {
    throw new RangeError("a record cannot be placed before the feed's fence");
  }
  return op.check({ key: fence.key, versionstamp: fence.versionstamp });
}

/** The unmatched entries of a pair's events (`[listed_ms, event_id]`), ended by its record. */
export function unlistedOf(events: readonly StoredEvent[]): [number, string][] {
  const out: [number, string][] = [];
  for (const event of events) {
    const listedAt = event.listedAt ?? event.gaveUpAt;
    if (listedAt != null) out.push([listedAt, event.id]);
  }
  return out;
}

/**
 * Adds a record to `op`, written by the projector: stored once (`"all"`) and indexed by school,
 * user and course (key-only entries, see `recordEntries`), in the change feed, and the end of its
 * events' unmatched entries (`unlisted`, see {@linkcode unlistedOf}).
 */
export function storeRecord(
  op: Mutations,
  record: LessonProgressRecord,
  unlisted: readonly [number, string][] = [],
) {
  for (const [listedAt, id] of unlisted) op.delete(unmatchedKey(listedAt, record.tenant_id, id));
  const position = recordPositionOf(record);
  for (const [key, value] of recordEntries(record, position)) op.set(key, value);
  op.set(feedKey(feedPositionOf(record)), position);
  return op;
}

/** Reads records by position, in order (missing ones are left out). */
export async function getRecords(
  kv: Deno.Kv,
  positions: RecordPosition[],
): Promise<LessonProgressRecord[]> {
  const batches: Promise<Deno.KvEntryMaybe<LessonProgressRecord>[]>[] = [];
  for (let i = 0; i < positions.length; i += KV_MAX_GET_MANY) {
    batches.push(
      kv.getMany<LessonProgressRecord[]>(positions.slice(i, i + KV_MAX_GET_MANY).map(recordKey)),
    );
  }
  return (await Promise.all(batches)).flat().flatMap((e) => (e.value ? [e.value] : []));
}

/**
 * Adds an event's unmatched entry, listed from `listedAt` on (when a logic-channel event gave up,
 * or when a lone companion event passes the unmatched horizon), and gone with the event itself
 * after `expireIn`.
 */
export function writeUnmatched(
  op: Mutations,
  event: StoredEvent,
  listedAt: number,
  expireIn: number,
) {
  const entry: UnmatchedEntry = {
    event_id: event.id,
    topic: event.topic,
    tenant_id: event.tenantId,
    user_id: event.userId,
    course_id: event.courseId,
    created_at: new Date(event.at).toISOString(),
    attempts: event.deliveries,
    gave_up_at: new Date(listedAt).toISOString(),
    percentage_completed: event.facts.kind === "progress" ? event.facts.percentage : null,
  };
  return op.set(unmatchedKey(listedAt, event.tenantId, event.id), entry, { expireIn });
}

/** The records of a page of `"all"` (values) or of an index (positions to read). */
async function resolve(
  kv: Deno.Kv,
  page: { items: unknown[]; positions: Position[] },
): Promise<LessonProgressRecord[]> {
  if (page.items.every((r) => r !== null && typeof r === "object")) {
    return page.items as LessonProgressRecord[];
  }
  return await getRecords(kv, page.positions as RecordPosition[]);
}

/** A query of {@linkcode listRecords}. */
export interface RecordQuery {
  filter: RecordFilter;
  since?: number;
  limit: number;
  after?: Position;
}

/** One page of records, oldest completion first. */
export async function listRecords(
  kv: Deno.Kv,
  query: RecordQuery,
): Promise<{ records: LessonProgressRecord[]; cursor: string | null }> {
  const { records, cursor } = await recordsPage(kv, query);
  return { records, cursor };
}

async function recordsPage(kv: Deno.Kv, query: RecordQuery) {
  const after = query.after &&
      (query.since === undefined || Number(query.after[0]) >= query.since)
    ? query.after
    : undefined;
  const plan = recordPlan(query.filter);
  const page = await listPage<unknown>(kv, plan.prefix, {
    kind: "records",
    limit: query.limit,
    after,
    from: after || query.since === undefined ? undefined : [query.since],
    keep: (position, value) => plan.keep(position as RecordPosition, value),
  });
  const next = page.cursor ? page.positions[page.positions.length - 1] : undefined;
  return { records: await resolve(kv, page), cursor: page.cursor, next };
}

/**
 * Every record matching `query`, page after page (each page read when the previous one has been
 * consumed, each read retried while the database is busy).
 */
export async function* recordPages(
  kv: Deno.Kv,
  query: Omit<RecordQuery, "after">,
): AsyncGenerator<LessonProgressRecord[]> {
  let after: Position | undefined;
  do {
    const page = await retryWhenBusy(() => recordsPage(kv, { ...query, after }));
    yield page.records;
    after = page.next;
  } while (after);
}

/** One page of the events unmatched at `now`, oldest first. */
export async function listUnmatched(
  kv: Deno.Kv,
  query: { limit: number; after?: Position; now: number },
): Promise<{ events: UnmatchedEntry[]; cursor: string | null }> {
  const page = await listPage<UnmatchedEntry>(kv, UNMATCHED_PREFIX, {
    kind: "unmatched",
    limit: query.limit,
    after: query.after,
    before: [query.now + 1],
  });
  return { events: page.items, cursor: page.cursor };
}

/** How many events of each course are unmatched at `now` (one scan of the unmatched list). */
export async function countUnmatched(kv: Deno.Kv, now: number): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  const range = { start: [...UNMATCHED_PREFIX], end: [...UNMATCHED_PREFIX, now + 1] };
  for await (const e of kv.list<UnmatchedEntry>(range)) {
    counts.set(e.value.course_id, (counts.get(e.value.course_id) ?? 0) + 1);
  }
  return counts;
}

/** The latest `limit` records matching `filter`, newest completion first. */
export async function recentRecords(
  kv: Deno.Kv,
  filter: RecordFilter,
  limit: number,
): Promise<LessonProgressRecord[]> {
  const { prefix, keep } = recordPlan(filter);
  const positions: RecordPosition[] = [];
  for await (const e of kv.list({ prefix }, { reverse: true })) {
    const position = e.key.slice(prefix.length) as RecordPosition;
    if (keep(position, e.value)) positions.push(position);
    if (positions.length === limit) break;
  }
  return await getRecords(kv, positions);
}

/**
 * Where a feed reader is: after the entry it read last, or at a time before which it has read
 * everything (`[ms]`).
 */
export type FeedCursor = FeedPosition | [fromMs: number];

/**
 * Moves the feed's fence up to `until` (never back), unless it is less than `step` behind it: then
 * it stays, and the feed serves up to where it is. Returns the fence's time after the call. Each
 * advance fails the record commits in flight that read the fence before it (they are decided again
 * at a later place), so advances are kept at most one per `step` of time.
 */
export async function advanceFence(kv: Deno.Kv, until: number, step: number): Promise<number> {
  for (;;) {
    const fence = await kv.get<number>(FEED_FENCE_KEY);
    const at = fence.value ?? 0;
    if (until - at < step) return at;
    const { ok } = await kv.atomic().check(fence).set(FEED_FENCE_KEY, until).commit();
    if (ok) return until;
  }
}

/**
 * One page of the change feed: records in the order they were made, only those before the fence
 * (advanced first towards `until`, the caller's time minus the feed's visibility delay, in steps of
 * at least `step` ms). The cursor is always set: after the last record of a full page, else the
 * fence itself (everything before it has been read). A record commits only at or after the fence
 * it read, and only if the fence has not moved since, so nothing lands behind a served cursor.
 *
 * Feed entries are written by the projector: `project` (the process's projector's drain) runs
 * after the fence has moved and before the list, so every record committed before the fence is in
 * the feed when it is read.
 */
export async function listFeed(
  kv: Deno.Kv,
  query: { cursor?: FeedCursor; limit: number; until: number; step: number },
  project: () => Promise<void>,
): Promise<{ records: LessonProgressRecord[]; cursor: string }> {
  const { cursor, limit } = query;
  const fence = await advanceFence(kv, query.until, query.step);
  if (cursor && cursor[0] >= fence) return { records: [], cursor: encodeCursor("feed", cursor) };
  await project();
  const start = !cursor
    ? [...FEED_PREFIX]
    : cursor.length === 1
    ? [...FEED_PREFIX, cursor[0]]
    : [...feedKey(cursor), new Uint8Array()]; // the smallest key after it
  const positions: RecordPosition[] = [];
  let last: FeedPosition | null = null;
  const selector = { start, end: [...FEED_PREFIX, fence] };
  for await (const e of kv.list<RecordPosition>(selector, { limit })) {
    positions.push(e.value);
    last = e.key.slice(FEED_PREFIX.length) as FeedPosition;
  }
  const next: FeedCursor = positions.length === limit && last ? last : [fence];
  return { records: await getRecords(kv, positions), cursor: encodeCursor("feed", next) };
}
