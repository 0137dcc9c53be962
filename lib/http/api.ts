/**
 * `/api/*`: the records, their change feed, the unmatched list and the dashboard's figures (courses
 * and their lessons), behind the bearer token when `API_TOKEN` is set.
 *
 * @example
 * ```ts
 * app.route("/api", apiRoutes({ kv, config }));
 * ```
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import type { Config } from "../config.ts";
import type { Forwarder } from "../forward/forwarder.ts";
import type { Projector } from "../projector.ts";
import { cursorSchema, timeIdIdPosition, timeIdPosition } from "../store/_page.ts";
import { forwardedFromFlight } from "../store/flights.ts";
import { outboxIdParts } from "../store/keys.ts";
import { listOutbox, MESSAGE_ID_PART, requeue } from "../store/outbox.ts";
import { FEED_FENCE_STEP_MS } from "../store/limits.ts";
import { listFeed, listRecords, listUnmatched } from "../store/records.ts";
import { retryWhenBusy } from "../store/retry.ts";
import { courseInfo, courseLessons, coursePage, type CourseSummary } from "../store/stats.ts";
import { schoolId } from "../thinkific/schemas.ts";
import { eraseLearner } from "../store/erasure.ts";
import { bearerAuth } from "./_auth.ts";
import { projectedFirst } from "./_projected.ts";
import { rawFlag, recordsCsvResponse } from "./_csv.ts";
import { HttpError } from "./errors.ts";
import { limit, parseQuery, positiveInt } from "./_query.ts";

const since = z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
  error: "must be an ISO time such as 2026-11-02T14:15:12.334Z",
}).transform((s) => Date.parse(s));

const recordsQuery = z.strictObject({
  tenant_id: schoolId.optional(),
  user_id: positiveInt.optional(),
  course_id: positiveInt.optional(),
  since: since.optional(),
  limit,
  cursor: cursorSchema("records", timeIdIdPosition).optional(),
});

/** `/api/records.csv`: the filters of `/api/records`, every page; `raw=true` for formulas as sent. */
const csvQuery = recordsQuery.omit({ limit: true, cursor: true }).extend({ raw: rawFlag });

const learnerParams = z.object({
  tenantId: schoolId,
  userId: positiveInt,
});

const feedQuery = z.strictObject({
  limit,
  // Untagged cursors (before the tag) accepted for one release: followers store theirs.
  cursor: cursorSchema("feed", z.union([timeIdIdPosition, z.tuple([z.number().finite()])]), {
    acceptUntagged: true,
  }).optional(),
});

const unmatchedQuery = z.strictObject({
  limit,
  cursor: cursorSchema("unmatched", timeIdIdPosition).optional(),
});

const outboxQuery = z.strictObject({
  status: z.enum(["dead", "pending"]).optional().default("dead"),
  limit,
  cursor: z.string().optional(),
}).transform((q, ctx) => {
  // The cursor is of the listing of this status: refused on the other one.
  if (q.cursor === undefined) return { ...q, cursor: undefined };
  const cursor = cursorSchema(`outbox/${q.status}`, timeIdPosition).safeParse(q.cursor);
  if (cursor.success) return { ...q, cursor: cursor.data };
  ctx.addIssue({ code: "custom", path: ["cursor"], message: cursor.error.issues[0].message });
  return z.NEVER;
});

const coursesQuery = z.strictObject({
  tenant_id: schoolId.optional(),
  limit,
  cursor: cursorSchema("courses", z.tuple([z.number().int().positive()])).optional(),
});

const courseParams = z.object({ courseId: positiveInt });

/** Path parameters, parsed once: a bad one is a 400 naming it. */
function parseParams<T extends z.ZodType>(params: Record<string, string>, schema: T): z.output<T> {
  const p = schema.safeParse(params);
  if (!p.success) {
    const issue = p.error.issues[0];
    throw new HttpError(400, `path parameter ${issue.path.join(".")} ${issue.message}`);
  }
  return p.data;
}

/** A course as `GET /api/courses` lists it. */
function courseJson(c: CourseSummary) {
  return {
    tenant_id: c.tenant_id,
    course_id: c.course_id,
    course_name: c.course_name,
    learners: c.learners,
    completions_7d: c.last7Days,
    completions_30d: c.last30Days,
    unmatched: c.unmatched,
    last_activity_at: c.lastActivity,
  };
}

const part = MESSAGE_ID_PART.source;
const outboxId = z.string().regex(
  new RegExp(`^[\\w-]{1,32}:msg_${part}_${part}$`),
  "is not an outbox id",
);

