/**
 * The lesson-progress record: field names are part of the contract (SPEC), built here from the two
 * events of a pair. Pure.
 *
 * @example
 * ```ts
 * const record = buildRecord({ lesson, progress, previousPercentage: 12.5, collatedAt: Date.now() });
 * console.log(record.first_completion); // true when the percentage rose
 * ```
 * @module
 */
import type { LessonFacts, ProgressFacts } from "../thinkific/schemas.ts";

/** One "learner X completed lesson Y of course Z at T, reaching P% from Q%" row. */
export interface LessonProgressRecord {
  tenant_id: string;
  user_id: number;
  user_email: string;
  course_id: number;
  course_name: string;
  enrollment_id: number;
  lesson_id: number;
  lesson_name: string;
  lesson_type: string;
  chapter_id: number;
  chapter_name: string;
  completed_at: string;
  percentage_completed: number;
  previous_percentage_completed: number | null;
  first_completion: boolean;
  progress_event_id: string;
  lesson_event_id: string;
  skew_ms: number;
  collated_at: string;
}

/** The part of a stored event a record is built from. */
export interface EventSide<F> {
  id: string;
  tenantId: string;
  userId: number;
  courseId: number;
  at: number;
  facts: F;
}

/** Builds the record of a pair. */
export function buildRecord(input: {
  lesson: EventSide<LessonFacts>;
  progress: EventSide<ProgressFacts>;
  previousPercentage: number | null;
  collatedAt: number;
}): LessonProgressRecord {
  const { lesson, progress, previousPercentage } = input;
  const percentage = progress.facts.percentage;
  return {
    tenant_id: progress.tenantId,
    user_id: progress.userId,
    user_email: progress.facts.userEmail || lesson.facts.userEmail,
    course_id: progress.courseId,
    course_name: progress.facts.courseName || lesson.facts.courseName,
    enrollment_id: progress.facts.enrollmentId,
    lesson_id: lesson.facts.lessonId,
    lesson_name: lesson.facts.lessonName,
    lesson_type: lesson.facts.lessonType,
    chapter_id: lesson.facts.chapterId,
    chapter_name: lesson.facts.chapterName,
    completed_at: new Date(lesson.at).toISOString(),
    percentage_completed: percentage,
    previous_percentage_completed: previousPercentage,
    first_completion: previousPercentage === null
      ? percentage > 0
      : percentage > previousPercentage,
    progress_event_id: progress.id,
    lesson_event_id: lesson.id,
    skew_ms: progress.at - lesson.at,
    collated_at: new Date(input.collatedAt).toISOString(),
  };
}
