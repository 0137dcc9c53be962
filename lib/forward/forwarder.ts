/**
 * Forwards every record downstream through the transactional outbox: right after the record's
 * commit (without holding the webhook's answer), again on an exponential backoff while a
 * destination fails (in a running process, first retry after 10 s), and from a `Deno.cron` sweep
 * so retries survive restarts (and work on Deno Deploy, which has no KV queues). After the last
 * attempt an entry is dead: `GET /api/outbox?status=dead` lists it, `POST /api/outbox/:id/retry`
 * sends it again.
 *
 * Delivery is at least once: a receiver deduplicates by `webhook-id`, which is the same on every
 * attempt of a record.
 *
 * @example
 * ```ts
 * const forwarder = createForwarder({
 *   kv,
 *   destinations: [handlerDestination("crm", async (record) => await crm.upsert(record))],
 * });
 * Deno.cron("forward outbox", "* * * * *", () => forwarder.sweep());
 * ```
 * @module
 */
import type { Logger } from "../log.ts";
import type { LessonProgressRecord } from "../matching/record.ts";
import type { OutboxEntry } from "../store/keys.ts";
import { type Leased, leaseDue, markDelivered, markFailed, nextDue } from "../store/outbox.ts";
import { retryWhenBusy } from "../store/retry.ts";
import { signMessage } from "./standard_webhooks.ts";

/** Your own logic for each record; throw to have it retried. */
export type RecordHandler = (record: LessonProgressRecord) => Promise<void>;

/** Somewhere records go. `deliver` throws when the attempt failed. */
export interface Destination {
  name: string;
  deliver(entry: OutboxEntry): Promise<void>;
}

/** Waits between attempts: the n-th failure waits `RETRY_DELAYS_MS[n - 1]`; after the last, dead. */
export const RETRY_DELAYS_MS = [
  10_000,
  30_000,
  120_000,
  600_000,
  1_800_000,
  3_600_000,
  10_800_000,
  21_600_000,
  43_200_000,
  86_400_000,
];

/** The Standard Webhooks message of a record. */
export function messageBody(record: LessonProgressRecord): string {
  return JSON.stringify({ type: "lesson.progress", timestamp: record.collated_at, data: record });
}

/** POSTs each record as a signed Standard Webhooks message; any non-2xx answer is a failure. */
export function webhookDestination(
  url: string,
  key: CryptoKey,
  opts: { fetch?: typeof fetch; timeoutMs?: number; now?: () => number } = {},
): Destination {
  const send = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  return {
    name: "webhook",
    async deliver(entry) {
      const body = messageBody(entry.record);
      const headers = await signMessage(key, entry.messageId, Math.floor(now() / 1000), body);
      const res = await send(url, {
        method: "POST",
        body,
        headers: { ...headers, "content-type": "application/json" },
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    },
  };
}

/** Runs a TypeScript handler for each record, with the outbox's retries. */
export function handlerDestination(name: string, handler: RecordHandler): Destination {
  if (!/^[\w-]{1,32}$/.test(name)) {
    throw new Error(`handler name "${name}": use 1-32 of [A-Za-z0-9_-]`);
  }
  return { name, deliver: (entry) => handler(entry.record) };
}

/** The running forwarder of one process. */
export interface Forwarder {
  /** Destination names: every new record gets one outbox entry for each. */
  readonly destinations: readonly string[];
  /** Starts a sweep soon, without waiting for it. */
  kick(): void;
  /** Delivers everything due now; resolves with how many attempts were made. */
  sweep(): Promise<number>;
  /** Stops timers and waits for deliveries in flight. */
  close(): Promise<void>;
}

/** What a forwarder needs. */
export interface ForwarderOptions {
  kv: Deno.Kv;
  destinations: readonly Destination[];
  log?: Logger;
  retentionDays?: number;
  retryDelaysMs?: readonly number[];
  now?: () => number;
}

const BATCH = 20;

/** Creates the forwarder of this process. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const { kv } = options;
  const log = options.log ?? (() => {});
  const now = options.now ?? Date.now;
  const delays = options.retryDelaysMs ?? RETRY_DELAYS_MS;
  const retentionMs = (options.retentionDays ?? 30) * 86_400_000;
  const byName = new Map(options.destinations.map((d) => [d.name, d]));
  if (byName.size !== options.destinations.length) throw new Error("destination names must differ");

  let running: Promise<number> | null = null;
  let again = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  async function deliverOne(leased: Leased): Promise<void> {
    const entry = leased.value;
    const started = performance.now();
    const destination = byName.get(entry.destination);
    try {
      if (!destination) throw new Error(`no destination "${entry.destination}" in this process`);
      await destination.deliver(entry);
      await retryWhenBusy(() => markDelivered(kv, leased, now(), retentionMs));
      log({
        msg: "forward",
        id: entry.id,
        outcome: "delivered",
        attempt: entry.attempts + 1,
        ms: Math.round(performance.now() - started),
      });
    } catch (err) {
      const attempt = entry.attempts + 1;
      const retryIn = attempt > delays.length ? null : delays[attempt - 1];
      const error = err instanceof Error ? err.message : String(err);
      await retryWhenBusy(() => markFailed(kv, leased, now(), error, retryIn));
      log({
        level: retryIn === null ? "error" : "warn",
        msg: "forward",
        id: entry.id,
        outcome: retryIn === null ? "dead" : "retry",
        attempt,
        error,
        retry_in_ms: retryIn,
      });
    }
  }

  async function schedule() {
    clearTimeout(timer);
    if (closed) return;
    const due = await retryWhenBusy(() => nextDue(kv));
    if (due === null) return;
    const wait = Math.min(Math.max(due - now(), 250), 60_000);
    const t = setTimeout(() => void sweep().catch(fail), wait);
    Deno.unrefTimer(t);
    timer = t;
  }

  function fail(err: unknown) {
    log({ level: "error", msg: "forward sweep failed", error: String(err) });
  }

  function sweep(): Promise<number> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let attempts = 0;
      do {
        again = false;
        const leased = await leaseDue(kv, now(), BATCH);
        await Promise.all(leased.map(deliverOne));
        attempts += leased.length;
        if (leased.length === BATCH) again = true;
      } while (again && !closed);
      await schedule();
      return attempts;
    })().finally(() => (running = null));
    return running;
  }

  return {
    destinations: options.destinations.map((d) => d.name),
    kick() {
      if (!closed) queueMicrotask(() => void sweep().catch(fail));
    },
    sweep,
    async close() {
      closed = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}