/** The `/api` route group. */
export function apiRoutes(
  deps: {
    kv: Deno.Kv;
    config: Config;
    forwarder?: Forwarder;
    projector: Projector;
    now?: () => number;
  },
): Hono {
  const { kv, forwarder } = deps;
  const now = deps.now ?? Date.now;
  const app = new Hono();
  app.use(bearerAuth(deps.config.apiToken));
  // Views derived from records are projected before a read (Hono's `/x/*` also matches `/x`).
  const projected = projectedFirst(deps.projector);
  for (const path of ["/records", "/records.csv", "/unmatched", "/courses/*", "/outbox/*"]) {
    app.use(path, projected);
  }

  app.get("/records", async (c) => {
    const q = parseQuery(c.req.url, recordsQuery);
    const page = await retryWhenBusy(() =>
      listRecords(kv, {
        filter: { tenantId: q.tenant_id, userId: q.user_id, courseId: q.course_id },
        since: q.since,
        limit: q.limit,
        after: q.cursor,
      })
    );
    return c.json(page);
  });

  app.get("/records.csv", (c) => {
    const q = parseQuery(c.req.url, csvQuery);
    const filter = { tenantId: q.tenant_id, userId: q.user_id, courseId: q.course_id };
    return recordsCsvResponse(kv, { filter, since: q.since }, "records.csv", { raw: q.raw });
  });

  app.delete("/learners/:tenantId/:userId", async (c) => {
    const p = parseParams(c.req.param(), learnerParams);
    const who = { tenantId: p.tenantId, userId: p.userId };
    const destinations = forwarder?.destinations ?? [];
    const removed = await retryWhenBusy(() => eraseLearner(kv, who, { destinations, now: now() }));
    return c.json({ status: "erased", tenant_id: who.tenantId, user_id: who.userId, removed });
  });

  app.get("/feed", async (c) => {
    const q = parseQuery(c.req.url, feedQuery);
    const delay = deps.config.feedDelayMs;
    const query = { ...q, until: now() - delay, step: Math.min(FEED_FENCE_STEP_MS, delay) };
    const project = () => deps.projector.drain();
    return c.json(await retryWhenBusy(() => listFeed(kv, query, project)));
  });

  app.get("/unmatched", async (c) => {
    const q = parseQuery(c.req.url, unmatchedQuery);
    return c.json(
      await retryWhenBusy(() => listUnmatched(kv, { limit: q.limit, after: q.cursor, now: now() })),
    );
  });

  app.get("/courses", async (c) => {
    const q = parseQuery(c.req.url, coursesQuery);
    const page = await retryWhenBusy(() =>
      coursePage(kv, { limit: q.limit, after: q.cursor, tenantId: q.tenant_id, now: now() })
    );
    return c.json({ courses: page.courses.map(courseJson), cursor: page.cursor });
  });

  app.get("/courses/:courseId/lessons", async (c) => {
    const { courseId } = parseParams(c.req.param(), courseParams);
    parseQuery(c.req.url, z.strictObject({}));
    const lessons = await retryWhenBusy(async () =>
      await courseInfo(kv, courseId) ? await courseLessons(kv, courseId) : null
    );
    if (!lessons) throw new HttpError(404, `no course ${courseId}`);
    return c.json({
      lessons: lessons.map((l) => ({
        lesson_id: l.lesson_id,
        lesson_name: l.lesson_name,
        chapter_id: l.chapter_id,
        chapter_name: l.chapter_name,
        learners: l.learners,
      })),
    });
  });

  app.get("/outbox", async (c) => {
    const q = parseQuery(c.req.url, outboxQuery);
    const page = await retryWhenBusy(() =>
      listOutbox(kv, { status: q.status, limit: q.limit, after: q.cursor })
    );
    return c.json(page);
  });

  app.post("/outbox/:id/retry", async (c) => {
    const id = outboxId.safeParse(c.req.param("id"));
    if (!id.success) throw new HttpError(400, `outbox id "${c.req.param("id")}" is not valid`);
    const entry = await retryWhenBusy(() => requeue(kv, id.data, now()));
    if (!entry) {
      // A record forwarded on its first attempt leaves no entry (see `lib/store/flights.ts`).
      const { destination, messageId } = outboxIdParts(id.data);
      const forwards = forwarder?.destinations.includes(destination) ?? false;
      if (forwards && await retryWhenBusy(() => forwardedFromFlight(kv, messageId))) {
        throw new HttpError(
          409,
          `outbox entry ${id.data} has no attempt to retry: its record was delivered, or is being forwarded`,
        );
      }
      throw new HttpError(404, `no outbox entry ${id.data}`);
    }
    if (entry.status === "delivered") {
      throw new HttpError(409, `outbox entry ${id.data} was already delivered`);
    }
    forwarder?.kick();
    return c.json({ status: "pending", id: entry.id, attempts: entry.attempts }, 202);
  });

  return app;
}
