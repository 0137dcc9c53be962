/**
 * The transactional outbox: an entry per record and destination waiting for an attempt, then
 * leased, delivered and retried. Entries are written exactly once: by the record's projection
 * (`projections.ts`) when no forwarder projects it, or, for records a forwarder's sweep projects and
 * forwards from a flight (`flights.ts`), only for a failed first attempt or a flight's expansion.
 * Every state change is an atomic commit checked against the version read, so two processes never
 * deliver the same attempt.
 *
 * @example
 * ```ts
 * const { leased } = await leaseDue(kv, Date.now(), { limit: 20, take: () => true });
 * const delivered = leased.map((l) => ({ leased: l, outcome: "delivered" as const }));
 * await settle(kv, delivered, Date.now(), retentionMs);
 * ```
 * @module
 */
import type { Mutations } from "./plan.ts";
import type { LessonProgressRecord } from "../matching/record.ts";
import {
  type DeliveredOutboxEntry,
  OUTBOX_DEAD_PREFIX,
  OUTBOX_DUE_PREFIX,
  outboxDeadKey,
  outboxDueKey,
  type OutboxEntry,
  outboxIdOf,
  outboxKey,
  type StoredOutboxEntry,
} from "./keys.ts";
import { KV_MAX_CHECKS, KV_MAX_COMMIT_BYTES, KV_MAX_GET_MANY, KV_MAX_MUTATIONS } from "./limits.ts";
import { listPage, type Position } from "./_page.ts";
import { retryWhenBusy } from "./retry.ts";
import { readAll } from "./_read.ts";

/** How long a process may hold an entry while delivering it. */
export const LEASE_MS = 60_000;

/**
 * One part of a message id, with `_` free for the separator: `.` becomes `..` and `_` becomes
 * `.u` (school and event ids are made of letters, digits, `_`, `.` and `-`). Ids without `.` or
 * `_`, such as Thinkific's, are unchanged.
 */
function escapeIdPart(part: string): string {
  return part.replace(/[._]/g, (c) => (c === "." ? ".." : ".u"));
}

/**
 * The Standard Webhooks message id of a record: `msg_<school>_<progress event id>`, each part
 * escaped (see {@linkcode escapeIdPart}) so that two records never share one (school `a_b` with
 * event `c` is `msg_a.ub_c`; school `a` with event `b_c` is `msg_a_b.uc`). Stable: the same on
 * every attempt.
 */
export function messageIdOf(record: Pick<LessonProgressRecord, "tenant_id" | "progress_event_id">) {
  return `msg_${escapeIdPart(record.tenant_id)}_${escapeIdPart(record.progress_event_id)}`;
}

/** The id of `record`'s outbox entry for `destination`. */
export function entryIdOf(
  destination: string,
  record: Pick<LessonProgressRecord, "tenant_id" | "progress_event_id">,
): string {
  return outboxIdOf(destination, messageIdOf(record));
}

/** The ids of the outbox entries of `records` for `destinations` that exist (one read). */
export async function existingEntries(
  kv: Deno.Kv,
  records: readonly LessonProgressRecord[],
  destinations: readonly string[],
): Promise<Set<string>> {
  const ids = records.flatMap((r) => destinations.map((d) => entryIdOf(d, r)));
  const read = await readAll(kv, ids.map(outboxKey));
  return new Set(ids.filter((_, i) => read[i].versionstamp !== null));
}

/** What {@linkcode messageIdOf} makes of one part of up to 64 characters. */
export const MESSAGE_ID_PART = /(?:[A-Za-z0-9-]|\.[.u]){1,64}/;

/** The school and progress event id a message id was made of ({@linkcode messageIdOf}'s inverse). */
export function messageParts(messageId: string): { tenantId: string; eventId: string } | null {
  const m = /^msg_([^_]+)_([^_]+)$/.exec(messageId);
  if (!m) return null;
  const unescape = (part: string) => part.replace(/\.(.)/g, (_, c) => (c === "u" ? "_" : "."));
  return { tenantId: unescape(m[1]), eventId: unescape(m[2]) };
}

