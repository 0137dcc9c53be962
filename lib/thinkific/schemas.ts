/**
 * zod schemas for Thinkific's webhook envelope and the two payloads this service pairs.
 *
 * Unknown fields are accepted (the raw body is stored as received); only the fields a record needs
 * are checked and typed.
 *
 * @example
 * ```ts
 * const result = parseWebhook(JSON.parse(body), headers.get("x-thinkific-topic"));
 * if (result.kind === "event") console.log(result.event.topic);
 * ```
 * @module
 */
import { z } from "zod";
import { HANDLED_TOPICS, type HandledTopic, LESSON_TOPIC } from "../config.ts";
import { MAX_NAME_CHARS } from "../store/limits.ts";

/** A positive whole number that survives a round trip through JSON. */
const id = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const name = z.string().max(MAX_NAME_CHARS);
const optionalName = z.string().max(MAX_NAME_CHARS).nullish();

/**
 * A school id as text: what a webhook's `tenant_id` must be, and what `GET /api/records?tenant_id=`
 * accepts, so every school that can send webhooks can have its records filtered.
 */
export const schoolId = z.string().trim().min(1, "must not be empty").max(64)
  .regex(/^[\w.-]+$/, "must contain only letters, digits, _ . -");

/** The school: Thinkific sends a string; a number is accepted and turned into one. */
const tenantId = z.union([schoolId, id.transform(String)]);

/** The event id: the same on every redelivery, so it is the idempotency key. */
const eventId = z.union([
  z.string().min(1).max(64).regex(/^[\w.-]+$/, "must contain only letters, digits, _ . -"),
  id.transform(String),
]);

/**
 * Thinkific's percentage: a decimal string from "0" to "100", with as many decimals as a float
 * printed in full has ("33.333333333333336").
 */
const percentage = z.string()
  .regex(/^\d{1,3}(\.\d{1,20})?$/, 'must be a decimal string such as "17.5"')
  .transform(Number)
  .refine((n) => n >= 0 && n <= 100, "must be between 0 and 100");

const user = z.object({
  id,
  email: z.string().max(320),
  first_name: optionalName,
  last_name: optionalName,
});
const course = z.object({ id, name });

const lessonPayload = z.object({
  chapter: z.object({ id, name }),
  course,
  enrollment: z.object({ id }),
  lesson: z.object({
    id,
    name,
    position: z.number().int().min(0).max(1_000_000).nullish(),
    type: z.string().max(64),
  }),
  user,
});

const progressPayload = z.object({
  id,
  course,
  course_id: id.optional(),
  user,
  percentage_completed: percentage,
}).refine((p) => p.course_id === undefined || p.course_id === p.course.id, {
  message: "course_id must equal course.id",
  path: ["course_id"],
});

const topicSchema = z.object({
  resource: z.string().min(1).max(64),
  action: z.string().min(1).max(64),
});

const envelope = z.object({
  id: eventId,
  tenant_id: tenantId,
  created_at: z.iso.datetime({ offset: true }).transform((s) => Date.parse(s))
    .refine(Number.isFinite, "must be a valid time"),
  payload: z.object({}), // an object: its fields are the topic's payload schema's
});

/** What a lesson event contributes to a record. */
export interface LessonFacts {
  kind: "lesson";
  userEmail: string;
  courseName: string;
  enrollmentId: number;
  lessonId: number;
  lessonName: string;
  lessonType: string;
  lessonPosition: number | null;
  chapterId: number;
  chapterName: string;
}

/** What a progress event contributes to a record. */
export interface ProgressFacts {
  kind: "progress";
  userEmail: string;
  courseName: string;
  enrollmentId: number;
  percentage: number;
}

/** A validated `lesson.completed` or `enrollment.progress` webhook. */
export interface ThinkificEvent {
  id: string;
  topic: HandledTopic;
  tenantId: string;
  userId: number;
  courseId: number;
  /** `created_at` in epoch milliseconds. */
  at: number;
  facts: LessonFacts | ProgressFacts;
}

/** One schema failure, with zod's path. */
export interface SchemaIssue {
  path: (string | number)[];
  message: string;
}

/** The outcome of {@linkcode parseWebhook}. */
export type ParsedWebhook =
  | { kind: "event"; event: ThinkificEvent }
  | { kind: "ignored"; topic: string; eventId: string | null }
  | { kind: "topic_mismatch"; bodyTopic: string; headerTopic: string }
  | { kind: "invalid"; topic: string | null; issues: SchemaIssue[] };

function issuesOf(error: z.ZodError, prefix: (string | number)[] = []): SchemaIssue[] {
  return error.issues.map((issue) => ({
    path: [...prefix, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))],
    message: issue.message,
  }));
}

/**
 * Validates a parsed JSON body. `headerTopic` is `X-Thinkific-Topic`, when sent.
 */
export function parseWebhook(body: unknown, headerTopic: string | null): ParsedWebhook {
  const t = topicSchema.safeParse(body);
  if (!t.success) return { kind: "invalid", topic: null, issues: issuesOf(t.error) };
  const fields = body as Record<string, unknown>; // an object: the topic's schema parsed it
  const topic = `${t.data.resource}.${t.data.action}`;
  if (headerTopic !== null && headerTopic.trim() !== topic) {
    return { kind: "topic_mismatch", bodyTopic: topic, headerTopic: headerTopic.trim() };
  }
  if (!(HANDLED_TOPICS as readonly string[]).includes(topic)) {
    const maybeId = eventId.safeParse(fields.id);
    return { kind: "ignored", topic, eventId: maybeId.success ? maybeId.data : null };
  }
  const env = envelope.safeParse(body);
  if (!env.success) return { kind: "invalid", topic, issues: issuesOf(env.error) };
  const base = { id: env.data.id, tenantId: env.data.tenant_id, at: env.data.created_at };

  if (topic === LESSON_TOPIC) {
    const p = lessonPayload.safeParse(fields.payload);
    if (!p.success) return { kind: "invalid", topic, issues: issuesOf(p.error, ["payload"]) };
    const d = p.data;
    return {
      kind: "event",
      event: {
        ...base,
        topic,
        userId: d.user.id,
        courseId: d.course.id,
        facts: {
          kind: "lesson",
          userEmail: d.user.email,
          courseName: d.course.name,
          enrollmentId: d.enrollment.id,
          lessonId: d.lesson.id,
          lessonName: d.lesson.name,
          lessonType: d.lesson.type,
          lessonPosition: d.lesson.position ?? null,
          chapterId: d.chapter.id,
          chapterName: d.chapter.name,
        },
      },
    };
  }
  const p = progressPayload.safeParse(fields.payload);
  if (!p.success) return { kind: "invalid", topic, issues: issuesOf(p.error, ["payload"]) };
  const d = p.data;
  return {
    kind: "event",
    event: {
      ...base,
      topic: topic as HandledTopic,
      userId: d.user.id,
      courseId: d.course.id,
      facts: {
        kind: "progress",
        userEmail: d.user.email,
        courseName: d.course.name,
        enrollmentId: d.id,
        percentage: d.percentage_completed,
      },
    },
  };
}
