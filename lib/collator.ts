/**
 * The collator: reads what an event's delivery decides from, asks `decide` (pure) for the outcome
 * and its commit plan, and hands the plan to the process's committer, which merges it with other
 * requests' plans into one atomic commit. A plan lost to a concurrent writer (another request,
 * another process) is re-read and decided again.
 *
 * A logic-channel delivery left pending with no counterpart stored is held up to `holdMs`: woken
 * when its enrollment changes (see `lib/hold.ts`), it reads and decides again, and answers with
 * the record when its counterpart arrived meanwhile. A last delivery (the
 * `giveUpAfterAttempts`-th) is held the same way, but when its hold ends, by time or by shutdown,
 * it decides again unheld and gives up (listed unmatched) before it answers: it never answers the
 * pending status. A delivery with an unclaimed counterpart in its window is never held.
 *
 * A first delivery costs four KV calls on the common path: one `getMany` (the event's state, its id
 * and its enrollment) beside two range lists (both topics, over twice the window), then one commit
 * (shared with other requests). The enrollment's next delivery in this process, most often the
 * pair's other half, decides from what that commit left (`lib/store/warm.ts`) and costs its commit
 * alone. A redelivery of a paired event reads its record (stored, or still waiting for the
 * projector) instead of committing.
 *
 * @example
 * ```ts
 * const outcome = await collate({ kv, committer }, event, rawBody, options);
 * if (outcome.status === "collated") console.log(outcome.record.lesson_name);
 * ```
 * @module
 */
import type { Holds } from "./hold.ts";
import type { Lanes } from "./lanes.ts";
import type { WarmViews } from "./store/warm.ts";
import { decide, type DecideOptions, needsCluster, type Outcome } from "./matching/decide.ts";
import type { Committer } from "./store/committer.ts";
import { type EventIdentity, readCluster, readView } from "./store/events.ts";
import { isErased } from "./store/erasure.ts";
import { enrollmentKey, type StoredEvent } from "./store/keys.ts";
import { MAX_COMMIT_ATTEMPTS } from "./store/limits.ts";
import { readRecord } from "./store/projections.ts";
import type { ThinkificEvent } from "./thinkific/schemas.ts";
import { LESSON_TOPIC } from "./config.ts";
import type { LessonProgressRecord } from "./matching/record.ts";

export type { Outcome } from "./matching/decide.ts";

/** Matching, retention and holding settings (from {@linkcode Config}). */
export interface CollatorOptions extends DecideOptions {
  /** How long a pending logic-channel delivery waits for its counterpart (0: not at all). */
  holdMs?: number;
  /** The clock; tests pass their own. */
  now?: () => number;
}

/** What the collator works with. */
export interface CollatorDeps {
  kv: Deno.Kv;
  committer: Committer;
  /** Held deliveries of this process (none: pending deliveries answer at once). */
  holds?: Holds;
  /** Deliveries of one enrollment run one at a time in this process (none: all at once). */
  lanes?: Lanes;
  /** What this process's commits left of enrollments, read instead of KV when it can be. */
  warm?: WarmViews;
}

/** Too many concurrent writers: the caller should answer 503 and let the sender retry. */
export class ContentionError extends Error {
  override name = "ContentionError";
}

/** The tag held deliveries of one enrollment wait on. */
export const enrollmentTag = (e: Pick<StoredEvent, "tenantId" | "userId" | "courseId">): string =>
  JSON.stringify([e.tenantId, e.userId, e.courseId]);

/** Whether `record` pairs `event` (same school, and one of its two events). */
function ownRecord(record: LessonProgressRecord, event: ThinkificEvent): boolean {
  return record.tenant_id === event.tenantId &&
    (event.topic === LESSON_TOPIC ? record.lesson_event_id : record.progress_event_id) ===
      event.id;
}

/** Whether a pending outcome came from the event's last delivery (it gives up unless held). */
const lastChance = (outcome: Outcome, options: CollatorOptions): boolean =>
  outcome.status === "pending" && outcome.attempts >= options.giveUpAfterAttempts;

interface Pass {
  outcome: Outcome;
  /**
   * No counterpart was within the window: a pending delivery may be held for one (and only then:
   * a delivery with an unclaimed counterpart decides as if not held, so a last one gives up).
   */
  alone: boolean;
  /** The enrollment's versionstamp after this pass (what a held delivery waits to change). */
  versionstamp: string | null;
  place: EventIdentity;
}

