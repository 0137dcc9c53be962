/**
 * Warm views: what this process knows of an enrollment from its own last commit there, so the
 * enrollment's next delivery (most often the counterpart of the one just stored, arriving at once)
 * decides without reading. A first delivery reads its view with both topics' unclaimed events over
 * twice the window (`readView`'s `known`); once its plan has committed, the enrollment's summary,
 * those events and the ones the plan wrote are kept here, at the commit's versionstamp.
 *
 * A view from here is the one a read would give, as long as the enrollment has not changed since:
 * every commit that changes an enrollment's events rewrites its summary, and the plan decided from
 * this view checks the summary at the version kept here, the event id absent, the feed's fence and
 * the erasure tombstone. When another writer got there first (another process, an erasure), the
 * commit fails, the entry is dropped, and the delivery reads and decides again as any other.
 *
 * Only a new event is served from here (an id this process knows is read, as a redelivery), and
 * only when its window lies within what is known. At most {@linkcode WARM_ENROLLMENTS} enrollments
 * are kept, each served for {@linkcode WARM_FOR_MS} at most.
 *
 * @example
 * ```ts
 * const warm = createWarmViews();
 * const view = warm.view(event, 500, Date.now()) ?? await readView(kv, event, 500);
 * // … decide, commit; then, on success:
 * warm.remember(view, decided.writes, result.versionstamp, Date.now());
 * ```
 * @module
 */
import type { EventIdentity, EventView, KnownEvents } from "./events.ts";
import {
  type CourseInfo,
  type EnrollmentSummary,
  eventIdKey,
  eventKey,
  type StoredEvent,
} from "./keys.ts";
import { WARM_ENROLLMENTS, WARM_FOR_MS } from "./limits.ts";

/** What a committed plan leaves of its enrollment (`decide`'s `writes`). */
export interface Writes {
  /** The enrollment's summary. */
  summary: EnrollmentSummary;
  /** The events it inserted or updated, as they read back. */
  events: StoredEvent[];
  /** The course's name as stored (`null`: not known). */
  course: CourseInfo | null;
}

/** What is kept of one enrollment. */
interface Warm {
  enrollment: Deno.KvEntry<EnrollmentSummary>;
  known: KnownEvents;
  course: CourseInfo | null;
  fence: Deno.KvEntryMaybe<number>;
  /** Ids of the last events this process's commits wrote in the enrollment. */
  seen: string[];
  /** When it was kept (the caller's clock). */
  at: number;
}

/** A process's warm views. */
export interface WarmViews {
  /** The view a read would give `e`, if known here (see the module doc); else `null`. */
  view(e: EventIdentity, windowMs: number, now: number): EventView | null;
  /** Keeps what a committed plan leaves of its view's enrollment (forgets it without `known`). */
  remember(
    view: EventView,
    writes: Writes,
    versionstamp: string,
    now: number,
  ): void;
  /**
   * The view `e` would read once `writes`, decided from `view`, have committed, to decide `e` into
   * the same commit (see `lib/collator.ts`); `null` where {@linkcode WarmViews.view} would give
   * none. Its enrollment and the events `writes` wrote carry no real version: a plan decided from
   * it checks those keys at none, and is merged after the plan of `writes`, which writes them (see
   * {@linkcode CommitPlan.followedBy}). Unlike what is kept, it may come from a read that cannot be
   * proven to have missed no commit (an enrollment whose events are all paired): that read decides
   * the plan of `writes` anyway, and both go in one commit.
   */
  after(view: EventView, writes: Writes, e: EventIdentity, windowMs: number, now: number):
    | EventView
    | null;
  /** Forgets an enrollment (its commit lost to another writer). */
  forget(e: EventIdentity): void;
  /** Enrollments kept now. */
  readonly size: number;
}

/**
 * The version `after` gives the enrollment and the events written ahead: none they will have. A plan
 * decided from such a view checks those keys at it, and merging drops those checks.
 */
const UNCOMMITTED = "uncommitted";

/** Ids kept per enrollment in `seen`. */
const MAX_SEEN = 16;

const tagOf = (e: Pick<EventIdentity, "tenantId" | "userId" | "courseId">) =>
  `${e.tenantId}\u0000${e.userId}\u0000${e.courseId}`;

/** Key order within one topic (`[…, topic, at, id]`): by time, then id (never equal here). */
function byKey(a: Deno.KvEntry<StoredEvent>, b: Deno.KvEntry<StoredEvent>): number {
  if (a.value.at !== b.value.at) return a.value.at - b.value.at;
  return a.value.id < b.value.id ? -1 : 1;
}

