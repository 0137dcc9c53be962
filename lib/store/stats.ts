/**
 * Dashboard aggregates, kept as counters the projector updates from each record (in batches, see
 * `projections.ts`), so a page costs O(courses), O(lessons) or O(days with completions), never O(records). Only the
 * counters that change with every record are written with every record (its day's completions);
 * the rest change when a learner or a lesson is new, or an event gives up or is resolved.
 *
 * @example
 * ```ts
 * const courses = await courseOverview(kv, Date.now());
 * const detail = await courseDetail(kv, 2100013, Date.now());
 * const page = await coursePage(kv, { limit: 100, now: Date.now() }); // GET /api/courses
 * ```
 * @module
 */
import type { Mutations } from "./plan.ts";
import type { LessonProgressRecord } from "../matching/record.ts";
import type { LessonFacts } from "../thinkific/schemas.ts";
import {
  COURSE_INFO_PREFIX,
  courseCounterKey,
  courseDayKey,
  courseDayPrefix,
  type CourseInfo,
  courseInfoKey,
  lessonCounterKey,
  type LessonInfo,
  lessonInfoKey,
  OUTBOX_DUE_PREFIX,
} from "./keys.ts";
import { KV_MAX_GET_MANY } from "./limits.ts";
import { listPage } from "./_page.ts";
import { countUnmatched, recentRecords } from "./records.ts";

const ONE = new Deno.KvU64(1n);
/** Adding 2⁶⁴−1 to a KvU64 (which wraps) takes one away. */
export const MINUS_ONE = new Deno.KvU64(0xffff_ffff_ffff_ffffn);
/** One UTC day: the dashboard's day counters count days since 1970. */
export const DAY_MS = 86_400_000;

/** Adds "this course has one more learner" to `op`. */
export function addLearner(op: Mutations, course: CourseInfo) {
  return op.set(courseInfoKey(course.course_id), course)
    .sum(courseCounterKey(course.course_id, "learners"), ONE.value);
}

/**
 * Adds a record's counters to `op`: its day's completions, and when the learner had not completed
 * the lesson before (`firstLesson`, with the lesson's place in its course, else `null`), the
 * lesson's learners (and its name and place, for the chart).
 */
export function addCompletion(
  op: Mutations,
  record: LessonProgressRecord,
  firstLesson: Pick<LessonFacts, "lessonPosition"> | null,
) {
  const course = record.course_id;
  op.sum(courseDayKey(course, Math.floor(Date.parse(record.completed_at) / DAY_MS)), ONE.value);
  if (firstLesson) {
    const info: LessonInfo = {
      lesson_id: record.lesson_id,
      lesson_name: record.lesson_name,
      lesson_type: record.lesson_type,
      position: firstLesson.lessonPosition,
      chapter_id: record.chapter_id,
      chapter_name: record.chapter_name,
    };
    op.set(lessonInfoKey(course, record.lesson_id), info)
      .sum(lessonCounterKey(course, record.lesson_id), ONE.value);
  }
  return op;
}

/** Adds "this course exists" to `op` (for a course first seen through an unmatched event). */
export function addCourse(op: Mutations, course: CourseInfo) {
  return op.set(courseInfoKey(course.course_id), course);
}

/** One course on the overview. */
export interface CourseSummary extends CourseInfo {
  learners: number;
  completions: number;
  unmatched: number;
  last7Days: number;
  last30Days: number;
  lastActivity: string | null;
}

async function summarize(
  kv: Deno.Kv,
  info: CourseInfo,
  now: number,
  unmatched: Map<number, number>,
): Promise<CourseSummary> {
  const id = info.course_id;
  const [learners, latest] = await Promise.all([
    kv.get<Deno.KvU64>(courseCounterKey(id, "learners")),
    recentRecords(kv, { courseId: id }, 1),
  ]);
  const today = Math.floor(now / DAY_MS);
  let completions = 0;
  let last7Days = 0;
  let last30Days = 0;
  for await (const e of kv.list<Deno.KvU64>({ prefix: courseDayPrefix(id) })) {
    const count = Number(e.value.value);
    const day = e.key[2] as number;
    completions += count;
    if (day > today - 30 && day <= today) last30Days += count;
    if (day > today - 7 && day <= today) last7Days += count;
  }
  return {
    ...info,
    learners: Number(learners.value?.value ?? 0n),
    completions,
    unmatched: unmatched.get(id) ?? 0,
    last7Days,
    last30Days,
    lastActivity: latest[0]?.completed_at ?? null,
  };
}

/** Every course, newest activity first. */
export async function courseOverview(kv: Deno.Kv, now: number): Promise<CourseSummary[]> {
  const infos: CourseInfo[] = [];
  for await (const e of kv.list<CourseInfo>({ prefix: COURSE_INFO_PREFIX })) infos.push(e.value);
  const unmatched = await countUnmatched(kv, now);
  const out = await Promise.all(infos.map((info) => summarize(kv, info, now, unmatched)));
  return out.sort((a, b) => (b.lastActivity ?? "").localeCompare(a.lastActivity ?? ""));
}

