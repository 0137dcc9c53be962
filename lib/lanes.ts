/**
 * Lanes: work for one key runs one at a time in this process, in arrival order; work for other
 * keys runs alongside. The collator runs each delivery's read-decide-commit in its enrollment's
 * lane, so two deliveries of one learner in one course never decide from the same stale view here
 * (across processes the enrollment's versionstamp check does the same, at the price of a re-read).
 *
 * @example
 * ```ts
 * const lanes = createLanes();
 * await lanes.run("t/u/c", async () => await collateOnce());
 * ```
 * @module
 */

/** Serializes work per key. */
export interface Lanes {
  run<T>(key: string, work: () => Promise<T>): Promise<T>;
}

/** Creates the lanes of one process. */
export function createLanes(): Lanes {
  const tails = new Map<string, Promise<unknown>>();
  return {
    run(key, work) {
      const before = tails.get(key) ?? Promise.resolve();
      const result = before.then(work, work);
      const tail = result.catch(() => {});
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return result;
    },
  };
}
