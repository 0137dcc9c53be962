/**
 * The dashboard route group: `GET /`, `GET /courses/:courseId`, `GET /unmatched`. When `API_TOKEN`
 * is set the pages ask for HTTP Basic auth with the token as password (any user name).
 *
 * @example
 * ```ts
 * app.route("/", dashboardRoutes({ kv, config }));
 * ```
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import type { Config } from "../config.ts";
import { CoursePage, NotFoundPage, OverviewPage, UnmatchedPage } from "../dashboard/pages.tsx";
import { listUnmatched, recentRecords } from "../store/records.ts";
import { retryWhenBusy } from "../store/retry.ts";
import { courseDetail, courseOverview } from "../store/stats.ts";
import { basicAuth } from "./_auth.ts";

const courseId = z.string().regex(/^[1-9]\d{0,15}$/).transform(Number);

/** The dashboard pages. */
export function dashboardRoutes(
  deps: { kv: Deno.Kv; config: Config; now?: () => number },
): Hono {
  const { kv } = deps;
  const now = deps.now ?? Date.now;
  const app = new Hono();
  const auth = basicAuth(deps.config.apiToken);
  app.use("/", auth);
  app.use("/courses/*", auth);
  app.use("/unmatched", auth);

  app.get("/", async (c) => {
    const courses = await retryWhenBusy(() => courseOverview(kv, now()));
    return c.html(<OverviewPage courses={courses} />);
  });

  app.get("/courses/:courseId", async (c) => {
    const id = courseId.safeParse(c.req.param("courseId"));
    const detail = id.success ? await retryWhenBusy(() => courseDetail(kv, id.data, now())) : null;
    if (!id.success || !detail) {
      return c.html(
        <NotFoundPage
          message={`No completions are known for course ${c.req.param("courseId")}.`}
        />,
        404,
      );
    }
    const recent = await retryWhenBusy(() => recentRecords(kv, { courseId: id.data }, 25));
    return c.html(<CoursePage course={detail.course} lessons={detail.lessons} recent={recent} />);
  });

  app.get("/unmatched", async (c) => {
    const page = await retryWhenBusy(() => listUnmatched(kv, { limit: 200, now: now() }));
    return c.html(<UnmatchedPage events={page.events} />);
  });

  return app;
}
