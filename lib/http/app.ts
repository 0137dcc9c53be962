/**
 * The Hono application: route groups mounted with `app.route()`, and the one place where errors
 * become answers (client mistakes 4xx; storage trouble 503 with `Retry-After`, so senders retry).
 *
 * @example
 * ```ts
 * const app = createApp({ kv: await Deno.openKv(":memory:"), config: parseConfig({}) });
 * const res = await app.request("/healthz");
 * ```
 * @module
 */
import { Hono } from "hono";
import { ContentionError } from "../collator.ts";
import type { Config } from "../config.ts";
import type { Forwarder } from "../forward/forwarder.ts";
import { createHolds, type Holds } from "../hold.ts";
import { createLanes } from "../lanes.ts";
import { createWarmViews, type WarmViews } from "../store/warm.ts";
import { createPresumptions, type Presumptions } from "../store/presumed.ts";
import { createRecentRecords, type RecentRecords } from "../store/recent.ts";
import { wakeModeOf } from "../kv.ts";
import { type Committer, createCommitter } from "../store/committer.ts";
import { jsonLogger, type Logger } from "../log.ts";
import { createProjector, type Projector } from "../projector.ts";
import { apiRoutes } from "./api.ts";
import { dashboardRoutes } from "./dashboard.tsx";
import { HttpError } from "./errors.ts";
import { webhookRoutes } from "./webhooks.ts";

/** What the application is made of. */
export interface AppDeps {
  kv: Deno.Kv;
  config: Config;
  log?: Logger;
  /** Forwards new records downstream (see lib/forward/forwarder.ts). */
  forwarder?: Forwarder;
  /** The clock; tests pass their own. */
  now?: () => number;
  /** The process's group committer (default: a new one on `kv`). */
  committer?: Committer;
  /** The process's held deliveries (default: new ones, woken as `wakeModeOf(config)` says). */
  holds?: Holds;
  /**
   * The process's projector (default: a new one on `kv`, writing outbox entries for the
   * forwarder's destinations and kicking it after each run).
   */
  projector?: Projector;
  /** The process's warm views (default: new ones; `null`: every delivery reads, for tests). */
  warm?: WarmViews | null;
  /**
   * When a cold first delivery decides without reading (default: new ones, with warm views only;
   * `null`: never, for tests).
   */
  presumed?: Presumptions | null;
  /**
   * The records this process made lately, for redeliveries (default: new ones, with warm views
   * only; `null`: a redelivery reads its view and its record, for tests).
   */
  recent?: RecentRecords | null;
}

/** Seconds a sender should wait after a 503. */
const RETRY_AFTER_SECONDS = "5";

/** Builds the application. */
export function createApp(deps: AppDeps): Hono {
  const log = deps.log ?? jsonLogger;
  const committer = deps.committer ??
    createCommitter(deps.kv, {
      maxPlans: deps.config.commitBatchMax,
      maxInFlight: deps.config.commitsInFlight,
    });
  const holds = deps.holds ?? createHolds(deps.kv, { mode: wakeModeOf(deps.config) });
  const lanes = createLanes();
  const warm = deps.warm === null ? undefined : deps.warm ?? createWarmViews();
  const presumed = deps.presumed === null || !warm
    ? undefined
    : deps.presumed ?? createPresumptions();
  const recent = deps.recent === null || !warm ? undefined : deps.recent ?? createRecentRecords();
  const projector = deps.projector ?? createProjector({
    kv: deps.kv,
    destinations: deps.forwarder?.destinations,
    onProjected: () => deps.forwarder?.kick(),
    log,
    now: deps.now,
  });
  const app = new Hono();

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.route(
    "/webhooks",
    webhookRoutes({
      ...deps,
      log,
      committer,
      holds,
      lanes,
      warm,
      presumed,
      recent,
      projector,
    }),
  );
  app.route("/api", apiRoutes({ ...deps, projector }));
  app.route("/", dashboardRoutes({ ...deps, projector }));

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    if (err instanceof HttpError) {
      for (const [name, value] of Object.entries(err.headers)) c.header(name, value);
      return c.json(err.body(), err.status);
    }
    // Not the client's fault: storage unavailable, contention, a bug. The sender retries.
    log({
      level: "error",
      msg: "request failed",
      path: c.req.path,
      error: err instanceof ContentionError ? err.message : String(err),
    });
    c.header("Retry-After", RETRY_AFTER_SECONDS);
    return c.json({ error: "temporarily unavailable, retry later" }, 503);
  });

  return app;
}
