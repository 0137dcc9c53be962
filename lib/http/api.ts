/**
 * `/api/*`: the records, their change feed and the unmatched list, behind the bearer token when `API_TOKEN` is set.
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
import { MAX_PAGE_SIZE } from "../store/limits.ts";
import { cursorSchema, timeIdIdPosition, timeIdPosition } from "../store/_page.ts";
import { listOutbox, MESSAGE_ID_PART, requeue } from "../store/outbox.ts";
import { listFeed, listRecords, listUnmatched } from "../store/records.ts";
import { retryWhenBusy } from "../store/retry.ts";
import { bearerAuth } from "./_auth.ts";
import { HttpError } from "./errors.ts";

const positiveInt = z.string().regex(/^[1-9]\d{0,15}$/, "must be a positive integer")
  .transform(Number).refine(Number.isSafeInteger, "must be a positive integer");

const limit = z.string().regex(/^\d{1,4}$/, `must be a whole number from 1 to ${MAX_PAGE_SIZE}`)
  .transform(Number)
  .refine((n) => n >= 1 && n <= MAX_PAGE_SIZE, `must be from 1 to ${MAX_PAGE_SIZE}`)
  .optional().default(100);

const since = z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
  error: "must be an ISO time such as 2026-11-02T14:15:12.334Z",
}).transform((s) => Date.parse(s));

const recordsQuery = z.strictObject({
  tenant_id: positiveInt.transform(String).optional(),
  user_id: positiveInt.optional(),
  course_id: positiveInt.optional(),
  since: since.optional(),
  limit,
  cursor: cursorSchema(timeIdIdPosition).optional(),
});

const feedQuery = z.strictObject({
  limit,
  cursor: cursorSchema(z.union([timeIdIdPosition, z.tuple([z.number().finite()])])).optional(),
});

const unmatchedQuery = z.strictObject({
  limit,
  cursor: cursorSchema(timeIdIdPosition).optional(),
});

const outboxQuery = z.strictObject({
  status: z.enum(["dead", "pending"]).optional().default("dead"),
  limit,
  cursor: cursorSchema(timeIdPosition).optional(),
});

const part = MESSAGE_ID_PART.source;
const outboxId = z.string().regex(
  new RegExp(`^[\\w-]{1,32}:msg_${part}_${part}$`),
  "is not an outbox id",
);

/** Parses a query string once, at the edge; a bad, repeated or unknown parameter is a 400. */
function parseQuery<T extends z.ZodType>(url: string, schema: T): z.output<T> {
  const params = new URL(url).searchParams;
  const raw: Record<string, string> = {};
  for (const [name, value] of params) {
    if (name in raw) throw new HttpError(400, `query parameter ${name} is given more than once`);
    raw[name] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = issue.code === "unrecognized_keys" ? issue.keys.join(", ") : issue.path.join(".");
    const message = issue.code === "unrecognized_keys" ? "is not a known parameter" : issue.message;
    throw new HttpError(400, `query parameter ${name} ${message}`, {
      issues: parsed.error.issues.map((i) => ({ path: i.path, message: i.message })),
    });
  }
  return parsed.data;
}

/** The `/api` route group. */
export function apiRoutes(
  deps: { kv: Deno.Kv; config: Config; forwarder?: Forwarder; now?: () => number },
): Hono {
  const { kv, forwarder } = deps;
  const now = deps.now ?? Date.now;
  const app = new Hono();
  app.use(bearerAuth(deps.config.apiToken));

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

  app.get("/feed", async (c) => {
    const q = parseQuery(c.req.url, feedQuery);
    const until = now() - deps.config.feedDelayMs;
    return c.json(
      await retryWhenBusy(() => listFeed(kv, { cursor: q.cursor, limit: q.limit, until })),
    );
  });

  app.get("/unmatched", async (c) => {
    const q = parseQuery(c.req.url, unmatchedQuery);
    return c.json(
      await retryWhenBusy(() => listUnmatched(kv, { limit: q.limit, after: q.cursor })),
    );
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
    if (!entry) throw new HttpError(404, `no outbox entry ${id.data}`);
    if (entry.status === "delivered") {
      throw new HttpError(409, `outbox entry ${id.data} was already delivered`);
    }
    forwarder?.kick();
    return c.json({ status: "pending", id: entry.id, attempts: entry.attempts }, 202);
  });

  return app;
}
