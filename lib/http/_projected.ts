/**
 * The middleware of the routes that read views derived from records (indexes, counters, learner
 * entries, outbox entries): it projects what is pending first (see `lib/projector.ts`), so a read
 * sees every record committed before it.
 *
 * @example
 * ```ts
 * app.use("/records", projectedFirst(projector));
 * ```
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Projector } from "../projector.ts";

/** A middleware that drains `projector` before the route runs. */
export function projectedFirst(projector: Projector): MiddlewareHandler {
  return async (_c, next) => {
    await projector.drain();
    await next();
  };
}
