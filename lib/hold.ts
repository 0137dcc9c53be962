/**
 * Held deliveries: a logic-channel delivery whose counterpart is not stored yet waits up to
 * `HOLD_MS` for it instead of answering the pending status at once, and is woken as soon as the
 * enrollment changes:
 *
 * | where the change is made | how the held delivery learns of it |
 * | --- | --- |
 * | the same process | {@linkcode Holds.notify}, called after each commit of the enrollment |
 * | another isolate of a Deno Deploy app, or a remote KV | `kv.watch` on the enrollment's key (mode `"watch"`) |
 * | another process on the same SQLite file | a read of the enrollment's key every `pollMs` (mode `"poll"`): `kv.watch` does not see other processes' writes there |
 *
 * A wait holds no KV transaction open. {@linkcode Holds.close} (on shutdown) ends every wait at once,
 * and later waits return at once, so held requests answer the pending status and the sender
 * retries (a held last delivery gives up first, see `lib/collator.ts`).
 *
 * @example
 * ```ts
 * const holds = createHolds(kv, { mode: "poll", pollMs: 100 });
 * const { end, note } = await holds.wait("t/u/c", enrollmentKey, versionstamp, 1500);
 * holds.notify("t/u/c", [record]); // by the commit that made it
 * ```
 * @module
 */

/** How a held delivery hears about writes made outside its process. */
export type WakeMode = "memory" | "poll" | "watch";

/** Why a wait ended. */
export type WaitEnd = "woken" | "timeout" | "closed";

/** How a wait ended, with what the waking commit said about itself (in this process only). */
export interface Woken {
  end: WaitEnd;
  note?: unknown;
}

/**
 * The reason a wait's watchers are stopped with: one value for all, since `abort()` without a
 * reason builds a `DOMException`, stack trace included, for each wait.
 */
const WAIT_ENDED = "wait ended";

/** The held deliveries of one process. */
export interface Holds {
  /**
   * Waits until `tag` is notified, `key`'s versionstamp differs from `versionstamp` (modes `"poll"`
   * and `"watch"`), `ms` have passed, or the holds are closed.
   */
  wait(tag: string, key: Deno.KvKey, versionstamp: string | null, ms: number): Promise<Woken>;
  /**
   * Wakes every delivery waiting on `tag`, handing them `note` (from the collator: the records its
   * commit made).
   */
  notify(tag: string, note?: unknown): void;
  /** Ends every wait now, and every later one at once (shutdown). */
  close(): void;
  readonly closed: boolean;
  /** Deliveries waiting now. */
  readonly waiting: number;
}

/** Options of {@linkcode createHolds}. */
export interface HoldsOptions {
  mode: WakeMode;
  /** Mode `"poll"`: how often the key is read (default 100 ms). */
  pollMs?: number;
}

/** Creates the holds of one process on `kv`. */
export function createHolds(kv: Deno.Kv, options: HoldsOptions): Holds {
  const pollMs = options.pollMs ?? 100;
  const waiters = new Map<string, Set<(note?: unknown) => void>>();
  const all = new Set<(end: WaitEnd, note?: unknown) => void>();
  let closed = false;

  function watchChange(key: Deno.KvKey, versionstamp: string | null, stop: AbortSignal) {
    return new Promise<void>((resolve) => {
      if (options.mode === "memory") return;
      if (options.mode === "poll") {
        const tick = async () => {
          try {
            const now = await kv.get(key);
            if (!stop.aborted && now.versionstamp !== versionstamp) return resolve();
          } catch {
            // a busy database: try again at the next tick
          }
          if (!stop.aborted) timer = setTimeout(tick, pollMs);
        };
        let timer = setTimeout(tick, pollMs);
        // A delivery that ends another way leaves no timer behind.
        stop.addEventListener("abort", () => clearTimeout(timer));
        return;
      }
      const reader = kv.watch([key]).getReader();
      stop.addEventListener("abort", () => void reader.cancel().catch(() => {}));
      (async () => {
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done || stop.aborted) return;
            if (value[0].versionstamp !== versionstamp) return resolve();
          }
        } catch {
          // the watch failed: the delivery waits out its time instead
        }
      })();
    });
  }

  return {
    get closed() {
      return closed;
    },
    get waiting() {
      return all.size;
    },
    wait(tag, key, versionstamp, ms) {
      if (closed) return Promise.resolve({ end: "closed" });
      if (ms <= 0) return Promise.resolve({ end: "timeout" });
      return new Promise<Woken>((resolve) => {
        const stop = new AbortController();
        const finish = (end: WaitEnd, note?: unknown) => {
          if (stop.signal.aborted) return;
          stop.abort(WAIT_ENDED);
          clearTimeout(timer);
          all.delete(finish);
          const set = waiters.get(tag);
          set?.delete(onNotify);
          if (set?.size === 0) waiters.delete(tag);
          resolve({ end, note });
        };
        const onNotify = (note?: unknown) => finish("woken", note);
        const timer = setTimeout(() => finish("timeout"), ms);
        all.add(finish);
        const set = waiters.get(tag) ?? new Set();
        set.add(onNotify);
        waiters.set(tag, set);
        void watchChange(key, versionstamp, stop.signal).then(() => finish("woken"));
      });
    },
    notify(tag, note) {
      for (const wake of [...(waiters.get(tag) ?? [])]) wake(note);
    },
    close() {
      closed = true;
      for (const finish of [...all]) finish("closed");
    },
  };
}
