/**
 * Lanes: work for one key runs one at a time in this process, in arrival order; work for other
 * keys runs alongside. The collator runs each delivery's read-decide-commit in its enrollment's
 * lane, so two deliveries of one learner in one course never decide from the same stale view here
 * (across processes the enrollment's versionstamp check does the same, at the price of a re-read).
 *
 * The work running may take over the work waiting behind it ({@linkcode Lanes.take}): the
 * collator decides a delivery that arrived while the one before it was reading into that one's
 * commit. A work taken over answers, in its turn, what the taker hands it, or runs after all when
 * handed `null`.
 *
 * @example
 * ```ts
 * const lanes = createLanes();
 * await lanes.run("t/u/c", async () => await collateOnce(), delivery);
 * // in the work running for "t/u/c":
 * for (const t of lanes.take("t/u/c", (d) => canJoin(d))) t.done(resultFor(t.what));
 * ```
 * @module
 */

/** A work waiting its turn, taken over by the work running (see {@linkcode Lanes.take}). */
export interface Taken {
  /** What it was offered as (`run`'s `what`). */
  what: unknown;
  /** Hands it its result (it answers that in its turn), or `null`: it runs after all. */
  done(result: unknown): void;
}

/** Serializes work per key. */
export interface Lanes {
  /** Runs `work` once the works before it for `key` have ended; `what` describes it to takers. */
  run<T>(key: string, work: () => Promise<T>, what?: unknown): Promise<T>;
  /**
   * Takes over the works waiting for `key`, oldest first, while `accept` accepts what they are
   * (the first refused stops it, so the works taken are the next ones in arrival order). A work run
   * without a `what` is never taken, and stops it too. Each taken work must be handed its result
   * with `done`. When `accept` throws, the works taken so far run after all, and `take` throws.
   */
  take(key: string, accept: (what: unknown) => boolean): Taken[];
  /**
   * Resolves once a work waits for `key` (at once if one does), or after `ms`: the work running
   * waits so for one to take over. One wait per key at a time (a second ends the first).
   */
  arrival(key: string, ms: number): Promise<void>;
  /**
   * What the lanes keep: one entry per key with work running, one per key with work waiting, one
   * per key waited on by {@linkcode Lanes.arrival}.
   */
  readonly size: number;
}

interface Entry {
  what: unknown;
  /** Set when taken over: what it answers in its turn (`null`: run after all). */
  handed: Promise<unknown> | null;
}

/** Creates the lanes of one process. */
export function createLanes(): Lanes {
  const tails = new Map<string, Promise<unknown>>();
  /** Per key, the works waiting their turn, in arrival order. */
  const waiting = new Map<string, Entry[]>();
  /** Per key, the end of the wait for a work to arrive (see `arrival`). */
  const arrivals = new Map<string, () => void>();

  function leave(key: string, entry: Entry) {
    const queue = waiting.get(key);
    const at = queue?.indexOf(entry) ?? -1;
    if (at < 0) return;
    queue!.splice(at, 1);
    if (queue!.length === 0) waiting.delete(key);
  }

  return {
    get size() {
      return tails.size + waiting.size + arrivals.size;
    },
    run<T>(key: string, work: () => Promise<T>, what?: unknown): Promise<T> {
      const before = tails.get(key) ?? Promise.resolve();
      const entry: Entry = { what, handed: null };
      const queue = waiting.get(key);
      if (queue) queue.push(entry);
      else waiting.set(key, [entry]);
      arrivals.get(key)?.();
      const turn = async () => {
        leave(key, entry);
        const handed = await entry.handed; // null when not taken
        return handed === null ? await work() : handed as T;
      };
      const result = before.then(turn, turn);
      const tail = result.catch(() => {});
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return result;
    },
    arrival(key, ms) {
      if (waiting.has(key)) return Promise.resolve();
      arrivals.get(key)?.();
      return new Promise((resolve) => {
        const end = () => {
          clearTimeout(timer);
          arrivals.delete(key);
          resolve();
        };
        const timer = setTimeout(end, ms);
        arrivals.set(key, end);
      });
    },
    take(key, accept) {
      const taken: Taken[] = [];
      const queue = waiting.get(key);
      try {
        while (queue && queue.length > 0 && queue[0].what !== undefined && accept(queue[0].what)) {
          const entry = queue.shift()!;
          let done!: (result: unknown) => void;
          entry.handed = new Promise((resolve) => (done = resolve));
          taken.push({ what: entry.what, done });
        }
      } catch (err) {
        for (const t of taken) t.done(null); // they run after all
        throw err;
      } finally {
        if (queue?.length === 0) waiting.delete(key);
      }
      return taken;
    },
  };
}