/** A course as the dashboard names it, or `null` when it has seen none of its events. */
export async function courseInfo(kv: Deno.Kv, courseId: number): Promise<CourseInfo | null> {
  return (await kv.get<CourseInfo>(courseInfoKey(courseId))).value;
}

/** A lesson with how many distinct learners completed it. */
export interface LessonSummary extends LessonInfo {
  learners: number;
}

/** A course's lessons in course order (chapters by their first lesson), or `null` if unknown. */
export async function courseDetail(
  kv: Deno.Kv,
  courseId: number,
  now: number,
): Promise<{ course: CourseSummary; lessons: LessonSummary[] } | null> {
  const info = await courseInfo(kv, courseId);
  if (!info) return null;
  const [lessons, unmatched] = await Promise.all([
    courseLessons(kv, courseId),
    countUnmatched(kv, now),
  ]);
  return { course: await summarize(kv, info, now, unmatched), lessons };
}

/** A course's lessons with their learners, in course order (see {@linkcode courseOrder}). */
export async function courseLessons(kv: Deno.Kv, courseId: number): Promise<LessonSummary[]> {
  const lessons: LessonInfo[] = [];
  for await (const e of kv.list<LessonInfo>({ prefix: ["dash_lesson", courseId] })) {
    lessons.push(e.value);
  }
  const counts: number[] = [];
  for (let i = 0; i < lessons.length; i += KV_MAX_GET_MANY) {
    const got = await kv.getMany<Deno.KvU64[]>(
      lessons.slice(i, i + KV_MAX_GET_MANY).map((l) => lessonCounterKey(courseId, l.lesson_id)),
    );
    for (const g of got) counts.push(Number(g.value?.value ?? 0n));
  }
  return courseOrder(lessons.map((l, i) => ({ ...l, learners: counts[i] })));
}

/**
 * One page of courses in course id order (`GET /api/courses`), each summarised as the overview
 * does; `after` is the previous page's last course id, `tenantId` keeps one school's courses.
 */
export async function coursePage(
  kv: Deno.Kv,
  query: { limit: number; after?: [number]; tenantId?: string; now: number },
): Promise<{ courses: CourseSummary[]; cursor: string | null }> {
  const { tenantId } = query;
  const page = await listPage<CourseInfo>(kv, COURSE_INFO_PREFIX, {
    kind: "courses",
    limit: query.limit,
    after: query.after,
    keep: tenantId === undefined ? undefined : (_, info) => info.tenant_id === tenantId,
  });
  const unmatched = await countUnmatched(kv, query.now);
  const courses: CourseSummary[] = [];
  // A few courses at a time: each summary is a get and two range lists.
  for (let i = 0; i < page.items.length; i += KV_MAX_GET_MANY) {
    courses.push(
      ...await Promise.all(
        page.items.slice(i, i + KV_MAX_GET_MANY).map((info) =>
          summarize(kv, info, query.now, unmatched)
        ),
      ),
    );
  }
  return { courses, cursor: page.cursor };
}

/** Orders lessons by chapter (chapters by their lowest lesson position, then id), then position. */
export function courseOrder<L extends LessonInfo>(lessons: L[]): L[] {
  const pos = (l: LessonInfo) => l.position ?? Number.MAX_SAFE_INTEGER;
  const chapterStart = new Map<number, number>();
  for (const l of lessons) {
    chapterStart.set(l.chapter_id, Math.min(chapterStart.get(l.chapter_id) ?? Infinity, pos(l)));
  }
  return [...lessons].sort((a, b) =>
    chapterStart.get(a.chapter_id)! - chapterStart.get(b.chapter_id)! ||
    a.chapter_id - b.chapter_id || pos(a) - pos(b) || a.lesson_id - b.lesson_id
  );
}

/** Course names by id, for the courses among `ids` the dashboard knows. */
export async function courseNames(kv: Deno.Kv, ids: number[]): Promise<Map<number, string>> {
  const unique = [...new Set(ids)];
  const names = new Map<number, string>();
  for (let i = 0; i < unique.length; i += KV_MAX_GET_MANY) {
    const got = await kv.getMany<CourseInfo[]>(
      unique.slice(i, i + KV_MAX_GET_MANY).map(courseInfoKey),
    );
    for (const g of got) if (g.value) names.set(g.value.course_id, g.value.course_name);
  }
  return names;
}

/** Pending outbox entries are counted up to this many. */
export const OUTBOX_COUNT_CAP = 10_000;

/**
 * The backlog an operator watches: unmatched events listed by now (one scan of the unmatched
 * list, which retention bounds) and pending outbox entries (counted, up to
 * {@linkcode OUTBOX_COUNT_CAP}).
 */
export async function backlog(kv: Deno.Kv): Promise<{ unmatched: number; outboxPending: number }> {
  let unmatched = 0;
  for (const n of (await countUnmatched(kv, Date.now())).values()) unmatched += n;
  let outboxPending = 0;
  for await (
    const _ of kv.list({ prefix: OUTBOX_DUE_PREFIX }, { limit: OUTBOX_COUNT_CAP, batchSize: 500 })
  ) outboxPending++;
  return { unmatched, outboxPending };
}
