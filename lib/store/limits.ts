/**
 * Deno KV's limits, in one place, and what this service derives from them. (The largest commit,
 * a pairing, has about 14 mutations and 4 checks, far under Deno KV's 1000 and 100.)
 * @module
 */

/** Largest value Deno KV stores. */
export const KV_MAX_VALUE_BYTES = 65_536;

/**
 * Largest raw webhook body stored: it is a KV value of its own (see `eventBodyKey`), so it must fit
 * in {@linkcode KV_MAX_VALUE_BYTES} with room for the value's own encoding.
 */
export const MAX_STORED_BODY_BYTES = 65_000;

/**
 * Longest name (course, lesson, chapter) accepted from a webhook: keeps a stored event's parsed
 * facts, which are rewritten on every update, small.
 */
export const MAX_NAME_CHARS = 1000;

/** Keys in one `getMany`. */
export const KV_MAX_GET_MANY = 10;

/** Checks in one atomic commit. */
export const KV_MAX_CHECKS = 100;

/** Mutations in one atomic commit. */
export const KV_MAX_MUTATIONS = 1000;

/** Total size of the keys and values one atomic commit writes. */
export const KV_MAX_COMMIT_BYTES = 800 * 1024;

/** Largest page of a listing API. */
export const MAX_PAGE_SIZE = 500;

/** Commits lost to a concurrent writer are re-read and retried at most this many times. */
export const MAX_COMMIT_ATTEMPTS = 25;

/** Progress events kept in an enrollment summary (older ones are dropped; only the latest matter). */
export const MAX_ENROLLMENT_PROGRESS = 400;

/** Lessons kept in an enrollment summary (a course with more would miscount its later lessons). */
export const MAX_ENROLLMENT_LESSONS = 4000;

/**
 * How old a change-feed entry must be before `/api/feed` serves it (the default of
 * `FEED_DELAY_MS`). Records from several processes commit slightly out of `collated_at` order; a
 * commit never lands more than half this delay after its record's `collated_at` (the committer
 * re-decides older ones with a fresh time), so no entry can appear behind a cursor already served.
 */
export const FEED_DELAY_MS = 5_000;
