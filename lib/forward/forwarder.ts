/**
 * Forwards every record downstream: right after the record's commit (without holding the webhook's
 * answer), from the flight its projection by this process's sweep wrote (`lib/store/flights.ts`; a
 * failed attempt becomes an outbox entry; records projected elsewhere, by a reader or the cron, get
 * their outbox entries at once), then through the transactional outbox on an exponential backoff
 * while a destination fails (in a running process, first retry after 10 s), and from a `Deno.cron`
 * sweep so retries survive restarts (and work on Deno Deploy, which has no KV queues). After the last
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
 *   destinations: [handlerDestination("crm", (record, signal) => crm.upsert(record, { signal }))],
 * });
 * sweepEveryMinute(forwarder); // Deno.cron; a failed sweep is logged, tried again next minute
 * ```
 * @module
 */
import type { Logger } from "../log.ts";
import { type Connect, createHttp1Client } from "./_http1.ts";
import type { LessonProgressRecord } from "../matching/record.ts";
import { type OutboxEntry, outboxIdParts } from "../store/keys.ts";
import {
  expandFlights,
  firstFlightEnd,
  type FlightFailure,
  type HeldFlight,
  landFlight,
} from "../store/flights.ts";
import {
  LEASE_MS,
  type Leased,
  leaseDue,
  nextDue,
  pendingEntry,
  settle,
  type Settlement,
} from "../store/outbox.ts";
import { projectPending } from "../store/projections.ts";
import { retryWhenBusy } from "../store/retry.ts";
import type { MessageSigner } from "./standard_webhooks.ts";

/**
 * Your own logic for each record; throw to have it retried. `signal` aborts when the attempt's
 * deadline ({@linkcode ATTEMPT_TIMEOUT_MS}) passes: pass it to `fetch` and the like. An attempt
 * still running then counts as failed, and is retried later.
 */
export type RecordHandler = (record: LessonProgressRecord, signal: AbortSignal) => Promise<void>;

/** Somewhere records go. `deliver` throws when the attempt failed, and stops when `signal` aborts. */
export interface Destination {
  name: string;
  deliver(entry: OutboxEntry, signal: AbortSignal): Promise<void>;
  /** Lets go of what it holds open (the forwarder's `close` calls it). */
  close?(): void;
}

/**
 * How long one attempt may take: then its `signal` aborts and it counts as failed. Shorter than
 * the lease ({@linkcode LEASE_MS}), so no other process starts the same entry while it runs.
 */
export const ATTEMPT_TIMEOUT_MS = 30_000;

/** Attempts running at once for one destination, in one process. */
export const MAX_IN_FLIGHT = 64;

/** Entries leased in one pass (one atomic commit: Deno KV checks at most 100 keys in one). */
const LEASE_BATCH = 100;

/** While attempts run, a sweep leases again once this many have ended (or when kicked). */
const LEASE_AGAIN_AFTER = 16;

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

const encoder = new TextEncoder();

/** The Standard Webhooks message of a record. */
export function messageBody(record: LessonProgressRecord): string {
  return JSON.stringify({ type: "lesson.progress", timestamp: record.collated_at, data: record });
}

/**
 * POSTs each record as a signed Standard Webhooks message; any non-2xx answer is a failure. A
 * request is abandoned when the attempt's signal aborts or after `timeoutMs` (10 s).
 *
 * It POSTs over its own kept-alive connections (`./_http1.ts`, a fifth of `fetch`'s CPU per POST),
 * and through `fetch` when `opts.fetch` is given, when `opts.direct` is false (`main.ts`: a proxy
 * is set, whose variables `fetch` follows, or OpenTelemetry is on, whose spans cover `fetch`), and
 * for an answer that redirects (`fetch` follows it).
 *
 * The deadline is one timer, cleared when the answer is in: `AbortSignal.timeout` would keep its
 * timer and signal alive for the whole 10 s after every delivery (thousands at a time under load,
 * each promoted to the old generation before it can be collected).
 */
export function webhookDestination(
  url: string,
  sign: MessageSigner,
  opts: {
    fetch?: typeof fetch;
    direct?: boolean;
    connect?: Connect;
    timeoutMs?: number;
    now?: () => number;
  } = {},
): Destination {
  const send = opts.fetch ?? fetch;
  const client = opts.fetch || opts.direct === false ? null : createHttp1Client(opts.connect);
  const target = new URL(url);
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return {
    name: "webhook",
    async deliver(entry, signal) {
      signal.throwIfAborted();
      const body = messageBody(entry.record);
      const headers = sign(entry.messageId, Math.floor(now() / 1000), body);
      const request = new AbortController();
      const stop = () => request.abort(signal.reason);
      signal.addEventListener("abort", stop, { once: true });
      const timer = setTimeout(
        () => request.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")),
        timeoutMs,
      );
      try {
        const all = { ...headers, "content-type": "application/json" };
        if (client) {
          const bytes = encoder.encode(body);
          const status = await client.post(target, all, bytes, request.signal);
          if (status >= 200 && status < 300) return;
          if (status < 300 || status >= 400) throw new Error(`HTTP ${status}`);
          // A redirect: sent again through fetch, which follows it.
        }
        const res = await send(url, { method: "POST", body, headers: all, signal: request.signal });
        await res.body?.cancel();
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", stop);
      }
    },
    close: () => client?.close(),
  };
}

