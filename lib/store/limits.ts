/**
 * Deno KV's limits, in one place, and what this service derives from them.
 * @module
 */

/** Largest value Deno KV stores. */
export const KV_MAX_VALUE_BYTES = 65_536;

/**
 * Largest raw webhook body stored with its event (as bytes): the rest of a stored event must still
 * fit in {@linkcode KV_MAX_VALUE_BYTES}. That rest is the parsed facts, whose strings the schemas
 * bound to {@linkcode MAX_NAME_CHARS} (at most about 8 KiB as UTF-16), plus a few numbers.
 */
export const MAX_STORED_BODY_BYTES = 49_152;

/** Longest name (course, lesson, chapter) accepted from a webhook. */
export const MAX_NAME_CHARS = 1000;

/** Mutations in one atomic commit (Deno KV allows 1000; a claim uses about 20). */
export const KV_MAX_MUTATIONS = 1000;

/** Keys in one `getMany`. */
export const KV_MAX_GET_MANY = 10;

/** Largest page of a listing API. */
export const MAX_PAGE_SIZE = 500;

/** Commits lost to a concurrent writer are re-read and retried at most this many times. */
export const MAX_COMMIT_ATTEMPTS = 25;

/** Progress events kept in an enrollment summary (older ones are dropped; only the latest matter). */
export const MAX_ENROLLMENT_PROGRESS = 400;

/** Lessons kept in an enrollment summary (a course with more would miscount its later lessons). */
export const MAX_ENROLLMENT_LESSONS = 4000;
