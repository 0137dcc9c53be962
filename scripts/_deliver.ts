/**
 * Shared by the scripts: posts one webhook the way Thinkific does (signed, retried on a growing
 * backoff), and describes records in plain words with masked emails.
 *
 * @example
 * ```ts
 * const result = await deliver("http://localhost:8000/webhooks/thinkific", body, { secret });
 * console.log(result.status, result.attempts, result.body);
 * ```
 * @module
 */
import { z } from "zod";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import { importSigningKey, signBody } from "../lib/thinkific/signature.ts";

/** The path the service receives webhooks on. */
export const WEBHOOK_PATH = "/webhooks/thinkific";

/** One attempt of a delivery, as reported to `onAttempt`. */
export interface AttemptReport {
  attempt: number;
  /** HTTP status, or 0 when no answer came (network error, timeout). */
  status: number;
  body: unknown;
  error?: string;
}

/** How to deliver. */
export interface DeliverOptions {
  /** Signs the body (`X-Thinkific-Hmac-Sha256`) when set. */
  secret?: string;
  /** Deliveries in all, the first included (default 15: Thinkific's first try and 14 retries). */
  maxAttempts?: number;
  /** Wait after failed attempt `attempt` (1-based); default {@linkcode defaultRetryDelayMs}. */
  retryDelayMs?: (attempt: number) => number;
  fetch?: typeof fetch;
  /** Per-attempt timeout (default 30 s). */
  timeoutMs?: number;
  /**
   * Retry every non-2xx answer, as Thinkific does. By default a 4xx rejection that a retry cannot
   * change (400, 401, 404, 413, 415, 422, …) ends the delivery at once; pending answers, 408, 409,
   * 425, 429, 5xx and network errors are retried.
   */
  retryAll?: boolean;
  /** Called after every attempt. */
  onAttempt?: (report: AttemptReport) => void;
  /** Stops retrying (and the attempt in flight) when aborted. */
  signal?: AbortSignal;
}

/** The end of a delivery. */
export interface DeliveryResult {
  /** The last HTTP status; 0 when the last attempt got no answer. */
  status: number;
  attempts: number;
  /** The last answer's JSON (its text when it was not JSON; null without an answer). */
  body: unknown;
  /** Why the last attempt got no answer, in one line. */
  error?: string;
  /** The status of every attempt, in order (0 for no answer). */
  statuses: number[];
}

/** Thinkific-like growing backoff, scaled down for local use: 200 ms, 400 ms, … capped at 2 s. */
export function defaultRetryDelayMs(attempt: number): number {
  return Math.min(200 * 2 ** Math.max(0, attempt - 1), 2000);
}

const topicOf = z.looseObject({ resource: z.string().min(1), action: z.string().min(1) });

/** The topic of a webhook body (`resource.action`), or null when the body has none. */
export function topicOfBody(body: string): string | null {
  try {
    const parsed = topicOf.safeParse(JSON.parse(body));
    return parsed.success ? `${parsed.data.resource}.${parsed.data.action}` : null;
  } catch {
    return null;
  }
}

const answerStatus = z.looseObject({ status: z.string() });

/** The `status` field of a JSON answer (`collated`, `pending`, …), or null. */
export function answerStatusOf(body: unknown): string | null {
  const parsed = answerStatus.safeParse(body);
  return parsed.success ? parsed.data.status : null;
}

/** Whether an answer is worth another delivery. */
export function isRetryable(status: number, body: unknown, retryAll = false): boolean {
  if (status >= 200 && status < 300) return false;
  if (retryAll || status === 0 || answerStatusOf(body) === "pending") return true;
  return status === 408 || status === 409 || status === 425 || status === 429 || status >= 500;
}

/**
 * Appends {@linkcode WEBHOOK_PATH} to a URL that has no path (`https://host` or `https://host/`).
 */
export function webhookUrl(raw: string): string {
  const url = new URL(raw);
  if (url.pathname === "/" && url.search === "") url.pathname = WEBHOOK_PATH;
  return url.href;
}

const keys = new Map<string, Promise<CryptoKey>>();
function signingKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) keys.set(secret, key = importSigningKey(secret));
  return key;
}