/** Runs a TypeScript handler for each record, with the outbox's retries. */
export function handlerDestination(name: string, handler: RecordHandler): Destination {
  if (!/^[\w-]{1,32}$/.test(name)) {
    throw new Error(`handler name "${name}": use 1-32 of [A-Za-z0-9_-]`);
  }
  return { name, deliver: (entry, signal) => handler(entry.record, signal) };
}

/** The running forwarder of one process. */
export interface Forwarder {
  /** Destination names: every new record is forwarded to each. */
  readonly destinations: readonly string[];
  /** Starts a sweep soon (for new records: it does not look for expired flights), without waiting. */
  kick(): void;
  /**
   * Delivers everything due now (flights whose lease ended expanded first); resolves with how many
   * attempts were made. Rejects when the database fails (the next sweep tries again).
   */
  sweep(): Promise<number>;
  /** A sweep for timers and `Deno.cron`: never rejects; a failure is logged. */
  tick(): Promise<void>;
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
  /** Deadline of one attempt (default {@linkcode ATTEMPT_TIMEOUT_MS}); less than the lease. */
  attemptTimeoutMs?: number;
  /** Attempts running at once per destination (default {@linkcode MAX_IN_FLIGHT}). */
  maxInFlight?: number;
  now?: () => number;
}

/** A flight being delivered by this process: how many attempts are still running, what failed. */
interface Landing {
  flight: HeldFlight;
  left: number;
  failures: FlightFailure[];
}

/** One record of a held flight, with the entry an outbox attempt would have had. */
interface InFlight {
  landing: Landing;
  entry: OutboxEntry;
}

/** The error of an attempt that passed its deadline. */
class DeadlineError extends Error {
  override name = "DeadlineError";
}

/** The part of `Deno.cron` {@linkcode sweepEveryMinute} uses. */
export type Cron = (name: string, schedule: string, handler: () => Promise<void>) => unknown;

/**
 * Sweeps every minute from `Deno.cron`, so retries survive restarts (any process delivers what
 * is due). A failed sweep is logged and tried again at the next tick: it never ends the process.
 * `forwarder` may be a function that gives the forwarder once it exists: the cron can then be
 * registered before it is created (Deno Deploy only finds crons registered at a module's top
 * level, before any `await`), and a tick with no forwarder does nothing.
 */
export function sweepEveryMinute(
  forwarder: Forwarder | (() => Forwarder | undefined),
  cron: Cron = Deno.cron,
): void {
  const current = typeof forwarder === "function" ? forwarder : () => forwarder;
  cron("forward due outbox entries", "* * * * *", async () => await current()?.tick());
}

