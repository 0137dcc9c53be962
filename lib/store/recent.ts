/**
 * Recent records: the records this process's commits made lately, by the ids of their two events,
 * so that a redelivery of a paired event (Thinkific sends some twice, often at once) answers with
 * its record after one read instead of two. A record never changes once made, and nothing removes
 * it but an erasure, which writes the learner's tombstone before it removes anything: so the record
 * kept here is the one a read would find, as long as the tombstone is absent. The collator reads
 * the tombstone (one `get`), where a delivery otherwise reads its view and then its record; when
 * it is there, the delivery reads and decides as any other.
 *
 * Only an id of the topic it was recorded under is found (an id sent again under the other topic is
 * a conflict, which the collator's read tells). At most {@linkcode RECENT_RECORDS} records are
 * kept, each for {@linkcode WARM_FOR_MS} at most.
 *
 * @example
 * ```ts
 * const recent = createRecentRecords();
 * recent.remember([record], Date.now());
 * const known = recent.find({ tenantId, topic: "enrollment.progress", id }, Date.now());
 * if (known && !(await isErased(kv, { tenantId, userId: known.user_id }))) answer(known);
 * // else: read, as any delivery
 * ```
 * @module
 */
import type { LessonProgressRecord } from "../matching/record.ts";
import { LESSON_TOPIC, PROGRESS_TOPIC } from "../config.ts";
import { RECENT_RECORDS, WARM_FOR_MS } from "./limits.ts";

/** The records a process made lately. */
export interface RecentRecords {
  /** Keeps records just committed (their commit went in). */
  remember(records: readonly LessonProgressRecord[], now: number): void;
  /** The record made lately of the event `id` of `topic` in school `tenantId`, if kept here. */
  find(
    e: { tenantId: string; topic: string; id: string },
    now: number,
  ): LessonProgressRecord | null;
  /** Event ids kept now (two per record). */
  readonly size: number;
}

const idOf = (tenantId: string, topic: string, id: string) =>
  `${tenantId}\u0000${topic}\u0000${id}`;

/** Creates the recent records of one process. */
export function createRecentRecords(
  options: { max?: number; forMs?: number } = {},
): RecentRecords {
  const max = options.max ?? RECENT_RECORDS;
  const forMs = options.forMs ?? WARM_FOR_MS;
  /** Each record under both its events' ids, in the order kept, oldest first. */
  const kept = new Map<string, { record: LessonProgressRecord; at: number }>();
  return {
    get size() {
      return kept.size;
    },
    remember(records, now) {
      for (const record of records) {
        const entry = { record, at: now };
        const ids = [
          idOf(record.tenant_id, LESSON_TOPIC, record.lesson_event_id),
          idOf(record.tenant_id, PROGRESS_TOPIC, record.progress_event_id),
        ];
        for (const id of ids) {
          kept.delete(id); // kept again as the newest
          kept.set(id, entry);
        }
      }
      while (kept.size > 2 * max) kept.delete(kept.keys().next().value!);
    },
    find(e, now) {
      const entry = kept.get(idOf(e.tenantId, e.topic, e.id));
      return entry && now - entry.at < forMs ? entry.record : null;
    },
  };
}
