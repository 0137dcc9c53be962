/**
 * The service: configuration from the environment, the KV database, forwarding, and the
 * application.
 *
 * `deno serve main.ts` serves it as it is (`export default { fetch }`); `deno task start` runs
 * `start.ts`, which serves it on `PORT`. A configuration that cannot work (a bad variable, a
 * database that cannot be opened) stops it with one line on stderr naming the variable, exit 1.
 *
 * @module
 */
import { ConfigError, parseConfig } from "./lib/config.ts";
import {
  createForwarder,
  type Destination,
  type Forwarder,
  handlerDestination,
  type RecordHandler,
  sweepEveryMinute,
  webhookDestination,
} from "./lib/forward/forwarder.ts";
import { createSigner } from "./lib/forward/standard_webhooks.ts";
import { createHolds } from "./lib/hold.ts";
import { createApp } from "./lib/http/app.ts";
import { describeKv, openKv, wakeModeOf } from "./lib/kv.ts";
import { jsonLogger } from "./lib/log.ts";
import { observeBacklog, telemetryReady } from "./lib/telemetry.ts";

/**
 * Your own logic for each new record, run through the same outbox as `FORWARD_URL`: retried with
 * backoff when it throws, listed at `/api/outbox?status=dead` after the last attempt. The name is
 * part of the outbox id, so keep it stable. An attempt has 30 s: then `signal` aborts and the
 * attempt counts as failed, so pass `signal` on to what may hang. For example:
 *
 * ```ts
 * const handlers: Record<string, RecordHandler> = {
 *   "crm": async (record, signal) => {
 *     const res = await fetch("https://crm.example.com/progress", {
 *       method: "POST",
 *       body: JSON.stringify({ email: record.user_email, lesson: record.lesson_name }),
 *       signal,
 *     });
 *     if (!res.ok) throw new Error(`CRM answered ${res.status}`);
 *   },
 * };
 * ```
 */
const handlers: Record<string, RecordHandler> = {};

/** Runs a start-up step; a {@linkcode ConfigError} ends the process with its one line. */
async function orExit<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      Deno.exit(1);
    }
    throw err;
  }
}

/** This process's forwarder, once the configuration names a destination (below). */
let forwarder: Forwarder | undefined;
/** Stops the crons on shutdown: a registered cron keeps the process alive. */
const crons = new AbortController();
// Retries survive restarts: every minute, any process delivers what is due. Deno Deploy finds
// crons by evaluating the module's top level, so the cron is registered here, unconditionally
// and before the first `await`; with no destination configured, its tick does nothing.
sweepEveryMinute(
  () => forwarder,
  (name, schedule, handler) => Deno.cron(name, schedule, { signal: crons.signal }, handler),
);

export const config = await orExit(() => parseConfig(Deno.env.toObject()));
const kv = await orExit(() => openKv(config));

const destinations: Destination[] = Object.entries(handlers).map(([name, handler]) =>
  handlerDestination(name, handler)
);
if (config.forwardUrl && config.forwardSecret) {
  destinations.push(
    webhookDestination(config.forwardUrl, createSigner(config.forwardSecret), {
      direct: config.forwardDirect,
    }),
  );
}
if (destinations.length > 0) {
  forwarder = createForwarder({
    kv,
    destinations,
    log: jsonLogger,
    retentionDays: config.retentionDays,
  });
  forwarder.kick();
}

/** Held deliveries of this process: closed on shutdown, so they answer the pending status at once. */
export const holds = createHolds(kv, { mode: wakeModeOf(config) });
// The app makes the projector: it writes the forwarder's outbox entries and kicks it after each run.
export const app = createApp({ kv, config, log: jsonLogger, forwarder, holds });

/** Shutdown: held deliveries answer the pending status at once, and the crons stop. */
export function stopBackground() {
  holds.close();
  crons.abort();
}
// Deno Deploy stops an isolate with "beforeunload"; `start.ts` listens for SIGTERM and SIGINT.
globalThis.addEventListener("beforeunload", () => holds.close());
if (import.meta.main) {
  // `deno serve main.ts`: Deno 2.9 closes the server on SIGTERM and SIGINT, then the process ends
  // once nothing is left running, the crons included; Deno 2.5 has no listener of its own, and
  // this one replaces its default (to end at once), so it ends the process itself, a moment after
  // the held deliveries have answered.
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => {
      stopBackground();
      Deno.unrefTimer(setTimeout(() => Deno.exit(0), 100));
    });
  }
}
// OpenTelemetry (only under OTEL_DENO=true): its API loaded before the first request, then the
// gauges of unmatched events and pending outbox entries.
await telemetryReady();
observeBacklog(kv);

/** Logs the start-up facts: by `start.ts` once listening, by `deno serve` at once. */
export function logReady() {
  jsonLogger({
    msg: "ready",
    kv: describeKv(config),
    logic_topic: config.logicTopic,
    match_window_ms: config.matchWindowMs,
    signed_webhooks: Boolean(config.webhookSecret),
    api_token: Boolean(config.apiToken),
    forwarding: forwarder?.destinations ?? [],
  });
  if (!config.webhookSecret) {
    jsonLogger({
      level: "warn",
      msg: "THINKIFIC_WEBHOOK_SECRET is not set: unsigned webhooks are accepted (local use only)",
    });
  }
  if (!config.apiToken) {
    jsonLogger({
      level: "warn",
      msg: "API_TOKEN is not set: /api and the dashboard are open to anyone (local use only)",
    });
  }
}
if (import.meta.main) logReady();

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
