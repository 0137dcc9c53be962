/**
 * Query strings parsed once, at the edge, through a zod schema: a bad, repeated or unknown
 * parameter is a 400 naming it. Also the parameter schemas several routes share.
 * @module
 */
import { z } from "zod";
import { MAX_PAGE_SIZE } from "../store/limits.ts";
import { HttpError } from "./errors.ts";

/** A positive integer id (Thinkific's user, course… ids). */
export const positiveInt = z.string().regex(/^[1-9]\d{0,15}$/, "must be a positive integer")
  .transform(Number).refine(Number.isSafeInteger, "must be a positive integer");

/** `limit`: 1 to {@linkcode MAX_PAGE_SIZE}, 100 by default. */
export const limit = z.string().regex(
  /^\d{1,4}$/,
  `must be a whole number from 1 to ${MAX_PAGE_SIZE}`,
)
  .transform(Number)
  .refine((n) => n >= 1 && n <= MAX_PAGE_SIZE, `must be from 1 to ${MAX_PAGE_SIZE}`)
  .optional().default(100);

/** Parses a query string once, at the edge; a bad, repeated or unknown parameter is a 400. */
export function parseQuery<T extends z.ZodType>(url: string, schema: T): z.output<T> {
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