/**
 * A record's entry for `destination` before any attempt: pending, due at `dueAt`. What the outbox
 * stores first, and what a flight's first attempt is given (`lib/forward/forwarder.ts`).
 */
export function pendingEntry(
  record: LessonProgressRecord,
  destination: string,
  dueAt: number,
  createdAt: number,
): OutboxEntry {
  const messageId = messageIdOf(record);
  return {
    id: outboxIdOf(destination, messageId),
    destination,
    messageId,
    record,
    status: "pending",
    attempts: 0,
    dueAt,
    lastError: null,
    createdAt,
    deliveredAt: null,
    deadAt: null,
  };
}

/**
 * Adds one pending entry per destination to `op` (a projection's commit, or a flight's expansion),
 * due at `now`, each checked absent; `createdAt` (default `now`) is when its record was projected.
 */
export function addOutboxEntries(
  op: Mutations,
  record: LessonProgressRecord,
  destinations: readonly string[],
  now: number,
  opts: { createdAt?: number } = {},
) {
  for (const destination of destinations) {
    const entry = pendingEntry(record, destination, now, opts.createdAt ?? now);
    const key = outboxKey(entry.id);
    op.check({ key, versionstamp: null }).set(key, entry).set(
      outboxDueKey(now, entry.id),
      entry.id,
    );
  }
  return op;
}

/**
 * Adds the entry of a record whose first attempt failed outside the outbox (a flight's, see
 * `flights.ts`) to `op`: due again after `retryInMs`, or dead (`null`); checked absent.
 */
export function addFailedEntry(
  op: Mutations,
  record: LessonProgressRecord,
  destination: string,
  failure: { createdAt: number; now: number; error: string; retryInMs: number | null },
) {
  const { now, retryInMs } = failure;
  const dead = retryInMs === null;
  const entry: OutboxEntry = {
    ...pendingEntry(record, destination, dead ? now : now + retryInMs, failure.createdAt),
    status: dead ? "dead" : "pending",
    attempts: 1,
    lastError: failure.error.slice(0, 500),
    deadAt: dead ? now : null,
  };
  const { id } = entry;
  op.check({ key: outboxKey(id), versionstamp: null }).set(outboxKey(id), entry);
  if (dead) op.set(outboxDeadKey(now, id), id);
  else op.set(outboxDueKey(entry.dueAt, id), id);
  return op;
}

/** A leased entry: what was committed, to be checked by the next state change. */
export type Leased = Deno.KvEntry<OutboxEntry>;

/** Mutations one entry adds to a lease or a settlement commit, at most. */
const MUTATIONS_PER_ENTRY = 3;

/** Due keys one lease pass reads at most, looking for entries it may take. */
const MAX_SCAN = 2000;

/**
 * Splits entries into groups that each fit in one atomic commit: one check and up to
 * {@linkcode MUTATIONS_PER_ENTRY} mutations per entry, and half of Deno KV's byte limit (an
 * entry's size is estimated from its JSON).
 */
