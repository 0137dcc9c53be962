/**
 * `POST /webhooks/thinkific`: the intake. Checks run in this order, each rejection a 4xx JSON error
 * with nothing stored: size (413), signature (401), content type (415), UTF-8 and JSON (400),
 * topic header (400), for a handled topic the size it can be stored at (413), schema (422). Then
 * the collator decides, and the outcome becomes the answer.
 *
 * @example
 * ```ts
 * app.route("/webhooks", webhookRoutes(deps));
 * ```
 * @module
 */
import { Hono } from "hono";
import { collate, type Outcome } from "../collator.ts";
import { type Config, LESSON_TOPIC } from "../config.ts";
import type { Projector } from "../projector.ts";
import type { Holds } from "../hold.ts";
import type { Lanes } from "../lanes.ts";
import type { WarmViews } from "../store/warm.ts";
import type { Presumptions } from "../store/presumed.ts";
import type { RecentRecords } from "../store/recent.ts";
import type { Committer } from "../store/committer.ts";
import type { Logger } from "../log.ts";
import { MAX_STORED_BODY_BYTES } from "../store/limits.ts";
import { retryWhenBusy } from "../store/retry.ts";
import { parseWebhook } from "../thinkific/schemas.ts";
import { createVerifier } from "../thinkific/signature.ts";
import { observeOutcome, webhookTelemetry } from "../telemetry.ts"; // issue 12
import { readBody } from "./_body.ts";
import { HttpError } from "./errors.ts";

/** What the webhook routes need. */
export interface WebhookDeps {
  kv: Deno.Kv;
  config: Config;
  log: Logger;
  /** Projects new records' derived views (and so starts their forwarding). */
  projector: Projector;
  now?: () => number;
  committer: Committer;
  holds?: Holds;
  lanes?: Lanes;
  /** The process's warm views (none: every delivery reads). */
  warm?: WarmViews;
  /** When a cold first delivery decides without reading (none: it reads). */
  presumed?: Presumptions;
  /** Records this process made lately (none: a redelivery reads its view and its record). */
  recent?: RecentRecords;
}

interface LogFields {
  topic?: string;
  event_id?: string;
  outcome?: string;
}

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return true; // some senders omit it; the body is still checked as JSON
  const type = value.split(";")[0].trim().toLowerCase();
  return type === "application/json" || /^application\/[\w.+-]+\+json$/.test(type);
}

function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new HttpError(400, "body is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, "body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpError(400, "body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function statusOf(outcome: Outcome, pendingStatus: number): number {
  return outcome.status === "pending" ? pendingStatus : 200;
}

/** The webhook route group. */
export function webhookRoutes(deps: WebhookDeps): Hono<{ Variables: { log: LogFields } }> {
  const { kv, config, log, projector, committer, holds, lanes, warm, presumed, recent } = deps;
  const verify = config.webhookSecret ? createVerifier(config.webhookSecret) : null;
  const app = new Hono<{ Variables: { log: LogFields } }>();

  app.use(async (c, next) => {
    const started = performance.now();
    c.set("log", {});
    await next();
    const fields = c.get("log");
    const status = c.res.status;
    log({
      msg: "webhook",
      ...fields,
      outcome: fields.outcome ?? (status >= 500 ? "error" : "rejected"),
      status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
  });

  app.use(webhookTelemetry((c) => c.get("log"))); // issue 12: span + counter

  app.post("/thinkific", async (c) => {
    const fields = c.get("log");
    const body = await readBody(c.req.raw, config.maxBodyBytes);
    if (verify && !verify(c.req.header("x-thinkific-hmac-sha256") ?? null, body)) {
      fields.outcome = "bad_signature";
      throw new HttpError(401, "missing or invalid X-Thinkific-Hmac-Sha256 signature");
    }
    if (!isJsonContentType(c.req.header("content-type"))) {
      throw new HttpError(415, "Content-Type must be application/json");
    }
    const parsed = parseWebhook(parseJsonObject(body), c.req.header("x-thinkific-topic") ?? null);
    const handled = parsed.kind === "event"
      ? parsed.event.topic
      : parsed.kind === "invalid"
      ? parsed.topic
      : null;
    if (handled && body.byteLength > MAX_STORED_BODY_BYTES) {
      fields.topic = handled;
      throw new HttpError(
        413,
        `a ${handled} body larger than ${MAX_STORED_BODY_BYTES} bytes cannot be stored`,
      );
    }
    switch (parsed.kind) {
      case "topic_mismatch":
        throw new HttpError(
          400,
          `X-Thinkific-Topic "${parsed.headerTopic}" disagrees with the body's topic "${parsed.bodyTopic}"`,
        );
      case "invalid":
        fields.topic = parsed.topic ?? undefined;
        throw new HttpError(
          422,
          parsed.topic
            ? `body does not match the ${parsed.topic} schema`
            : "body is not a Thinkific webhook (resource and action are required)",
          { issues: parsed.issues },
        );
      case "ignored":
        Object.assign(fields, {
          topic: parsed.topic,
          event_id: parsed.eventId,
          outcome: "ignored",
        });
        return c.json({ status: "ignored", topic: parsed.topic });
    }
    const event = parsed.event;
    Object.assign(fields, { topic: event.topic, event_id: event.id });
    const outcome = await retryWhenBusy(() =>
      collate({ kv, committer, holds, lanes, warm, presumed, recent }, event, body, {
        ...config,
        now: deps.now,
      })
    );
    fields.outcome = outcome.status;
    if (outcome.status === "conflict") {
      throw new HttpError(
        422,
        `event id ${event.id} was already received as a ${outcome.topic} event: ` +
          `an id names one event`,
      );
    }
    observeOutcome(outcome);
    if (outcome.status === "erased") return c.json({ status: "erased", event_id: event.id });
    if (outcome.status === "collated" && outcome.fresh) projector.kick();
    const status = statusOf(outcome, config.pendingStatus);
    const answer = outcome.status === "collated"
      ? { status: "collated", record: outcome.record }
      : outcome.status === "stored"
      ? { status: "stored", event_id: event.id }
      : {
        status: outcome.status,
        event_id: event.id,
        attempts: outcome.attempts,
        waiting_for: event.topic === LESSON_TOPIC ? "enrollment.progress" : "lesson.completed",
      };
    return c.json(answer, status as 200);
  });

  return app;
}
