/**
 * Deno KV's limits, in one place, and what this service derives from them. (The largest plan, a
 * pairing, has about 14 mutations and 5 checks; the committer merges plans up to the atomic limits
 * below.)
 * @module
 */

/** Largest value Deno KV stores. */
export const KV_MAX_VALUE_BYTES = 65_536;

/** Largest key Deno KV writes. */
export const KV_MAX_KEY_BYTES = 2048;

/**
 * One atomic commit's limits (Deno KV: 100 checks, 1000 mutations, 80 KiB of keys, 800 KiB in
 * all), with a margin because plan sizes are estimated from above.
 */
export const ATOMIC_LIMITS = {
  checks: 100,
  mutations: 1000,
  keyBytes: 80 * 1024,
  totalBytes: 800 * 1024,
} as const;

/** Plans merged into one commit at most (a bound on one commit's latency). */
export const MAX_PLANS_PER_COMMIT = 64;

/** A committer's commits in flight at once (see `committer.ts`). */
export const MAX_COMMITS_IN_FLIGHT = 16;

/** Enrollments a process keeps warm views of (`warm.ts`), the last ones written. */
export const WARM_ENROLLMENTS = 256;

/** How long a warm view is kept, ms (`warm.ts`). */
export const WARM_FOR_MS = 30_000;

/** Records a process keeps of those its commits made, for redeliveries (`recent.ts`). */
export const RECENT_RECORDS = 256;

/**
 * Presumed views (`presumed.ts`): presuming starts once this share of the cold first deliveries
 * found their enrollment without events (a failed presumption costs about what a held one saves).
 */
export const PRESUME_AT_SHARE = 0.75;

/** The share above is weighted to about the last this many cold first deliveries. */
export const PRESUME_OVER = 16;

/** Enrollments with events a process remembers (a 30-bit hash each), so as not to presume them. */
export const KNOWN_ENROLLMENTS = 8192;

/**
 * How long a first delivery decided without a read, alone in its enrollment, waits for the
 * enrollment's next delivery (most often its counterpart, sent at the same instant) before it
 * commits, so both go in one commit (`collator.ts`), ms. A read would have taken about as long.
 */
export const JOIN_WAIT_MS = 30;

/** A commit starts beside others in flight once the newest has run this long, ms (`committer.ts`). */
export const COMMIT_OVERLAP_AFTER_MS = 10;

/**
 * Largest raw webhook body stored: a body over {@linkcode MAX_INLINE_BODY_BYTES} is a KV value of
 * its own (see `eventBodyKey`), so it must fit in {@linkcode KV_MAX_VALUE_BYTES} with room for the
 * value's own encoding.
 */
export const MAX_STORED_BODY_BYTES = 65_000;

/**
 * Largest raw body stored inside its event's value (one key, its facts read from it): Thinkific's
 * are about 0.6 KiB, so an event is one write unit. A larger body goes under its own key, written
 * once, so the updates of its event stay small.
 */
export const MAX_INLINE_BODY_BYTES = 2_048;

/**
 * Longest name (course, lesson, chapter) accepted from a webhook: keeps a record, and a stored
 * event's parsed facts (kept with a body stored under its own key), small.
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

/**
 * Progress events kept in an enrollment summary: older ones are dropped, since a record's previous
 * percentage is the latest one before it (a progress event arriving more than this many events
 * late would see a later one as its previous).
 */
export const MAX_ENROLLMENT_PROGRESS = 24;

/**
 * Events stored without a pair listed in their enrollment summary (see `EnrollmentSummary.lone`):
 * beyond these, an event's id goes to its learner's own index key instead (one more write).
 */
export const MAX_ENROLLMENT_LONE = 8;

/**
 * Lessons kept in an enrollment summary, latest first seen: every commit of the enrollment
 * rewrites the summary, so it stays under about 2 KB. A learner completing a lesson again after
 * more than this many other lessons is counted again in that lesson's learners on the dashboard.
 */
export const MAX_ENROLLMENT_LESSONS = 200;

/**
 * How far the read around an event grows to take in a whole chain of overlapping match windows
 * (ms either side of the event): past it, the chain is decided from what was read.
 */
export const MAX_CLUSTER_SPAN_MS = 60_000;

/**
 * How old a change-feed entry must be before `/api/feed` serves it (the default of
 * `FEED_DELAY_MS`): the feed's fence is moved up to this far behind the reader's clock. Correctness
 * does not depend on it (a record never commits behind the fence, see `FEED_FENCE_KEY`); it keeps
 * the feed in `collated_at` order when the processes' clocks differ by less than it.
 */
export const FEED_DELAY_MS = 1_000;

/**
 * The fence moves by at least this much (or the feed's delay, if shorter): each move makes the
 * record commits in flight at that instant decide again, so moves are kept to about one a second
 * however many readers poll.
 */
export const FEED_FENCE_STEP_MS = 1_000;