function commitGroups<T>(items: readonly T[], entryOf: (item: T) => OutboxEntry): T[][] {
  const most = Math.min(KV_MAX_CHECKS, Math.floor(KV_MAX_MUTATIONS / MUTATIONS_PER_ENTRY));
  const groups: T[][] = [];
  let group: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = 2 * JSON.stringify(entryOf(item)).length + 512;
    if (group.length > 0 && (group.length === most || bytes + size > KV_MAX_COMMIT_BYTES / 2)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** Reads entries by key, `KV_MAX_GET_MANY` at a time, in parallel. */
async function readEntries(
  kv: Deno.Kv,
  keys: Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<StoredOutboxEntry>[]> {
  const batches: Promise<Deno.KvEntryMaybe<StoredOutboxEntry>[]>[] = [];
  for (let i = 0; i < keys.length; i += KV_MAX_GET_MANY) {
    batches.push(
      retryWhenBusy(() => kv.getMany<StoredOutboxEntry[]>(keys.slice(i, i + KV_MAX_GET_MANY))),
    );
  }
  return (await Promise.all(batches)).flat();
}

/** Adds the lease of one entry to `op`: checked against the version read, due again at `until`. */
function addLease(op: Deno.AtomicOperation, entry: Leased, until: number): OutboxEntry {
  const e = entry.value;
  const next: OutboxEntry = { ...e, dueAt: until };
  op.check(entry).set(entry.key, next).delete(outboxDueKey(e.dueAt, e.id))
    .set(outboxDueKey(until, e.id), e.id);
  return next;
}

/** What one lease pass got. */
export interface LeaseResult {
  leased: Leased[];
  /** Some due entries were taken by another process first: another pass may find more. */
  contended: boolean;
}

/**
 * Leases up to `limit` entries due at `now`, oldest due first, among those `take` accepts (it is
 * asked in due order, before each entry is read, and counts what it accepts). Each lease moves the
 * entry's due time to the end of the lease, so a process that dies while delivering leaves it due
 * again then. Entries are leased in batches, one atomic commit per batch checked against the
 * versions read; a batch that loses to another process is re-read and retried without the entries
 * taken meanwhile.
 */
export async function leaseDue(
  kv: Deno.Kv,
  now: number,
  opts: { limit: number; take: (id: string) => boolean },
): Promise<LeaseResult> {
  const ids: string[] = [];
  const due = { start: [...OUTBOX_DUE_PREFIX], end: [...OUTBOX_DUE_PREFIX, now + 1] };
  await retryWhenBusy(async () => {
    ids.length = 0;
    for await (const e of kv.list<string>(due, { limit: MAX_SCAN, batchSize: 500 })) {
      if (opts.take(e.value)) ids.push(e.value);
      if (ids.length === opts.limit) break;
    }
  });
  const leasable = (e: Deno.KvEntryMaybe<StoredOutboxEntry>): e is Leased =>
    e.value !== null && e.value.status === "pending" && e.value.dueAt <= now;
  const found = (await readEntries(kv, ids.map(outboxKey))).filter(leasable);
  const leased: Leased[] = [];
  let contended = false;
  for (let group of commitGroups(found, (e) => e.value)) {
    for (let attempt = 0; group.length > 0 && attempt < 4; attempt++) {
      if (attempt > 0) {
        contended = true;
        group = (await readEntries(kv, group.map((e) => e.key))).filter(leasable);
        if (group.length === 0) break;
      }
      const until = now + LEASE_MS;
      const nexts: OutboxEntry[] = [];
      const res = await retryWhenBusy(() => {
        const op = kv.atomic();
        nexts.length = 0;
        for (const entry of group) nexts.push(addLease(op, entry, until));
        return op.commit();
      });
      if (res.ok) {
        group.forEach((e, i) =>
          leased.push({ key: e.key, value: nexts[i], versionstamp: res.versionstamp })
        );
        break;
      }
    }
  }
  return { leased, contended };
}

/** How an attempt ended: delivered, or failed and due again after `retryInMs` (`null`: dead). */
export type Settlement =
  | { leased: Leased; outcome: "delivered" }
  | { leased: Leased; outcome: "failed"; error: string; retryInMs: number | null };

/**
 * Adds the end of one attempt to `op`, checked against the lease: a delivered entry expires after
 * `retentionMs`; a failed one is due again, or dead.
 */
function addSettlement(op: Deno.AtomicOperation, s: Settlement, now: number, retentionMs: number) {
  const { key, value: e } = s.leased;
  op.check(s.leased).delete(outboxDueKey(e.dueAt, e.id));
  const attempts = e.attempts + 1;
  if (s.outcome === "delivered") {
    // The record is no longer needed here: a fifth of the bytes, and no copy of it kept.
    const next: DeliveredOutboxEntry = {
      id: e.id,
      destination: e.destination,
      messageId: e.messageId,
      status: "delivered",
      attempts,
      dueAt: e.dueAt,
      lastError: null,
      createdAt: e.createdAt,
      deliveredAt: now,
      deadAt: null,
    };
    op.set(key, next, { expireIn: retentionMs });
    return;
  }
  const base = { ...e, attempts, lastError: s.error.slice(0, 500) };
  if (s.retryInMs === null) {
    op.set(key, { ...base, status: "dead", deadAt: now } satisfies OutboxEntry)
      .set(outboxDeadKey(now, e.id), e.id);
  } else {
    const next: OutboxEntry = { ...base, dueAt: now + s.retryInMs };
    op.set(key, next).set(outboxDueKey(next.dueAt, e.id), e.id);
  }
}

/**
 * Records how attempts ended, in as few atomic commits as fit. A batch whose check fails (an
 * entry's lease ran out and another process leased it again) is retried entry by entry, and the
 * entries changed meanwhile are left to their new holder. Resolves with how many were recorded.
 */
export async function settle(
  kv: Deno.Kv,
  settlements: readonly Settlement[],
  now: number,
  retentionMs: number,
): Promise<number> {
  const commit = async (group: readonly Settlement[]) => {
    const res = await retryWhenBusy(() => {
      const op = kv.atomic();
      for (const s of group) addSettlement(op, s, now, retentionMs);
      return op.commit();
    });
    return res.ok;
  };
  let recorded = 0;
  for (const group of commitGroups(settlements, (s) => s.leased.value)) {
    if (await commit(group)) recorded += group.length;
    else if (group.length > 1) {
      for (const s of group) if (await commit([s])) recorded++;
    }
  }
  return recorded;
}

/** Puts a dead entry back in the queue, due now. `null` when there is no such entry. */
export async function requeue(
  kv: Deno.Kv,
  id: string,
  now: number,
): Promise<StoredOutboxEntry | null> {
  for (;;) {
    const entry = await kv.get<StoredOutboxEntry>(outboxKey(id));
    const e = entry.value;
    if (!e) return null;
    if (e.status !== "dead") return e;
    const next: OutboxEntry = { ...e, status: "pending", deadAt: null, dueAt: now };
    const res = await kv.atomic().check(entry).set(entry.key, next)
      .delete(outboxDeadKey(e.deadAt ?? 0, id)).set(outboxDueKey(now, id), id).commit();
    if (res.ok) return next;
  }
}

/** The earliest time an entry is due, or `null` when none is pending. */
export async function nextDue(kv: Deno.Kv): Promise<number | null> {
  for await (const e of kv.list<string>({ prefix: OUTBOX_DUE_PREFIX }, { limit: 1 })) {
    return e.key[1] as number;
  }
  return null;
}

/** One page of entries by status, oldest first. */
export async function listOutbox(
  kv: Deno.Kv,
  query: { status: "pending" | "dead"; limit: number; after?: Position },
): Promise<{ entries: OutboxEntry[]; cursor: string | null }> {
  const prefix = query.status === "dead" ? OUTBOX_DEAD_PREFIX : OUTBOX_DUE_PREFIX;
  const page = await listPage<string>(kv, prefix, {
    kind: `outbox/${query.status}`,
    limit: query.limit,
    after: query.after,
  });
  const entries: OutboxEntry[] = [];
  for (let i = 0; i < page.items.length; i += KV_MAX_GET_MANY) {
    const got = await kv.getMany<OutboxEntry[]>(
      page.items.slice(i, i + KV_MAX_GET_MANY).map(outboxKey),
    );
    for (const g of got) if (g.value) entries.push(g.value);
  }
  return { entries, cursor: page.cursor };
}
