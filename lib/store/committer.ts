/**
 * Group commit: one committer per process merges the commit plans waiting into one `kv.atomic()`
 * as soon as the previous commit finishes. An idle committer commits a lone plan at once, a busy one
 * gathers what arrived meanwhile. Deno KV's local backend runs every commit as one SQLite
 * transaction with an fsync on one thread, so fewer, larger commits carry more events.
 *
 * On a database far away (Deno Deploy's, or KV Connect), where a commit mostly waits, plans would
 * wait a whole commit for the one in flight. So once the fastest of the last 32 commits took at
 * least `overlapAfterMs` (10 ms), up to `maxInFlight` (16) commits are in flight side by side, each
 * starting at least that fastest time / `maxInFlight` after the one before. A plan held back by
 * that pace starts when it allows (a timer), not at the next arrival or end, which on a quiet
 * database is up to a commit away. A local file never gets there (its fastest commits take 2 to 4
 * ms even under load) and keeps one commit in flight, with larger batches.
 *
 * Plans never go beside a commit in flight that mutates a key they check, or that checks a key
 * they mutate: they wait for it to end, so commits in flight never depend on each other. Two that
 * only mutate one key, neither checking it, may go side by side; the database's order then decides
 * which mutation lands last, as between two processes. The request path's only such key is a
 * course's name (`lib/store/stats.ts`), set by pairs of its learners and checked by none.
 *
 * Merging keeps each plan's meaning:
 * - Plans of which one checks a key that the other mutates never share a commit (Deno KV
 *   evaluates every check before any mutation, so the check would not see the other's write), nor
 *   plans checking one key at different versions (one of them must fail). Plans that check one key
 *   at one version and leave it alone (every record checks the change feed's fence) share one, and
 *   plans that only mutate the same keys too: mutations apply in order, as two commits would.
 * - A merged commit stays within Deno KV's atomic limits.
 * - A plan that checks a key this committer has since written at a newer version cannot succeed:
 *   it is answered `{ ok: false }` without a commit (its request re-reads and decides again), so
 *   it never fails a merged commit. A plan that checks as absent a key this committer wrote is
 *   answered so only if it was handed over before that write finished (it read before it): one
 *   handed over later may have read the key deleted since by another writer (an erasure, an
 *   expiry, another process), and the commit's own check decides for it. So this memory answers a
 *   request at most once per write: never its re-read plan.
 * - When a merged commit fails all the same (a check lost to another writer, such as an advance of
 *   the feed's fence), the keys it checked are read once: the plans whose checks no longer hold are
 *   answered `{ ok: false }` and the rest committed merged again. When the read finds no culprit
 *   (the key changed back, or the read failed), it is split in halves, each committed merged again,
 *   down to single plans. Each request learns whether its own plan held; a request whose plan
 *   failed re-reads and decides again, as after a lone commit.
 * - A plan Deno KV would refuse (a key or value too large) is committed alone, so it fails only its
 *   own request, and a merged commit that throws is retried plan by plan in the same way.
 *
 * Several processes on one database each have their committer; the checks keep them correct.
 *
 * @example
 * ```ts
 * const committer = createCommitter(kv);
 * const plan = new CommitPlan().check({ key: ["k"], versionstamp: null }).set(["k"], 1);
 * const result = await committer.commit(plan); // { ok: true, versionstamp } or { ok: false }
 * ```
 * @module
 */
import {
  COMMIT_OVERLAP_AFTER_MS,
  KV_MAX_GET_MANY,
  MAX_COMMITS_IN_FLIGHT,
  MAX_PLANS_PER_COMMIT,
} from "./limits.ts";
import { CommitPlan, fitsWithin, grow, keyId, type PlanProfile, type PlanSize } from "./plan.ts";
import { isBusyError } from "./retry.ts";

/** What the committer answers for one plan. */
export type PlanResult = Deno.KvCommitResult | Deno.KvCommitError;

/** A process's committer. */
export interface Committer {
  /** Commits `plan`, alone or merged with others. Rejects only if Deno KV throws for it. */
  commit(plan: CommitPlan): Promise<PlanResult>;
  /** Counters since creation: commits made and plans committed through them. */
  readonly stats: CommitterStats;
}

