/**
 * The dashboard route group: `GET /`, `GET /courses/:courseId`, `GET /courses/:courseId/learners`,
 * `GET /courses/:courseId/records.csv`, `GET /unmatched`. When `API_TOKEN` is set the pages ask
 * for HTTP Basic auth with the token as password (any user name).
 *
 * @example
 * ```ts
 * app.route("/", dashboardRoutes({ kv, config }));
 * ```
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { z } from "zod";
import type { Config } from "../config.ts";
import type { Projector } from "../projector.ts";
import {
  CoursePage,
  ErrorPage,
  NotFoundPage,
  OverviewPage,
  UnmatchedPage,
} from "../dashboard/pages.tsx";
import { LearnersPage } from "../dashboard/learners.tsx";
import { cursorSchema } from "../store/_page.ts";
import { listLearners } from "../store/learners.ts";
import { listUnmatched, recentRecords } from "../store/records.ts";
import { retryWhenBusy } from "../store/retry.ts";
import { courseDetail, courseInfo, courseNames, courseOverview, DAY_MS } from "../store/stats.ts";
import { basicAuth } from "./_auth.ts";
import { projectedFirst } from "./_projected.ts";
import { rawFlag, recordsCsvResponse } from "./_csv.ts";
import { HttpError } from "./errors.ts";
import { limit, parseQuery } from "./_query.ts";

const courseId = z.string().regex(/^[1-9]\d{0,15}$/).transform(Number);

/** The learners page of `course`: its cursors are refused on another course's page. */
const learnersQuery = (course: number) =>
  z.strictObject({
    inactive_days: z.string().regex(/^\d{1,4}$/, "must be a whole number of days from 1 to 3650")
      .transform(Number).refine((n) => n >= 1 && n <= 3650, "must be from 1 to 3650").optional(),
    limit,
    cursor: cursorSchema(`learners/${course}`, z.tuple([z.number().finite(), z.number().int()]))
      .optional(),
  });

/** The course's CSV: `raw=true` writes formula-like text as received. */
const csvQuery = z.strictObject({ raw: rawFlag });

function notFound(id: string) {
  return <NotFoundPage message={`No completions are known for course ${id}.`} />;
}

/** The pages show learners' emails: no cache (browser or proxy) keeps them. */
const noStore: MiddlewareHandler = async (c, next) => {
  await next();
  c.res.headers.set("cache-control", "no-store");
};

/** The dashboard pages. */
export function dashboardRoutes(
  deps: { kv: Deno.Kv; config: Config; projector: Projector; now?: () => number },
): Hono {
  const { kv } = deps;
  const now = deps.now ?? Date.now;
  const app = new Hono();
  const auth = basicAuth(deps.config.apiToken);
  for (const path of ["/", "/courses/*", "/unmatched"]) app.use(path, noStore);
  // A client mistake (a bad parameter) on a page is an HTML page, not the API's JSON.
  app.onError((err, c) => {
    if (!(err instanceof HttpError)) throw err;
    const back = c.req.path.replace(/\/records\.csv$/, "");
    return c.html(<ErrorPage status={err.status} message={err.message} back={back} />, err.status);
  });
  app.use("/", auth);
  app.use("/courses/*", auth);
  app.use("/unmatched", auth);
  // The overview, the course pages and the unmatched list read views the projector writes:
  // projected first.
  const projected = projectedFirst(deps.projector);
  app.use("/", projected);
  app.use("/courses/*", projected);
  app.use("/unmatched", projected);

  app.get("/", async (c) => {
    const courses = await retryWhenBusy(() => courseOverview(kv, now()));
    return c.html(<OverviewPage courses={courses} />);
  });

  app.get("/courses/:courseId", async (c) => {
    const id = courseId.safeParse(c.req.param("courseId"));
    const detail = id.success ? await retryWhenBusy(() => courseDetail(kv, id.data, now())) : null;
    if (!id.success || !detail) return c.html(notFound(c.req.param("courseId")), 404);
    const recent = await retryWhenBusy(() => recentRecords(kv, { courseId: id.data }, 25));
    return c.html(<CoursePage course={detail.course} lessons={detail.lessons} recent={recent} />);
  });

  app.get("/courses/:courseId/learners", async (c) => {
    const id = courseId.safeParse(c.req.param("courseId"));
    const course = id.success ? await retryWhenBusy(() => courseInfo(kv, id.data)) : null;
    if (!id.success || !course) return c.html(notFound(c.req.param("courseId")), 404);
    const q = parseQuery(c.req.url, learnersQuery(id.data));
    const at = now();
    const inactiveSince = q.inactive_days === undefined ? undefined : at - q.inactive_days * DAY_MS;
    const page = await retryWhenBusy(() =>
      listLearners(kv, id.data, { limit: q.limit, inactiveSince, after: q.cursor })
    );
    const next = page.cursor === null ? null : `?${new URLSearchParams({
      ...(q.inactive_days ? { inactive_days: String(q.inactive_days) } : {}),
      ...(c.req.query("limit") ? { limit: String(q.limit) } : {}),
      cursor: page.cursor,
    })}`;
    return c.html(
      <LearnersPage
        course={course}
        learners={page.learners}
        inactiveDays={q.inactive_days}
        next={next}
        now={at}
      />,
    );
  });

  app.get("/courses/:courseId/records.csv", (c) => {
    const id = courseId.safeParse(c.req.param("courseId"));
    if (!id.success) return c.html(notFound(c.req.param("courseId")), 404);
    const q = parseQuery(c.req.url, csvQuery);
    return recordsCsvResponse(
      kv,
      { filter: { courseId: id.data } },
      `course-${id.data}-records.csv`,
      { raw: q.raw },
    );
  });

  app.get("/unmatched", async (c) => {
    const page = await retryWhenBusy(() => listUnmatched(kv, { limit: 200, now: now() }));
    const names = await retryWhenBusy(() => courseNames(kv, page.events.map((e) => e.course_id)));
    return c.html(<UnmatchedPage events={page.events} courses={names} />);
  });

  return app;
}