/** One line for a network error (Deno's messages nest the cause in the text). */
export function networkErrorMessage(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return (err.message + cause).replace(/\s+/g, " ").trim();
  }
  return String(err);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

async function attemptOnce(
  url: string,
  init: RequestInit,
  fetchFn: typeof fetch,
  timeoutMs: number,
  outer?: AbortSignal,
): Promise<{ status: number; body: unknown; error?: string }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("timeout")), timeoutMs);
  const onAbort = () => controller.abort(new Error("aborted"));
  outer?.addEventListener("abort", onAbort, { once: true });
  try {
    const res = await fetchFn(url, { ...init, signal: controller.signal });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: res.status, body };
  } catch (err) {
    const reason = controller.signal.aborted
      ? (outer?.aborted ? "aborted" : `no answer within ${timeoutMs / 1000} s`)
      : networkErrorMessage(err);
    return { status: 0, body: null, error: reason };
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
  }
}

/**
 * Posts `body` to `url` as Thinkific would, retrying until a final answer or `maxAttempts`.
 * Never throws for HTTP or network trouble: the result says what happened.
 */
export async function deliver(
  url: string,
  body: string,
  opts: DeliverOptions = {},
): Promise<DeliveryResult> {
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 15);
  const delay = opts.retryDelayMs ?? defaultRetryDelayMs;
  const fetchFn = opts.fetch ?? fetch;
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  const topic = topicOfBody(body);
  if (topic) headers["X-Thinkific-Topic"] = topic;
  if (opts.secret) {
    headers["X-Thinkific-Hmac-Sha256"] = await signBody(await signingKey(opts.secret), body);
  }
  const statuses: number[] = [];
  let last: { status: number; body: unknown; error?: string } = { status: 0, body: null };
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) await sleep(delay(attempt - 1), opts.signal);
    if (opts.signal?.aborted) break;
    last = await attemptOnce(
      url,
      { method: "POST", headers, body },
      fetchFn,
      opts.timeoutMs ?? 30_000,
      opts.signal,
    );
    statuses.push(last.status);
    opts.onAttempt?.({ attempt, ...last });
    if (!isRetryable(last.status, last.body, opts.retryAll)) break;
  }
  const result: DeliveryResult = {
    status: last.status,
    attempts: statuses.length,
    body: last.body,
    statuses,
  };
  if (last.status === 0) {
    result.error = `no answer after ${statuses.length} attempt${
      statuses.length === 1 ? "" : "s"
    }: ${last.error ?? "aborted"}`;
  }
  return result;
}

/** `ada@example.com` → `a***@example.com` (never print a full address). */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf("@");
  if (at <= 0) return "***";
  return `${email[0]}***${email.slice(at)}`;
}

/** `2026-11-02T14:15:12.334Z` → `2026-11-02 14:15:12Z`. */
export function shortTime(iso: string): string {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return iso;
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** One record in plain words, the email masked. */
export function describeRecord(r: LessonProgressRecord): string {
  const from = r.previous_percentage_completed === null
    ? "no earlier progress"
    : `from ${r.previous_percentage_completed}%`;
  const repeat = r.first_completion ? "" : ", a repeat";
  const skew = r.skew_ms === 0 ? "" : ` [halves ${Math.abs(r.skew_ms)} ms apart]`;
  return `user ${r.user_id} <${maskEmail(r.user_email)}> completed “${r.lesson_name}” ` +
    `(${r.chapter_name}) of ${r.course_name} at ${shortTime(r.completed_at)}, ` +
    `reaching ${r.percentage_completed}% (${from}${repeat})${skew}`;
}

/** The fields of an unmatched entry the description uses. */
export interface UnmatchedLike {
  event_id: string;
  topic: string;
  user_id: number;
  course_id: number;
  created_at: string;
  attempts: number;
}

/** One unmatched event in plain words. */
export function describeUnmatched(e: UnmatchedLike): string {
  return `${e.topic} ${e.event_id} of user ${e.user_id}, course ${e.course_id}, at ` +
    `${shortTime(e.created_at)}: no counterpart after ${e.attempts} deliveries`;
}
