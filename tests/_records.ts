/**
 * Records and lesson facts made by hand, for tests that drive the store's writers and readers
 * (counters, learner entries, erasure) without going through the collator.
 * @module
 */
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import type { LessonInfo } from "../lib/store/keys.ts";
import type { LessonFacts } from "../lib/thinkific/schemas.ts";
import { BASE_TIME } from "./_helpers.ts";

/** What varies between the records of a test; the rest follows from it. */
export interface RecordSpec {
  tenant?: string;
  user?: number;
  course?: number;
  lesson?: number;
  /** When the lesson was completed (epoch ms). */
  at?: number;
  /** When the record was made (default: `at`). */
  collatedAt?: number;
  /** How long after its lesson the progress event came. */
  skew?: number;
  percentage?: number;
}

/** A record of `lesson` by `user` of `tenant` in `course`: by default user 1 of 48213, course 10. */
export function handRecord(s: RecordSpec = {}): LessonProgressRecord {
  const { tenant = "48213", user = 1, course = 10, lesson = 1, at = BASE_TIME } = s;
  const id = `${tenant}-${user}-${course}-${lesson}-${at}`;
  return {
    tenant_id: tenant,
    user_id: user,
    user_email: `user${user}@example.com`,
    course_id: course,
    course_name: `Course ${course}`,
    enrollment_id: user,
    lesson_id: lesson,
    lesson_name: `Lesson ${lesson}`,
    lesson_type: "Video",
    chapter_id: 1,
    chapter_name: "Chapter 1",
    completed_at: new Date(at).toISOString(),
    percentage_completed: s.percentage ?? 50,
    previous_percentage_completed: null,
    first_completion: true,
    progress_event_id: `p-${id}`,
    lesson_event_id: `l-${id}`,
    skew_ms: s.skew ?? 0,
    collated_at: new Date(s.collatedAt ?? at).toISOString(),
  };
}

/** The lesson event's facts of `r`, with `change` applied (its chapter, its position...). */
export function factsOf(r: LessonProgressRecord, change: Partial<LessonFacts> = {}): LessonFacts {
  return {
    kind: "lesson",
    userEmail: r.user_email,
    courseName: r.course_name,
    enrollmentId: r.enrollment_id,
    lessonId: r.lesson_id,
    lessonName: r.lesson_name,
    lessonType: r.lesson_type,
    lessonPosition: null,
    chapterId: r.chapter_id,
    chapterName: r.chapter_name,
    ...change,
  };
}

/** A lesson as the dashboard draws it: `L<id>` in chapter `C<chapter>`, a video. */
export const lessonInfo = (
  lesson_id: number,
  chapter_id: number,
  position: number | null,
): LessonInfo => ({
  lesson_id,
  lesson_name: `L${lesson_id}`,
  lesson_type: "Video",
  position,
  chapter_id,
  chapter_name: `C${chapter_id}`,
});