/** What a committer has done, for benchmarks and tests. */
export interface CommitterStats {
  /** `kv.atomic().commit()` calls. */
  commits: number;
  /** Plans answered. */
  plans: number;
  /** Merged commits that failed (then sorted by a read of their checks, or split). */
  fallbacks: number;
  /** Plans answered `{ ok: false }` without a commit: they checked a key since written here. */
  stale: number;
  /** The largest number of plans in one commit. */
  largestBatch: number;
}

interface Waiting {
  plan: CommitPlan;
  /** Its place in the order of arrival (see `remember`). */
  seq: number;
  /** Its size and keys, measured once when it arrives. */
  profile: PlanProfile;
  resolve(result: PlanResult): void;
  reject(err: unknown): void;
}

/** Options of {@linkcode createCommitter}. */
export interface CommitterOptions {
  /** Plans merged into one commit at most (default {@linkcode MAX_PLANS_PER_COMMIT}; 1 turns merging off). */
  maxPlans?: number;
  /** Commits in flight at once (default {@linkcode MAX_COMMITS_IN_FLIGHT}; 1: one after the other). */
  maxInFlight?: number;
  /**
   * More than one commit is in flight only while the fastest of the last commits took at least this
   * long (default {@linkcode COMMIT_OVERLAP_AFTER_MS}): a database far away (Deno Deploy's), where a
   * commit mostly waits. A local one, even a busy one, keeps one commit in flight and larger batches.
   */
  overlapAfterMs?: number;
  /** The clock (ms); tests pass their own. */
  now?: () => number;
}

/** The keys a batch's plans check (with the version each expects) and mutate, together. */
interface BatchKeys {
  checked: Map<string, string | null>;
  mutated: Set<string>;
}

/**
 * Whether a plan cannot share a commit with a batch (see the module doc): it checks a key the
 * batch mutates or checks at another version, or mutates a key the batch checks. Against the
 * batch's keys together, so each plan taken costs one pass over its own keys.
 */
function conflicts(batch: BatchKeys, p: PlanProfile): boolean {
  for (const c of p.checks) {
    if (batch.mutated.has(c.id)) return true;
    const other = batch.checked.get(c.id);
    if (other !== undefined && other !== c.versionstamp) return true;
  }
  for (const id of p.mutated.keys()) if (batch.checked.has(id)) return true;
  return false;
}

/** Adds a plan's keys to its batch's. */
function join(batch: BatchKeys, p: PlanProfile): void {
  for (const c of p.checks) batch.checked.set(c.id, c.versionstamp);
  for (const id of p.mutated.keys()) batch.mutated.add(id);
}

/**
 * The plans of `live` whose checks still hold, from one read of the keys they check (at most
 * {@linkcode ATOMIC_LIMITS}.checks keys, {@linkcode KV_MAX_GET_MANY} per `getMany`, read at once).
 */
async function stillHolding(kv: Deno.Kv, live: Waiting[]): Promise<Waiting[]> {
  const keys = new Map<string, Deno.KvKey>();
  for (const w of live) for (const c of w.plan.checks) keys.set(keyId(c.key), c.key);
  const ids = [...keys.keys()];
  const batches: Promise<Deno.KvEntryMaybe<unknown>[]>[] = [];
  for (let i = 0; i < ids.length; i += KV_MAX_GET_MANY) {
    batches.push(kv.getMany(ids.slice(i, i + KV_MAX_GET_MANY).map((id) => keys.get(id)!)));
  }
  const read = (await Promise.all(batches)).flat();
  const now = new Map(ids.map((id, i) => [id, read[i].versionstamp]));
  return live.filter((w) => w.profile.checks.every((c) => now.get(c.id) === c.versionstamp));
}

/** How many of the last commits' durations decide whether commits overlap. */
const RECENT_COMMITS = 32;

