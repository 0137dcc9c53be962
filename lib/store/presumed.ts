/**
 * Presumed views: a first delivery in an enrollment this process knows nothing of decides, without
 * reading, as if the enrollment had no events yet, when most such deliveries lately found theirs so.
 * Its commit proves the presumption or fails: the plan checks the enrollment's summary absent (no
 * commit has ever changed the enrollment's events, see `EnrollmentSummary`), the event's id absent
 * (not a redelivery) and the learner not erased, as it would after a read that found them so. A
 * plan that fails is read and decided again, like any plan lost to another writer.
 *
 * A view presumed here has no counterpart, so its plan stores the event alone, placing no record.
 * The feed's fence and the course's name are the last ones this process read or wrote: the fence is
 * checked by the plans that place a record (a stale one fails them), and the course's name is kept
 * at most {@linkcode WARM_FOR_MS} (a name read here within that time is not written again).
 *
 * Whether to presume is learnt from the cold first deliveries (those of an enrollment not known
 * here to have events, and not served by the warm views): each read tells whether its enrollment and id were absent, each
 * presumed commit whether it went in. Presuming starts once the share of those, weighted to the
 * last {@linkcode PRESUME_OVER} or so, reaches {@linkcode PRESUME_AT_SHARE}, and stops below it. A
 * presumption that fails costs its commit and the commits merged with it a second round trip; one
 * that holds saves the read. On a load of new learners and courses (a launch, the bench's load)
 * most first deliveries are presumed; on a load of enrollments already stored none is.
 *
 * @example
 * ```ts
 * const presumed = createPresumptions();
 * const view = presumed.view(event, 500, Date.now()) ?? presumed.read(await readView(kv, event, 500), true, Date.now());
 * // … decide, commit; then:
 * presumed.settled(view, result.ok, decided.writes.course, Date.now());
 * ```
 * @module
 */
import type { EventIdentity, EventView } from "./events.ts";
import { type CourseInfo, enrollmentKey, eventIdKey, FEED_FENCE_KEY } from "./keys.ts";
import {
  KNOWN_ENROLLMENTS,
  PRESUME_AT_SHARE,
  PRESUME_OVER,
  WARM_ENROLLMENTS,
  WARM_FOR_MS,
} from "./limits.ts";

/** A process's presumptions of new enrollments (see the module doc). */
export interface Presumptions {
  /**
   * The view `e`'s delivery would read in an enrollment with no events, when presuming pays and the
   * enrollment is not known here to have any; else `null`.
   */
  view(e: EventIdentity, windowMs: number, now: number): EventView | null;
  /**
   * Learns from a delivery's read: the feed's fence, the course's name, whether its enrollment has
   * events, and, on a `first` try in an enrollment not known here, whether a presumption would have
   * held. Returns `view`.
   */
  read(view: EventView, first: boolean, now: number): EventView;
  /**
   * Learns from the commit of a plan decided from `view`: whether it went in (a presumption held),
   * and then that its enrollment has events and the course's name it left.
   */
  settled(view: EventView, ok: boolean, course: CourseInfo | null, now: number): void;
  /** The weighted share of cold first deliveries that found, or would have found, nothing. */
  readonly share: number;
}

/**
 * The view {@linkcode readView} gives a new event `e` in an enrollment with no events (summary,
 * id, stored event absent, no counterpart), with the feed's `fence` and the `course` as known.
 * Pure.
 */
export function emptyView(
  e: EventIdentity,
  windowMs: number,
  fence: Deno.KvEntryMaybe<number>,
  course: CourseInfo | null,
): EventView {
  return {
    place: e,
    pointer: { key: eventIdKey(e.tenantId, e.id), value: null, versionstamp: null },
    self: null,
    enrollment: { key: enrollmentKey(e), value: null, versionstamp: null },
    counterparts: [],
    fence,
    course,
    known: { from: e.at - 2 * windowMs, to: e.at + 2 * windowMs, events: [] },
  };
}

/** A 30-bit hash (FNV-1a's, cut so that V8 keeps it unboxed) of an enrollment's coordinates. */
function hashOf(e: Pick<EventIdentity, "tenantId" | "userId" | "courseId">): number {
  const s = `${e.tenantId}/${e.userId}/${e.courseId}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h & 0x3fffffff;
}

/**
 * Creates the presumptions of one process. `share` is where the learnt share starts (default 0:
 * reads first); `enrollments`, how many enrollments with events it remembers at most (a hash of
 * each, the last ones seen; a collision only costs a read).
 */
export function createPresumptions(
  options: { share?: number; enrollments?: number } = {},
): Presumptions {
  let share = options.share ?? 0;
  const max = options.enrollments ?? KNOWN_ENROLLMENTS;
  let fence: Deno.KvEntryMaybe<number> = { key: FEED_FENCE_KEY, value: null, versionstamp: null };
  /** Course names read or written lately, by course id, oldest first. */
  const courses = new Map<number, { info: CourseInfo; at: number }>();
  /** Enrollments seen with events, oldest first. */
  const known = new Set<number>();
  const learn = (held: boolean) => (share += ((held ? 1 : 0) - share) / PRESUME_OVER);
  const keep = (info: CourseInfo | null, now: number) => {
    if (!info) return;
    courses.delete(info.course_id);
    courses.set(info.course_id, { info, at: now });
    if (courses.size > WARM_ENROLLMENTS) courses.delete(courses.keys().next().value!);
  };
  const exists = (h: number) => {
    known.delete(h);
    known.add(h);
    if (known.size > max) known.delete(known.values().next().value!);
  };
  return {
    get share() {
      return share;
    },
    view(e, windowMs, now) {
      if (share < PRESUME_AT_SHARE || known.has(hashOf(e))) return null;
      const course = courses.get(e.courseId);
      const name = course && now - course.at < WARM_FOR_MS ? course.info : null;
      const view = emptyView(e, windowMs, fence, name);
      view.presumed = true;
      return view;
    },
    read(view, first, now) {
      const h = hashOf(view.place);
      const empty = view.enrollment.versionstamp === null;
      if (first && !known.has(h)) learn(empty && view.pointer.value === null);
      if (!empty) exists(h);
      fence = view.fence;
      keep(view.course, now);
      return view;
    },
    settled(view, ok, course, now) {
      if (view.presumed) learn(ok);
      if (!ok) return;
      exists(hashOf(view.place));
      keep(course, now);
    },
  };
}