/** One read, decide and commit, repeated while the commit loses to another writer. */
async function pass(
  deps: CollatorDeps,
  event: ThinkificEvent,
  body: Uint8Array,
  options: CollatorOptions,
  flags: { counted: boolean; holding: boolean },
): Promise<Pass> {
  const { kv, committer } = deps;
  const now = options.now ?? Date.now;
  const windowMs = options.matchWindowMs;
  for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
    // Stryker disable next-line all: the jitter only spreads retries in time (no timed tests)
    if (attempt > 1) await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    const view = deps.warm?.view(event, windowMs, now()) ?? await readView(kv, event, windowMs);
    const { place, pointer } = view;
    const alone = view.counterparts.length === 0;
    const done = (outcome: Outcome): Pass => ({
      outcome,
      alone,
      versionstamp: view.enrollment.versionstamp,
      place,
    });
    if (pointer.value && pointer.value.topic !== event.topic) {
      return done({ status: "conflict", topic: pointer.value.topic });
    }
    if (pointer.value && view.self === null) {
      // Seen before and expired after RETENTION_DAYS: nothing left to pair.
      const isLogic = event.topic === options.logicTopic;
      return done(isLogic ? { status: "unmatched", attempts: 0 } : { status: "stored" });
    }
    if (view.self?.value.pairedWith) {
      const record = await readRecord(kv, view.self.value);
      if (!record) {
        // Its learner is being erased (records go first): answered as any of their deliveries.
        // Stryker disable next-line ConditionalExpression: unreachable unless the database is corrupt
        if (await isErased(kv, place)) return done({ status: "erased" });
        // Stryker disable next-line StringLiteral: unreachable unless the database is corrupt
        throw new Error(`event ${event.id} is paired but its record is missing`);
      }
      return done({ status: "collated", record, fresh: false });
    }
    // Held only when alone (see `collate`): any other delivery, a last one too, decides now.
    const mayGiveUp = !(flags.holding && alone);
    const input = { counted: flags.counted, mayGiveUp, event, body, view, options, now: now() };
    const cluster = needsCluster(input) ? await readCluster(kv, place, windowMs) : undefined;
    const decided = decide({ ...input, cluster });
    const { outcome } = decided;
    if (decided.plan === null) return done(outcome);
    const result = await committer.commit(decided.plan);
    if (result.ok) {
      deps.warm?.remember(view, decided.writes, result.versionstamp, now());
      // Wakes this enrollment's held deliveries, handing them the record just made (if any).
      deps.holds?.notify(
        enrollmentTag(place),
        outcome.status === "collated" ? outcome.record : null,
      );
      return { outcome, alone, versionstamp: result.versionstamp, place };
    }
    deps.warm?.forget(place); // read again
    if (await isErased(kv, place)) return done({ status: "erased" });
  }
  throw new ContentionError(`event ${event.id}: too many concurrent writers`);
}

/**
 * Handles one delivery of a validated event. `body` is the raw request body, stored as received.
 *
 * @throws {ContentionError} when concurrent writers keep winning the commit.
 */
export async function collate(
  deps: CollatorDeps,
  event: ThinkificEvent,
  body: Uint8Array,
  options: CollatorOptions,
): Promise<Outcome> {
  const holdMs = deps.holds ? options.holdMs ?? 0 : 0;
  // Only the logic channel waits (with `HOLD_MS=0` no time is ever left).
  const mayHold = event.topic === options.logicTopic;
  const started = performance.now();
  let counted = false;
  for (;;) {
    const left = holdMs - (performance.now() - started);
    const holding = mayHold && left > 0 && !deps.holds!.closed;
    const flags = { counted, holding };
    const run = () => pass(deps, event, body, options, flags);
    const p = deps.lanes ? await deps.lanes.run(enrollmentTag(event), run) : await run();
    counted = true;
    // Held only while its counterpart is not stored: a pending inexact pair rides on retries.
    if (p.outcome.status !== "pending" || !holding || !p.alone) return p.outcome;
    const { end, note } = await deps.holds!.wait(
      enrollmentTag(p.place),
      enrollmentKey(p.place),
      p.versionstamp,
      left,
    );
    // Shutdown: a last delivery decides again unheld, so it gives up (listed) before it answers.
    if (end === "closed" && !lastChance(p.outcome, options)) return p.outcome;
    // Woken by the commit that paired this very event, here: its record, with no read.
    const record = note as LessonProgressRecord | null | undefined;
    if (record && ownRecord(record, event)) return { status: "collated", record, fresh: false };
    // woken, timed out or shut down: decide again (a last delivery now gives up)
  }
}
