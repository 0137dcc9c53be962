/**
 * Enrollment summaries: per learner and course, the progress seen and the lessons completed. A
 * record reads its previous percentage and whether the lesson is new for the learner from here,
 * with one `get`, and updates it in the record's own commit (checked, so a concurrent change
 * re-runs the decision).
 *
 * @example
 * ```ts
 * const read = await readEnrollment(kv, event);
 * const previous = previousPercentage(read.value, event.at);
 * ```
 * @module
 */
import type { Mutations } from "./plan.ts";
import { enrollmentKey, type EnrollmentSummary, type EventCoordinates } from "./keys.ts";
import { MAX_ENROLLMENT_LESSONS, MAX_ENROLLMENT_LONE, MAX_ENROLLMENT_PROGRESS } from "./limits.ts";

type Enrollment = Omit<EventCoordinates, "at">;

/** Reads the summary of the enrollment of `e`. */
export function readEnrollment(
  kv: Deno.Kv,
  e: Enrollment,
): Promise<Deno.KvEntryMaybe<EnrollmentSummary>> {
  return kv.get<EnrollmentSummary>(enrollmentKey(e));
}

/**
 * Whether the enrollment counts as one of its course's learners ("learners seen" on the dashboard,
 * the `learners` counter): it has at least one completed lesson, that is one record. This is the
 * one rule: the learners page lists exactly these learners, a counter is added when a summary
 * starts to count and taken away, on erasure, only from a summary that counts. An enrollment with
 * only progress events (pending, or given up) or only lone lessons does not count.
 */
export function countsAsLearner(summary: EnrollmentSummary | null): boolean {
  return summary !== null && summary.lessons.length > 0;
}

/** The latest percentage seen strictly before `before`, or `null`. */
export function previousPercentage(
  summary: EnrollmentSummary | null,
  before: number,
): number | null {
  let best: [number, number] | null = null;
  for (const p of summary?.progress ?? []) {
    if (p[0] < before && (best === null || p[0] >= best[0])) best = p;
  }
  return best ? best[1] : null;
}

/** The summary with one more progress event. */
export function withProgress(
  summary: EnrollmentSummary | null,
  at: number,
  percentage: number,
): EnrollmentSummary {
  const progress = [...(summary?.progress ?? []), [at, percentage] as [number, number]]
    .sort((a, b) => a[0] - b[0]).slice(-MAX_ENROLLMENT_PROGRESS);
  return { ...summary, progress, lessons: summary?.lessons ?? [] };
}

/** The summary with a completed lesson, and whether the learner had not completed it before. */
export function withLesson(
  summary: EnrollmentSummary | null,
  lessonId: number,
): { summary: EnrollmentSummary; firstTime: boolean } {
  const lessons = summary?.lessons ?? [];
  if (lessons.includes(lessonId)) {
    return { summary: summary ?? { progress: [], lessons }, firstTime: false };
  }
  return {
    summary: {
      ...summary,
      progress: summary?.progress ?? [],
      lessons: [...lessons, lessonId].slice(-MAX_ENROLLMENT_LESSONS),
    },
    firstTime: true,
  };
}

/**
 * How many times each lesson's learner counter was raised for one learner, given the lessons of
 * their records in the order the records were made: {@linkcode withLesson} replayed, so a lesson
 * that fell out of the bounded summary and was completed again counts as often as it was counted.
 */
export function countedLessons(lessonsInOrder: Iterable<number>): Map<number, number> {
  const counted = new Map<number, number>();
  let summary: EnrollmentSummary | null = null;
  for (const lesson of lessonsInOrder) {
    const added = withLesson(summary, lesson);
    if (added.firstTime) counted.set(lesson, (counted.get(lesson) ?? 0) + 1);
    summary = added.summary;
  }
  return counted;
}

/**
 * The summary with its list of events stored without a pair brought up to date (see
 * `EnrollmentSummary.lone`): ids whose pointers have expired by `now` and the `paired` ones
 * dropped, then `add` (`[event_id, until_ms]`) appended if fewer than
 * {@linkcode MAX_ENROLLMENT_LONE} remain. `kept`: `add` is listed (else the learner's index of ids
 * must take it). A summary without the list gets one only to add to it.
 */
export function withLone(
  summary: EnrollmentSummary,
  now: number,
  paired: readonly string[],
  add?: [string, number],
): { summary: EnrollmentSummary; kept: boolean } {
  if (!summary.lone && !add) return { summary, kept: false };
  const lone = (summary.lone ?? []).filter(([id, until]) => until > now && !paired.includes(id));
  const kept = add !== undefined && lone.length < MAX_ENROLLMENT_LONE;
  if (kept) lone.push(add);
  return { summary: { ...summary, lone }, kept };
}

/** Adds the checked write of a summary to `op`. */
export function saveEnrollment(
  op: Mutations,
  read: Deno.KvEntryMaybe<EnrollmentSummary>,
  next: EnrollmentSummary,
) {
  return op.check(read).set(read.key, next);
}