/** Creates the committer of `kv`. */
export function createCommitter(kv: Deno.Kv, options: CommitterOptions = {}): Committer {
  const maxPlans = Math.max(1, options.maxPlans ?? MAX_PLANS_PER_COMMIT);
  const maxInFlight = Math.max(1, options.maxInFlight ?? MAX_COMMITS_IN_FLIGHT);
  const queue: Waiting[] = [];
  /** The keys the commits in flight check and mutate, with how many of their plans do. */
  const busyChecked = new Map<string, number>();
  const busyMutated = new Map<string, number>();
  let inFlight = 0;
  const overlapAfterMs = options.overlapAfterMs ?? COMMIT_OVERLAP_AFTER_MS;
  const now = options.now ?? (() => performance.now());
  /** When the newest commit in flight started. */
  let newestStart = 0;
  /** How long the last commits took, ms (a ring), and the next slot to write. */
  const took: number[] = [];
  let tookAt = 0;
  /** The fastest of the last commits, ms (0 until there are enough of them). */
  let floor = 0;
  const stats: CommitterStats = {
    commits: 0,
    plans: 0,
    fallbacks: 0,
    stale: 0,
    largestBatch: 0,
  };
  /**
   * Keys this committer wrote, with the version it wrote them at, whether the key exists after,
   * and `seq`: plans with a lower `seq` were handed over before the write finished (bounded, see
   * `remember`).
   */
  const written = new Map<string, { versionstamp: string; exists: boolean; seq: number }>();
  /** Plans handed over so far. */
  let arrivals = 0;

  /** Takes the next batch from the queue: compatible plans, in queue order, within the limits. */
  function take(): Waiting[] {
    const batch: Waiting[] = [];
    const total: PlanSize = { checks: 0, mutations: 0, keyBytes: 0, totalBytes: 0 };
    const keys: BatchKeys = { checked: new Map(), mutated: new Set() };
    for (let i = 0; i < queue.length && batch.length < maxPlans;) {
      const w = queue[i];
      const { size } = w.profile;
      const alone = w.profile.refused;
      if ((alone && batch.length > 0) || overlapsInFlight(w.profile)) {
        i++;
        continue;
      }
      if (
        batch.length > 0 &&
        (!fitsWithin(total, size) || conflicts(keys, w.profile))
      ) {
        i++;
        continue;
      }
      queue.splice(i, 1);
      batch.push(w);
      grow(total, size);
      join(keys, w.profile);
      if (alone) break;
    }
    return batch;
  }

  /**
   * Whether `p` checks a key a commit in flight mutates, or mutates a key one checks: it waits for
   * that commit to end (then `isStale` may answer it without a commit), so commits in flight never
   * depend on each other's order. Checks of one key by both (the feed's fence) do not count, nor
   * mutations of one key by both (see the module doc).
   */
  function overlapsInFlight(p: PlanProfile): boolean {
    if (inFlight === 0) return false;
    for (const c of p.checks) if (busyMutated.has(c.id)) return true;
    for (const id of p.mutated.keys()) if (busyChecked.has(id)) return true;
    return false;
  }

  /** Adds (`by` 1) or removes (-1) a batch's keys from those of the commits in flight. */
  function markBusy(batch: Waiting[], by: 1 | -1) {
    const add = (map: Map<string, number>, id: string) => {
      const n = (map.get(id) ?? 0) + by;
      if (n > 0) map.set(id, n);
      else map.delete(id);
    };
    for (const w of batch) {
      for (const c of w.profile.checks) add(busyChecked, c.id);
      for (const id of w.profile.mutated.keys()) add(busyMutated, id);
    }
  }

  /** Notes the keys a successful commit wrote. */
  function remember(batch: Waiting[], versionstamp: string) {
    if (written.size > 4096) written.clear(); // an optimisation only: forgetting is safe
    for (const w of batch) {
      w.profile.mutated.forEach((exists, id) => {
        written.set(id, { versionstamp, exists, seq: arrivals });
      });
    }
  }

  /**
   * Whether a check of `w` is already known to fail (its key was written here since it read). A
   * version read older than this committer's write can never match again (versionstamps only
   * grow). An absence read is judged only by a write that finished after `w` was handed over
   * (`w` read before it): a plan handed over later may have read the key deleted since by another
   * writer, so its commit's own check decides.
   */
  function isStale(w: Waiting): boolean {
    for (const c of w.profile.checks) {
      const last = written.get(c.id);
      if (!last) continue;
      if (
        c.versionstamp === null
          ? last.exists && w.seq < last.seq
          : last.versionstamp > c.versionstamp
      ) {
        return true;
      }
    }
    return false;
  }

  /** Commits plans merged; a failed merge is split in halves, down to single plans. */
  async function commitMerged(live: Waiting[]): Promise<void> {
    let result: PlanResult | null = null;
    try {
      const op = CommitPlan.applyAll(kv.atomic(), live.map((w) => w.plan));
      stats.commits++;
      result = await op.commit();
    } catch (err) {
      if (live.length === 1) {
        stats.plans++;
        return live[0].reject(err);
      }
      if (isBusyError(err)) {
        // Another process holds the database: every request retries (lib/store/retry.ts).
        stats.plans += live.length;
        for (const w of live) w.reject(err);
        return;
      }
      result = null; // one plan Deno KV refused: split below
    }
    if (result?.ok) {
      stats.plans += live.length;
      remember(live, result.versionstamp);
      for (const w of live) w.resolve(result);
      return;
    }
    if (live.length === 1) {
      stats.plans++;
      return live[0].resolve({ ok: false });
    }
    stats.fallbacks++;
    if (result !== null) {
      // Checks failed: answer the plans whose checks no longer hold, commit the rest again.
      const holding = await stillHolding(kv, live).catch(() => live);
      if (holding.length < live.length) {
        for (const w of live) {
          if (holding.includes(w)) continue;
          stats.plans++;
          w.resolve({ ok: false });
        }
        if (holding.length > 0) await commitMerged(holding);
        return;
      }
    }
    const half = Math.ceil(live.length / 2);
    await commitMerged(live.slice(0, half));
    await commitMerged(live.slice(half));
  }

  /** Commits what of `batch` is not already known to fail; whether it made a commit. */
  async function commitBatch(batch: Waiting[]): Promise<boolean> {
    const live: Waiting[] = [];
    for (const w of batch) {
      if (isStale(w)) {
        stats.stale++;
        stats.plans++;
        w.resolve({ ok: false });
      } else live.push(w);
    }
    if (live.length === 0) return false;
    stats.largestBatch = Math.max(stats.largestBatch, live.length);
    await commitMerged(live);
    return true;
  }

  /** The timer that calls `pump` once the pace lets the next commit start. */
  let pacer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Starts commits while plans wait and fewer than `maxInFlight` are in flight: each takes the
   * plans that do not overlap those in flight; when one ends, the next starts. Called when a plan
   * arrives, when a commit ends, and by the pacer.
   */
  function pump() {
    clearTimeout(pacer);
    pacer = undefined;
    while (inFlight < maxInFlight && queue.length > 0) {
      // Beside others only on a slow database, paced over the time one commit takes.
      const slow = floor >= overlapAfterMs;
      if (inFlight > 0 && !slow) return;
      const early = inFlight > 0 ? floor / maxInFlight - (now() - newestStart) : 0;
      if (early > 0) {
        pacer = setTimeout(pump, Math.ceil(early));
        return;
      }
      const batch = take();
      if (batch.length === 0) return; // every waiting plan waits for a commit in flight
      inFlight++;
      const started = newestStart = now();
      // Its keys are noted only when another commit may go beside it (a slow database). A commit
      // started on a fast database is alone: it starts only when none is in flight, and `floor`
      // changes only when a commit ends, so nothing goes beside it.
      const marked = slow && maxInFlight > 1;
      if (marked) markBusy(batch, 1);
      void commitBatch(batch).then((committed) => {
        if (!committed) return; // its plans were answered without a commit: no time taken
        took[tookAt] = now() - started;
        tookAt = (tookAt + 1) % RECENT_COMMITS;
        floor = took.length === RECENT_COMMITS ? Math.min(...took) : 0;
      }).finally(() => {
        inFlight--;
        if (marked) markBusy(batch, -1);
        pump();
      });
    }
  }

  return {
    stats,
    commit(plan) {
      return new Promise<PlanResult>((resolve, reject) => {
        queue.push({ plan, profile: plan.profile(), seq: arrivals++, resolve, reject });
        pump();
      });
    },
  };
}
