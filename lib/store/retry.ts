/**
 * Retries an operation that failed because the database was busy: several processes sharing one
 * SQLite file take turns holding its write lock, and Deno KV reports "database is locked" at once
 * rather than waiting. Every operation retried here is safe to run again from the start (its writes
 * are atomic commits checked against what it read).
 *
 * @example
 * ```ts
 * const page = await retryWhenBusy(() => listRecords(kv, query));
 * ```
 * @module
 */

const BUSY = /database is locked|database is busy|SQLITE_BUSY/i;

/** Whether `err` is a transient "the database is busy" failure. */
export function isBusyError(err: unknown): boolean {
  return err instanceof Error && BUSY.test(err.message);
}

/** How long to keep trying before letting the error through (the sender then retries). */
const GIVE_UP_AFTER_MS = 5_000;

/** Runs `op`, retrying with jittered exponential backoff while the database is busy. */
export async function retryWhenBusy<T>(op: () => Promise<T>): Promise<T> {
  const started = Date.now();
  for (let attempt = 0;; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (!isBusyError(err) || Date.now() - started > GIVE_UP_AFTER_MS) throw err;
      const cap = Math.min(100, 2 ** attempt);
      await new Promise((r) => setTimeout(r, cap / 2 + Math.random() * cap / 2));
    }
  }
}
