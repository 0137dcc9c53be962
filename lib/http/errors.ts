/**
 * The one error type the HTTP edge throws for a client mistake: a status and a JSON body that
 * says what is wrong.
 *
 * @example
 * ```ts
 * throw new HttpError(415, "Content-Type must be application/json");
 * ```
 * @module
 */
import type { ContentfulStatusCode } from "hono/utils/http-status";

export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  /** The JSON body of the answer. */
  body(): Record<string, unknown> {
    return { error: this.message, ...this.extra };
  }
}
