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
 * projector) instead of committing; when this process made that record lately
 * (`lib/store/recent.ts`), it reads only whether the learner was erased.
 *
 * A first delivery in an enrollment this process knows nothing of skips its read when most such
 * deliveries lately found their enrollment empty (new learners, new courses): it decides as if the
 * enrollment had no events, and its commit checks that it had none (`lib/store/presumed.ts`). Such
 * a delivery is alone, so before it commits it waits up to {@linkcode JOIN_WAIT_MS} for the
 * enrollment's next delivery (its counterpart, sent at the same instant) to take over, as below. A
 * pair then costs one commit and no read; a wrong presumption fails its commit and is read and
 * decided again.
 *
 * Deliveries of one enrollment run one at a time here, in its lane (`lib/lanes.ts`). One that
 * arrives while the delivery ahead is reading does not wait for that one's commit to decide and
 * commit in turn: once the delivery ahead has decided, it takes over the deliveries waiting behind
 * it, decides each from the view its own plan leaves, and commits their plans merged after its own
 * in one commit ({@linkcode takeOver}). A pair's halves arriving together thus cost one read and
 * one commit, and a pending logic event paired in that commit answers with its record at once
 * instead of holding. A delivery that cannot be decided so (a redelivery, one needing its cluster,
 * one outside what is known, one that would take the commit past Deno KV's limits) and the ones
 * behind it decide on their own, in their turn; so do the ones taken when the merged commit loses
 * to another writer or throws.
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
import type { WarmViews, Writes } from "./store/warm.ts";
import type { Presumptions } from "./store/presumed.ts";
import type { RecentRecords } from "./store/recent.ts";
import { decide, type DecideOptions, needsCluster, type Outcome } from "./matching/decide.ts";
import type { Committer } from "./store/committer.ts";
import { type CommitPlan, fitsWithin } from "./store/plan.ts";
import { type EventIdentity, type EventView, readCluster, readView } from "./store/events.ts";
import { isErased } from "./store/erasure.ts";
import { enrollmentKey, type StoredEvent } from "./store/keys.ts";
import { JOIN_WAIT_MS, MAX_COMMIT_ATTEMPTS } from "./store/limits.ts";
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
  /** When to decide a cold first delivery as new, without reading (with `warm` only). */
  presumed?: Presumptions;
  /** Records this process's commits made lately: a redelivery of their events reads less. */
  recent?: RecentRecords;
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

/** A delivery waiting in its enrollment's lane: what the pass ahead of it needs to take it over. */
interface Delivery {
  event: ThinkificEvent;
  body: Uint8Array;
  flags: Flags;
}

/** Where a pass stands in its tries (see {@linkcode collate}). */
interface Flags {
  counted: boolean;
  holding: boolean;
}

/** A delivery taken over by a pass, decided into its commit. */
interface Joined {
  event: ThinkificEvent;
  done(result: Pass | null): void;
  outcome: Outcome;
  alone: boolean;
  place: EventIdentity;
}

/** An empty commit's size: what a merged plan must fit within, with nothing else. */
const NOTHING = { checks: 0, mutations: 0, keyBytes: 0, totalBytes: 0 };

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
  flags: Flags,
): Promise<Pass> {
  const { kv, committer } = deps;
  const now = options.now ?? Date.now;
  const windowMs = options.matchWindowMs;
  for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
    // Stryker disable next-line all: the jitter only spreads retries in time (no timed tests)
    if (attempt > 1) await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    // A redelivery of an event paired here lately: its record, as long as no erasure of its
    // learner has begun (an erasure writes the tombstone first); else read, as any delivery.
    const known = deps.recent?.find(event, now());
    if (known && !await isErased(kv, { tenantId: known.tenant_id, userId: known.user_id })) {
      const outcome: Outcome = { status: "collated", record: known, fresh: false };
      return { outcome, alone: false, versionstamp: null, place: event };
    }
    const view = deps.warm?.view(event, windowMs, now()) ??
      await coldView(deps, event, windowMs, attempt === 0, now);
    const { place, pointer } = view;
    const input = inputOf({ event, body, flags }, view, options, now());
    const { alone } = input;
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
    const cluster = needsCluster(input) ? await readCluster(kv, place, windowMs) : undefined;
    const decided = decide({ ...input, cluster });
    let { outcome } = decided;
    if (decided.plan === null) return done(outcome);
    const joined: Joined[] = [];
    let plan = decided.plan;
    let writes = decided.writes;
    if (deps.lanes && deps.warm) {
      const lane = enrollmentTag(event);
      // Decided without a read, so alone: its counterpart, sent at the same instant, may join.
      if (view.presumed) await deps.lanes.arrival(lane, JOIN_WAIT_MS);
      ({ plan, writes } = takeOver(deps, lane, { view, plan, writes }, joined, options));
    }
    // Deliveries taken over decide on their own after all when this commit does not go in.
    const release = () => joined.forEach((j) => j.done(null));
    let result: Awaited<ReturnType<Committer["commit"]>>;
    try {
      result = await committer.commit(plan);
    } catch (err) {
      release();
      throw err;
    }
    if (!result.ok) release();
    deps.presumed?.settled(view, result.ok, writes.course, now());
    if (result.ok) {
      const { versionstamp } = result;
      deps.warm?.remember(view, writes, versionstamp, now());
      const made: LessonProgressRecord[] = [];
      for (const o of [outcome, ...joined.map((j) => j.outcome)]) {
        if (o.status === "collated") made.push(o.record);
      }
      // A pending event paired by a delivery decided after it here answers with that record, as
      // it would once woken from its hold.
      const paired = (o: Outcome, e: ThinkificEvent): Outcome => {
        const record = o.status === "pending" && made.find((r) => ownRecord(r, e));
        return record ? { status: "collated", record, fresh: false } : o;
      };
      for (const j of joined) {
        j.done({
          outcome: paired(j.outcome, j.event),
          alone: j.alone,
          versionstamp,
          place: j.place,
        });
      }
      outcome = paired(outcome, event);
      deps.recent?.remember(made, now());
      // Wakes this enrollment's held deliveries, handing them the records just made.
      deps.holds?.notify(enrollmentTag(place), made);
      return { outcome, alone, versionstamp, place };
    }
    deps.warm?.forget(place); // read again
    if (await isErased(kv, place)) return done({ status: "erased" });
  }
  throw new ContentionError(`event ${event.id}: too many concurrent writers`);
}