/**
 * Creates the forwarder of this process. A sweep projects new records into flights and starts
 * their attempts at once, leases due entries in batches, and keeps up to `maxInFlight` attempts
 * running per destination, leasing more as attempts end, so a slow or hung destination holds only
 * its own slots. Every attempt has a deadline shorter than the lease; a flight is landed in one
 * commit once its attempts have ended, and the ends of leased entries' attempts are recorded in
 * batched commits.
 */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const { kv } = options;
  const log = options.log ?? (() => {});
  const now = options.now ?? Date.now;
  const delays = options.retryDelaysMs ?? RETRY_DELAYS_MS;
  const retentionMs = (options.retentionDays ?? 30) * 86_400_000;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? ATTEMPT_TIMEOUT_MS;
  const maxInFlight = options.maxInFlight ?? MAX_IN_FLIGHT;
  if (!(attemptTimeoutMs > 0 && attemptTimeoutMs < LEASE_MS)) {
    throw new Error(`attemptTimeoutMs must be between 0 and the lease (${LEASE_MS} ms)`);
  }
  const byName = new Map(options.destinations.map((d) => [d.name, d]));
  if (byName.size !== options.destinations.length) throw new Error("destination names must differ");
  const names = [...byName.keys()];

  let running: Promise<number> | null = null;
  let again = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  /** Attempts running per destination, counting those past their deadline still running. */
  const busy = new Map<string, number>();
  /** Entries with an attempt running in this process: not started again until it ends. */
  const attempting = new Set<string>();

  /** Runs one attempt with its deadline; an attempt that ignores its signal is left behind. */
  async function attempt(destination: Destination, entry: OutboxEntry): Promise<void> {
    const controller = new AbortController();
    busy.set(destination.name, (busy.get(destination.name) ?? 0) + 1);
    attempting.add(entry.id);
    const work = (async () => await destination.deliver(entry, controller.signal))()
      .finally(() => {
        busy.set(destination.name, busy.get(destination.name)! - 1);
        attempting.delete(entry.id);
      });
    work.catch(() => {}); // past its deadline nobody waits for it: a late failure is not unhandled
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      deadline = setTimeout(() => {
        const err = new DeadlineError(`no answer within ${attemptTimeoutMs} ms`);
        controller.abort(err);
        reject(err);
      }, attemptTimeoutMs);
    });
    try {
      await Promise.race([work, expired]);
    } finally {
      clearTimeout(deadline);
    }
  }

  /** Ends of attempts waiting to be recorded, and the batch being committed. */
  let unsettled: { settlement: Settlement; done: () => void }[] = [];
  let settling: Promise<void> | null = null;

  async function settleAll(): Promise<void> {
    while (unsettled.length > 0) {
      const batch = unsettled;
      unsettled = [];
      try {
        await settle(kv, batch.map((b) => b.settlement), now(), retentionMs);
      } catch (err) {
        // The entries stay leased: due again when the lease ends, then attempted again.
        log({
          level: "error",
          msg: "forward settle failed",
          entries: batch.length,
          error: String(err),
        });
      }
      for (const b of batch) b.done();
    }
    settling = null;
  }

  /** Records how an attempt ended, batched with the others ending meanwhile. */
  function record(settlement: Settlement): Promise<void> {
    return new Promise((done) => {
      unsettled.push({ settlement, done });
      settling ??= settleAll();
    });
  }

  async function deliverOne(item: Leased | InFlight): Promise<void> {
    const flown = "landing" in item ? item : null;
    const leased = flown ? null : item as Leased;
    const entry = flown ? flown.entry : leased!.value;
    const started = performance.now();
    const destination = byName.get(entry.destination);
    const n = entry.attempts + 1;
    try {
      if (!destination) throw new Error(`no destination "${entry.destination}" in this process`);
      await attempt(destination, entry);
    } catch (err) {
      const retryIn = n > delays.length ? null : delays[n - 1];
      const error = err instanceof Error ? err.message : String(err);
      if (flown) await flightEnded(flown, { record: entry.record, error, retryInMs: retryIn });
      else await record({ leased: leased!, outcome: "failed", error, retryInMs: retryIn });
      log({
        level: retryIn === null ? "error" : "warn",
        msg: "forward",
        id: entry.id,
        outcome: retryIn === null ? "dead" : "retry",
        attempt: n,
        error,
        retry_in_ms: retryIn,
      });
      return;
    }
    if (flown) await flightEnded(flown, null);
    else await record({ leased: leased!, outcome: "delivered" });
    log({
      msg: "forward",
      id: entry.id,
      outcome: "delivered",
      attempt: n,
      ms: Math.round(performance.now() - started),
    });
  }

  /** Whether a lease pass may take the entry `id`; counts what it takes per destination. */
  function taker(): (id: string) => boolean {
    const free = new Map(
      names.map((name) => [name, maxInFlight - (busy.get(name) ?? 0)]),
    );
    return (id) => {
      if (attempting.has(id)) return false;
      const name = outboxIdParts(id).destination;
      const left = free.get(name);
      if (left === undefined) return true; // unknown here: leased, and failed at once
      if (left <= 0) return false;
      free.set(name, left - 1);
      return true;
    };
  }

  async function schedule() {
    clearTimeout(timer);
    if (closed) return;
    const [entry, flight] = await Promise.all([
      retryWhenBusy(() => nextDue(kv)),
      retryWhenBusy(() => firstFlightEnd(kv)),
    ]);
    if (entry === null && flight === null) return;
    const due = Math.min(entry ?? Infinity, flight ?? Infinity);
    const wait = Math.min(Math.max(due - now(), 250), 60_000);
    const t = setTimeout(tick, wait);
    Deno.unrefTimer(t);
    timer = t;
  }

  function tick(expanding = true): Promise<void> {
    return sweep(expanding).then(() => {}, (err) => {
      log({ level: "error", msg: "forward sweep failed", error: String(err) });
    });
  }

  /** Wakes a sweep waiting for attempts to end (an attempt ended, or new work was kicked). */
  let wakeUp = () => {};
  const hasFreeSlot = () => names.some((name) => (busy.get(name) ?? 0) < maxInFlight);

  /**
   * Records this process's sweep projected, held in flights (`lib/store/flights.ts`): each starts
   * as soon as its destination has a free slot, without an outbox entry or a lease commit.
   */
  let ready: InFlight[] = [];
  const onFlights = (flights: HeldFlight[]) => {
    for (const flight of flights) {
      const landing: Landing = {
        flight,
        left: flight.records.length,
        failures: [],
      };
      const { destination, createdAt } = flight.entry.value;
      for (const record of flight.records) {
        // The entry its first attempt would have in the outbox (not stored).
        ready.push({ landing, entry: pendingEntry(record, destination, flight.until, createdAt) });
      }
    }
  };

  /** Starts the ready records that have a free slot, and time left in their flight's lease. */
  function startReady(start: (item: InFlight) => void) {
    const waiting: InFlight[] = [];
    for (const item of ready) {
      // One that could outlive the lease is not started: its flight, never landed, expands when
      // the lease ends.
      if (item.landing.flight.until - now() <= attemptTimeoutMs) continue;
      if ((busy.get(item.entry.destination) ?? 0) < maxInFlight) start(item);
      else waiting.push(item);
    }
    ready = waiting;
  }

  /** Notes how one record of a flight ended; the last lands the flight. */
  async function flightEnded(item: InFlight, failure: FlightFailure | null): Promise<void> {
    const { landing } = item;
    if (failure) landing.failures.push(failure);
    if (--landing.left > 0) return; // a record not started keeps it above 0: never landed
    try {
      await landFlight(kv, landing.flight, landing.failures, now());
    } catch (err) {
      // The flight stays: expanded into outbox entries when its lease ends, delivered again.
      log({
        level: "error",
        msg: "forward settle failed",
        entries: landing.flight.records.length,
        error: String(err),
      });
    }
  }

  async function run(): Promise<number> {
    let attempts = 0;
    let ended = 0;
    const inFlight = new Set<Promise<void>>();
    const enough = Math.min(LEASE_AGAIN_AFTER, maxInFlight);
    const start = (l: Leased | InFlight) => {
      const p: Promise<void> = deliverOne(l).finally(() => {
        inFlight.delete(p);
        ended++;
        wakeUp();
      });
      inFlight.add(p);
      attempts++;
    };
    try {
      while (!closed) {
        again = false;
        ended = 0;
        // Records made meanwhile are projected into flights, forwarded from here.
        await retryWhenBusy(() =>
          projectPending(kv, { destinations: names, now, flights: { ms: LEASE_MS, to: onFlights } })
        );
        startReady(start);
        const { leased, contended } = await leaseDue(kv, now(), {
          limit: LEASE_BATCH,
          take: taker(),
        });
        for (const l of leased) start(l);
        if (leased.length === LEASE_BATCH || contended) continue;
        // An attempt that ended during this pass freed its slot after `take` counted the free
        // ones: its destination's next entry may be due, so pass again.
        if (leased.length === 0 && inFlight.size === 0 && ended === 0 && !again) break;
        // Lease again once enough slots are free, all attempts ended, or new work came in.
        while (!closed && inFlight.size > 0 && ended < enough && !(again && hasFreeSlot())) {
          await new Promise<void>((resolve) => (wakeUp = resolve));
        }
      }
    } finally {
      await Promise.all(inFlight);
      // Records still waiting for a slot (every slot held by attempts past their deadline) leave
      // their flights held, never landed: expanded into outbox entries when the lease ends.
      ready = [];
    }
    await schedule();
    return attempts;
  }

  /** A sweep from a timer, the cron or a caller: expands expired flights first (not a kick's). */
  let expand = false;

  function sweep(expanding = true): Promise<number> {
    if (expanding) expand = true;
    if (running) {
      again = true;
      wakeUp();
      return running;
    }
    running = (async () => {
      let attempts = 0;
      // A kick that comes while a pass is ending (waiting for its last attempts, reading the
      // next due time) sets `again` after the pass last looked at it: pass again, or its entry
      // waits for the next cron tick when that read came before the entry's commit.
      do {
        if (expand) {
          expand = false;
          // A failed expansion is logged and left to the next sweep: it holds up no retry.
          await expandFlights(kv, now()).catch((err) =>
            log({ level: "error", msg: "forward expansion failed", error: String(err) })
          );
        }
        attempts += await run();
      } while ((again || expand) && !closed);
      return attempts;
    })().finally(() => (running = null));
    return running;
  }

  return {
    destinations: options.destinations.map((d) => d.name),
    kick() {
      if (!closed) queueMicrotask(() => void tick(false));
    },
    sweep: () => sweep(),
    tick: () => tick(),
    async close() {
      closed = true;
      clearTimeout(timer);
      await running?.catch(() => {});
      for (const d of options.destinations) d.close?.();
    },
  };
}