/**
 * Whether a view's events are what the enrollment held at its summary's version. The summary and
 * the events are read by separate calls at once, so a commit landing between a list and the
 * summary's read would leave the list without its events, and no check of the plan would tell. It
 * cannot have when the summary was absent (no commit at all before the plan's), when an event read
 * has the summary's version (the list came after the last commit), or when that version is the one
 * this process's own last commit there left (no commit since, and the list came after it). A view
 * built here meets the last condition.
 */
function consistent(view: EventView, before: Warm | undefined): boolean {
  const version = view.enrollment.versionstamp;
  return version === null || before?.enrollment.versionstamp === version ||
    view.known!.events.some((x) => x.versionstamp === version);
}

/** The view a read would give `e` from what `w` keeps (`null`: a read is needed). */
function serve(w: Warm, e: EventIdentity, windowMs: number): EventView | null {
  const { known } = w;
  if (e.at - windowMs < known.from || e.at + windowMs > known.to) return null;
  // A redelivery (of an event known, or one this process stored or paired): read it.
  if (w.seen.includes(e.id) || known.events.some((x) => x.value.id === e.id)) return null;
  return {
    place: e,
    pointer: { key: eventIdKey(e.tenantId, e.id), value: null, versionstamp: null },
    self: null,
    enrollment: w.enrollment,
    counterparts: known.events.filter((x) =>
      x.value.topic !== e.topic && Math.abs(x.value.at - e.at) <= windowMs
    ),
    fence: w.fence,
    course: w.course,
    known,
  };
}

/**
 * What `view`'s enrollment holds once `writes` have committed at `versionstamp` (`null`: `view`
 * knows too little). `before` is what was kept of it. Only `remember` keeps it, and only from a read
 * proven {@linkcode consistent}; `after` serves from any read, since the plan decided from it goes
 * in the same commit as the plan of `view` and takes the same chance.
 */
function build(
  view: EventView,
  writes: Writes,
  versionstamp: string,
  now: number,
  before: Warm | undefined,
): Warm | null {
  if (!view.known) return null;
  const written = new Set(writes.events.map((x) => x.id));
  const events = view.known.events.filter((x) => !written.has(x.value.id));
  // What the plan wrote lies within the span: the event is at its middle, a partner within
  // the window of it.
  for (const x of writes.events) {
    if (x.pairedWith === null) events.push({ key: eventKey(x), value: x, versionstamp });
  }
  events.sort(byKey);
  const seen = [...(before?.seen ?? []), ...writes.events.map((x) => x.id)].slice(-MAX_SEEN);
  return {
    enrollment: { key: view.enrollment.key, value: writes.summary, versionstamp },
    known: { from: view.known.from, to: view.known.to, events },
    course: writes.course,
    fence: view.fence,
    seen,
    at: now,
  };
}

/** Creates the warm views of one process. */
export function createWarmViews(
  options: { max?: number; forMs?: number } = {},
): WarmViews {
  const max = options.max ?? WARM_ENROLLMENTS;
  const forMs = options.forMs ?? WARM_FOR_MS;
  /** In the order they were kept, oldest first. */
  const kept = new Map<string, Warm>();
  /** The views `after` gave, with what they were served from. */
  const servedBy = new WeakMap<EventView, Warm>();
  return {
    get size() {
      return kept.size;
    },
    view(e, windowMs, now) {
      const w = kept.get(tagOf(e));
      if (!w || now - w.at >= forMs) return null;
      return serve(w, e, windowMs);
    },
    after(view, writes, e, windowMs, now) {
      if (tagOf(e) !== tagOf(view.place)) return null;
      // A view from here continues what served it (its ids seen included).
      const before = servedBy.get(view) ?? kept.get(tagOf(view.place));
      // Not kept: decided into the same commit as `view`'s own plan, from the same read, so it
      // need not prove that read missed no commit (see `consistent`).
      const w = build(view, writes, UNCOMMITTED, now, before);
      const next = w && serve(w, e, windowMs);
      if (next) servedBy.set(next, w!);
      return next;
    },
    remember(view, writes, versionstamp, now) {
      const tag = tagOf(view.place);
      const before = kept.get(tag);
      kept.delete(tag);
      // Kept only from a read that cannot have missed a commit.
      if (!view.known || !consistent(view, before)) return;
      const w = build(view, writes, versionstamp, now, before);
      if (!w) return;
      kept.set(tag, w);
      if (kept.size > max) kept.delete(kept.keys().next().value!);
    },
    forget(e) {
      kept.delete(tagOf(e));
    },
  };
}