/**
 * The view of a delivery its warm views do not serve: on its `first` try, presumed new when
 * presuming pays and the enrollment is not known here (`lib/store/presumed.ts`); else read.
 */
async function coldView(
  deps: CollatorDeps,
  event: ThinkificEvent,
  windowMs: number,
  first: boolean,
  now: () => number,
): Promise<EventView> {
  const presumed = first ? deps.presumed?.view(event, windowMs, now()) : null;
  if (presumed) return presumed;
  const view = await readView(deps.kv, event, windowMs);
  return deps.presumed?.read(view, first, now()) ?? view;
}

/**
 * Takes over the deliveries waiting in the enrollment's lane behind this one, in arrival order,
 * for as long as each can be decided from the view this pass's plan leaves (a new event within what
 * is known, deciding without a cluster read, with a plan that fits in one commit with the others):
 * each is decided from it and its plan merged after the ones before ({@linkcode
 * CommitPlan.followedBy}). Most often it is the counterpart of this delivery's event, which arrived
 * while this one was reading: both are then answered from one commit. Returns the merged plan and
 * what it leaves; `joined` receives the deliveries taken, each to be handed its pass.
 */
function takeOver(
  deps: CollatorDeps,
  lane: string,
  first: { view: EventView; plan: CommitPlan; writes: Writes },
  joined: Joined[],
  options: CollatorOptions,
): { plan: CommitPlan; writes: Writes } {
  const now = options.now ?? Date.now;
  const windowMs = options.matchWindowMs;
  let { view, plan, writes } = first;
  let all = writes;
  const decisions: Omit<Joined, "done">[] = [];
  const taken = deps.lanes!.take(lane, (what) => join(what as Delivery));
  taken.forEach((t, i) => joined.push({ ...decisions[i], done: t.done }));
  return { plan, writes: all };

  function join(delivery: Delivery): boolean {
    // Of this enrollment only: `after` serves none of a pass whose event was placed elsewhere.
    const next = deps.warm!.after(view, writes, delivery.event, windowMs, now());
    if (!next) return false;
    const input = inputOf(delivery, next, options, now());
    if (needsCluster(input)) return false;
    const decided = decide(input);
    // Stryker disable next-line ConditionalExpression,BooleanLiteral: a new event always has a plan
    if (decided.plan === null) return false;
    const merged = plan.followedBy(decided.plan);
    const { size, refused } = merged.measure();
    if (refused || !fitsWithin(NOTHING, size)) return false;
    const { event } = delivery;
    decisions.push({ event, outcome: decided.outcome, alone: input.alone, place: next.place });
    all = mergeWrites(all, decided.writes);
    ({ view, plan, writes } = { view: next, plan: merged, writes: decided.writes });
    return true;
  }
}

/**
 * What `decide` needs for a delivery from its view, with whether no counterpart was in it (`alone`):
 * a delivery is held only when alone, so any other, a last one too, decides as not held.
 */
function inputOf(
  { event, body, flags }: Delivery,
  view: EventView,
  options: CollatorOptions,
  now: number,
) {
  const alone = view.counterparts.length === 0;
  const mayGiveUp = !(flags.holding && alone);
  return { alone, counted: flags.counted, mayGiveUp, event, body, view, options, now };
}

/** What two plans, one after the other, leave: the second's summary and course, every event. */
function mergeWrites(a: Writes, b: Writes): Writes {
  const ids = new Set(b.events.map((e) => e.id));
  return {
    summary: b.summary,
    course: b.course,
    events: [...a.events.filter((e) => !ids.has(e.id)), ...b.events],
  };
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
    const delivery: Delivery = { event, body, flags };
    const p = deps.lanes ? await deps.lanes.run(enrollmentTag(event), run, delivery) : await run();
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
    const record = (note as LessonProgressRecord[] | undefined)?.find((r) => ownRecord(r, event));
    if (record) return { status: "collated", record, fresh: false };
    // woken, timed out or shut down: decide again (a last delivery now gives up)
  }
}
