/**
 * The process's projector: runs projection batches (`lib/store/projections.ts`) off the request
 * path, one run at a time.
 *
 * - {@linkcode Projector.drain} projects everything pending now; readers of a derived view (the
 *   API, the dashboard, an erasure, a forwarding sweep) await it first. Calls that come while a run
 *   is under way share the next run, so a burst of readers costs one more run, not one each.
 * - {@linkcode Projector.kick} is called after each new record. With forwarding on, it kicks the
 *   forwarder, whose sweep projects what is pending before it looks for due entries, so a record
 *   is forwarded as soon as before. Otherwise it drains every {@linkcode KICK_EVERY} records, which
 *   bounds what a reader may find waiting.
 * - Entries left by a process that stopped are projected by any process's next run, or by the
 *   minute's cron (see `main.ts`).
 *
 * @example
 * ```ts
 * const projector = createProjector({ kv, destinations: ["webhook"], onProjected: () => forwarder.kick() });
 * projector.kick(); // after a new record
 * await projector.drain(); // before reading learners
 * ```
 * @module
 */
import type { Logger } from "./log.ts";
import { projectPending } from "./store/projections.ts";
import { retryWhenBusy } from "./store/retry.ts";

/** Without forwarding, a run starts after this many new records of this process. */
export const KICK_EVERY = 64;

/** The projector of one process. */
export interface Projector {
  /**
   * Forwarding destination names: a record this projector projects gets an outbox entry for each
   * (the forwarder's own sweep projects into flights instead, see `lib/store/flights.ts`).
   */
  readonly destinations: readonly string[];
  /** Projects everything pending when called. Rejects when the database fails. */
  drain(): Promise<void>;
  /** Notes a new record (see the module doc); never rejects, a failed run is logged. */
  kick(): void;
}

/** What a projector needs. */
export interface ProjectorOptions {
  kv: Deno.Kv;
  destinations?: readonly string[];
  /**
   * The forwarder's kick: called after a run that projected records, and by {@linkcode
   * Projector.kick} when there are destinations.
   */
  onProjected?: () => void;
  log?: Logger;
  now?: () => number;
}

/** Creates the projector of this process. */
export function createProjector(options: ProjectorOptions): Projector {
  const { kv } = options;
  const destinations = options.destinations ?? [];
  const now = options.now ?? Date.now;
  const log = options.log ?? (() => {});
  let running: Promise<void> | null = null;
  let next: Promise<void> | null = null;
  let kicks = 0;

  async function run() {
    const projected = await retryWhenBusy(() => projectPending(kv, { destinations, now }));
    if (projected > 0) options.onProjected?.();
  }

  function drain(): Promise<void> {
    if (!running) {
      running = run().finally(() => (running = null));
      return running;
    }
    // A run is under way: it may have listed before the caller's records were committed.
    next ??= running.catch(() => {}).then(() => {
      next = null;
      return drain();
    });
    return next;
  }

  return {
    destinations,
    drain,
    kick() {
      if (destinations.length > 0) return options.onProjected?.();
      if (++kicks < KICK_EVERY) return;
      kicks = 0;
      drain().catch((err) => log({ level: "error", msg: "projection failed", error: String(err) }));
    },
  };
}
