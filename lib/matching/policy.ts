/**
 * The matching policy: which counterpart, if any, an event may claim now. Pure: no I/O, no clock.
 *
 * Rules (SPEC "Matching rules"):
 * - only unclaimed counterparts of the same school, user and course, within ±window, are candidates;
 * - an exact timestamp always wins and is claimed at once, by either side;
 * - otherwise the closest wins, one-to-one: the policy runs a closest-first greedy matching over the
 *   whole chain of overlapping windows around the event (its cluster: see {@linkcode clusterSpan}),
 *   so an event never takes a counterpart that is closer to a rival, and the outcome does not
 *   depend on which event of the chain is delivered first;
 * - because a closer (usually exact) partner may still be in flight, an inexact pair is made only
 *   by the logic channel on a delivery after its first once {@linkcode INEXACT_SETTLE_MS} have
 *   passed since its first delivery (or on its last delivery before giving up, whatever the time),
 *   or with a counterpart that has given up (it will not be delivered again);
 * - ties are broken by the earlier pair, then by event ids, so every process decides the same way.
 *
 * @example
 * ```ts
 * const decision = choosePartner({
 *   self: { id: "p1", at: 1000, deliveries: 1, isLogic: true, waitedMs: 0, lastChance: false },
 *   counterparts: [{ id: "l1", at: 1000, gaveUp: false }],
 *   windowMs: 500,
 * });
 * // decision = { partner: { id: "l1", ... }, exact: true }
 * ```
 * @module
 */

/**
 * How long the logic channel keeps waiting for a closer partner before it accepts an inexact one.
 * Thinkific's own retries come later than this, so in production an inexact pair is made on the
 * first redelivery; a sender retrying faster still gets its pair by its last delivery.
 */
export const INEXACT_SETTLE_MS = 10_000;

/** An unclaimed stored event, as the policy sees it. */
export interface Candidate {
  id: string;
  /** `created_at` in epoch milliseconds. */
  at: number;
  /** The logic channel gave up on it: it will not be delivered again. */
  gaveUp: boolean;
}

/** The event being handled. */
export interface Self {
  id: string;
  at: number;
  /** How many deliveries of this event have been seen, this one included. */
  deliveries: number;
  /** Whether its topic is the logic channel (the one answered 409 while pending). */
  isLogic: boolean;
  /** Time since its first delivery was received. */
  waitedMs: number;
  /** This is its last delivery before it gives up. */
  lastChance: boolean;
}

/** What the policy needs to decide. */
export interface PolicyInput {
  self: Self;
  /**
   * Unclaimed events of the other topic, same school, user and course (any order): those within
   * ±window, or when rivals are given, every one in the event's cluster.
   */
  counterparts: readonly Candidate[];
  /**
   * Unclaimed events of the same topic as `self` in its cluster (`self` is ignored if listed).
   * Leave out when not read: {@linkcode needsRivals} says when they matter.
   */
  rivals?: readonly Candidate[];
  windowMs: number;
}

/** A claim the event may make now. */
export interface Decision {
  partner: Candidate;
  exact: boolean;
}

interface Pair {
  a: Candidate; // same topic as self
  b: Candidate; // counterpart topic
  distance: number;
}

function comparePairs(x: Pair, y: Pair): number {
  return x.distance - y.distance ||
    Math.min(x.a.at, x.b.at) - Math.min(y.a.at, y.b.at) ||
    compareIds(x.b.id, y.b.id) ||
    compareIds(x.a.id, y.a.id);
}

function compareIds(x: string, y: string): number {
  // Thinkific ids are digit strings: compare numerically when lengths differ, else as text.
  return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
}

function inWindow(self: { at: number }, c: Candidate, windowMs: number): boolean {
  return Math.abs(c.at - self.at) <= windowMs;
}

/** Whether `self` may pair with a counterpart at a non-zero distance on this delivery. */
function mayPairInexact(self: Self, c: Candidate): boolean {
  if (c.gaveUp) return true;
  return self.isLogic && self.deliveries >= 2 &&
    (self.waitedMs >= INEXACT_SETTLE_MS || self.lastChance);
}

/**
 * True when {@linkcode choosePartner} needs the rivals to decide: no exact counterpart, but an
 * inexact one that this delivery is allowed to take. The caller then reads the event's cluster.
 */
export function needsRivals(input: Omit<PolicyInput, "rivals">): boolean {
  const { self, counterparts, windowMs } = input;
  const near = counterparts.filter((c) => inWindow(self, c, windowMs));
  if (near.some((c) => c.at === self.at)) return false;
  return near.some((c) => mayPairInexact(self, c));
}

/**
 * The chain of overlapping windows around `selfAt`: the longest run of event times (both topics,
 * unclaimed, `selfAt` included) whose consecutive gaps are at most `windowMs`. Every event that
 * can change whom `self` gets is in it, so a read must cover `[from - windowMs, to + windowMs]`
 * to be sure it saw the whole chain.
 */
export function clusterSpan(
  ats: readonly number[],
  selfAt: number,
  windowMs: number,
): { from: number; to: number } {
  const sorted = [...ats, selfAt].sort((a, b) => a - b);
  const i = sorted.indexOf(selfAt);
  let lo = i;
  let hi = i;
  while (lo > 0 && sorted[lo] - sorted[lo - 1] <= windowMs) lo--;
  while (hi < sorted.length - 1 && sorted[hi + 1] - sorted[hi] <= windowMs) hi++;
  return { from: sorted[lo], to: sorted[hi] };
}

/**
 * Greedy closest-first matching over the neighbourhood; returns whom `self` gets, if anyone.
 */
function greedyPartner(
  self: Candidate,
  sides: readonly Candidate[],
  counterparts: readonly Candidate[],
  windowMs: number,
): Candidate | null {
  const pairs: Pair[] = [];
  for (const a of sides) {
    for (const b of counterparts) {
      const distance = Math.abs(a.at - b.at);
      if (distance <= windowMs) pairs.push({ a, b, distance });
    }
  }
  pairs.sort(comparePairs);
  const taken = new Set<string>();
  for (const { a, b } of pairs) {
    if (taken.has("a" + a.id) || taken.has("b" + b.id)) continue;
    if (a.id === self.id) return b;
    taken.add("a" + a.id);
    taken.add("b" + b.id);
  }
  return null;
}

/**
 * Decides which counterpart `self` claims now, or `null` to wait (or, for the companion channel,
 * to stay stored until a counterpart claims it).
 */
export function choosePartner(input: PolicyInput): Decision | null {
  const { self, windowMs } = input;
  if (!input.counterparts.some((c) => inWindow(self, c, windowMs))) return null;
  const selfCandidate: Candidate = { id: self.id, at: self.at, gaveUp: false };
  const rivals = (input.rivals ?? []).filter((r) => r.id !== self.id);
  const partner = greedyPartner(
    selfCandidate,
    [selfCandidate, ...rivals],
    input.counterparts,
    windowMs,
  );
  if (partner === null) return null;
  if (partner.at === self.at) return { partner, exact: true };
  return mayPairInexact(self, partner) ? { partner, exact: false } : null;
}
