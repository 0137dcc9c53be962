/**
 * The transactional outbox: an entry per record and destination, written in the record's own
 * commit, then leased, delivered and retried. Every state change is an atomic commit checked
 * against the version read, so two processes never deliver the same attempt.
 *
 * @example
 * ```ts
 * const leased = await leaseDue(kv, Date.now(), 20);
 * for (const entry of leased) await markDelivered(kv, entry, Date.now(), retentionMs);
 * ```
 * @module
 */
import type { LessonProgressRecord } from "../matching/record.ts";
import {
  OUTBOX_DEAD_PREFIX,
  OUTBOX_DUE_PREFIX,
  outboxDeadKey,
  outboxDueKey,
  type OutboxEntry,
  outboxKey,
} from "./keys.ts";
import { KV_MAX_GET_MANY } from "./limits.ts";
import { listPage, type Position } from "./_page.ts";
import { retryWhenBusy } from "./retry.ts";

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

/** What {@linkcode messageIdOf} makes of one part of up to 64 characters. */
export const MESSAGE_ID_PART = /(?:[A-Za-z0-9-]|\.[.u]){1,64}/;

/** Adds one pending entry per destination to the record's commit. */
export function addOutboxEntries(
  op: Deno.AtomicOperation,
  record: LessonProgressRecord,
  destinations: readonly string[],
  now: number,
) {
  const messageId = messageIdOf(record);
  for (const destination of destinations) {
    const id = `${destination}:${messageId}`;
    const entry: OutboxEntry = {
      id,
      destination,
      messageId,
      record,
      status: "pending",
      attempts: 0,
      dueAt: now,
      lastError: null,
      createdAt: now,
      deliveredAt: null,
      deadAt: null,
    };
    op.check({ key: outboxKey(id), versionstamp: null })
      .set(outboxKey(id), entry)
      .set(outboxDueKey(now, id), id);
  }
  return op;
}

/** A leased entry: what was committed, to be checked by the next state change. */
export type Leased = Deno.KvEntry<OutboxEntry>;

/**
 * Leases up to `limit` entries due at `now`: each lease is an atomic commit checked against the
 * version read, which also moves the entry's due time to the end of the lease (so a process that
 * dies while delivering leaves it due again then). Entries another process leases first are skipped.
 */
export async function leaseDue(kv: Deno.Kv, now: number, limit: number): Promise<Leased[]> {
  const ids: string[] = [];
  const due = { start: [...OUTBOX_DUE_PREFIX], end: [...OUTBOX_DUE_PREFIX, now + 1] };
  await retryWhenBusy(async () => {
    ids.length = 0;
    for await (const e of kv.list<string>(due, { limit })) ids.push(e.value);
  });
  const leased: Leased[] = [];
  for (let i = 0; i < ids.length; i += KV_MAX_GET_MANY) {
    const keys = ids.slice(i, i + KV_MAX_GET_MANY).map(outboxKey);
    const entries = await retryWhenBusy(() => kv.getMany<OutboxEntry[]>(keys));
    for (const entry of entries) {
      const e = entry.value;
      if (!e || e.status !== "pending" || e.dueAt > now) continue;
      const next: OutboxEntry = { ...e, dueAt: now + LEASE_MS };
      const res = await retryWhenBusy(() =>
        kv.atomic().check(entry).set(entry.key, next).delete(outboxDueKey(e.dueAt, e.id))
          .set(outboxDueKey(next.dueAt, e.id), e.id).commit()
      );
      if (res.ok) leased.push({ key: entry.key, value: next, versionstamp: res.versionstamp });
    }
  }
  return leased;
}

/** Records a successful delivery. Delivered entries expire after `retentionMs`. */
export async function markDelivered(kv: Deno.Kv, leased: Leased, now: number, retentionMs: number) {
  const e = leased.value;
  const next: OutboxEntry = {
    ...e,
    status: "delivered",
    attempts: e.attempts + 1,
    deliveredAt: now,
    lastError: null,
  };
  return (await kv.atomic().check(leased).set(leased.key, next, { expireIn: retentionMs })
    .delete(outboxDueKey(e.dueAt, e.id)).commit()).ok;
}

/**
 * Records a failed attempt: due again after `retryInMs`, or dead when `retryInMs` is `null`.
 */
export async function markFailed(
  kv: Deno.Kv,
  leased: Leased,
  now: number,
  error: string,
  retryInMs: number | null,
) {
  const e = leased.value;
  const base = { ...e, attempts: e.attempts + 1, lastError: error.slice(0, 500) };
  const op = kv.atomic().check(leased).delete(outboxDueKey(e.dueAt, e.id));
  if (retryInMs === null) {
    const next: OutboxEntry = { ...base, status: "dead", deadAt: now };
    op.set(leased.key, next).set(outboxDeadKey(now, e.id), e.id);
  } else {
    const next: OutboxEntry = { ...base, dueAt: now + retryInMs };
    op.set(leased.key, next).set(outboxDueKey(next.dueAt, e.id), e.id);
  }
  return (await op.commit()).ok;
}

/** Puts a dead entry back in the queue, due now. `null` when there is no such entry. */
export async function requeue(
  kv: Deno.Kv,
  id: string,
  now: number,
): Promise<OutboxEntry | null> {
  for (;;) {
    const entry = await kv.get<OutboxEntry>(outboxKey(id));
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
  const page = await listPage<string>(kv, prefix, { limit: query.limit, after: query.after });
  const entries: OutboxEntry[] = [];
  for (let i = 0; i < page.items.length; i += KV_MAX_GET_MANY) {
    const got = await kv.getMany<OutboxEntry[]>(
      page.items.slice(i, i + KV_MAX_GET_MANY).map(outboxKey),
    );
    for (const g of got) if (g.value) entries.push(g.value);
  }
  return { entries, cursor: page.cursor };
}
