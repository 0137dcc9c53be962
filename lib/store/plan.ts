/**
 * A commit plan: the checks and mutations of one atomic commit, built without committing, so a
 * committer can merge the plans of concurrent requests into one `kv.atomic()` (see
 * `committer.ts`). It has the four methods the data-access modules use on an atomic operation, so
 * they build plans and atomic operations alike.
 *
 * @example
 * ```ts
 * const plan = new CommitPlan();
 * plan.check({ key: ["ids", "1"], versionstamp: null }).set(["ids", "1"], true);
 * const { ok } = await plan.applyTo(kv.atomic()).commit();
 * ```
 * @module
 */
import { ATOMIC_LIMITS, KV_MAX_KEY_BYTES, KV_MAX_VALUE_BYTES } from "./limits.ts";

/** What data-access modules call to add to a commit: a plan or a `Deno.AtomicOperation`. */
export interface Mutations {
  check(...checks: Deno.AtomicCheck[]): this;
  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this;
  sum(key: Deno.KvKey, n: bigint): this;
  delete(key: Deno.KvKey): this;
}

/** The size of a plan, in the units of Deno KV's atomic limits. */
export interface PlanSize {
  checks: number;
  mutations: number;
  /** Bytes of keys (checks and mutations), estimated from above. */
  keyBytes: number;
  /** Bytes of keys and values, estimated from above. */
  totalBytes: number;
}

const encoder = new TextEncoder();

/** What {@linkcode CommitPlan.profile} finds. */
export interface PlanProfile {
  size: PlanSize;
  /** Whether Deno KV would refuse the plan on its own (a key or value too large). */
  refused: boolean;
  /** Its checks by key id, with the version each expects. */
  checks: { id: string; versionstamp: string | null }[];
  /** The ids of the keys it mutates, with whether the key exists after its last mutation. */
  mutated: Map<string, boolean>;
}

/** Whether `s` is all ASCII (its UTF-8 length is then its length, with no encoding). */
function ascii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Whether a commit of size `total` can take `add` too, within Deno KV's atomic limits. */
export function fitsWithin(total: PlanSize, add: PlanSize): boolean {
  return total.checks + add.checks <= ATOMIC_LIMITS.checks &&
    total.mutations + add.mutations <= ATOMIC_LIMITS.mutations &&
    total.keyBytes + add.keyBytes <= ATOMIC_LIMITS.keyBytes &&
    total.totalBytes + add.totalBytes <= ATOMIC_LIMITS.totalBytes;
}

/** Adds `add` to `total` (in place). */
export function grow(total: PlanSize, add: PlanSize): void {
  total.checks += add.checks;
  total.mutations += add.mutations;
  total.keyBytes += add.keyBytes;
  total.totalBytes += add.totalBytes;
}

/** An upper estimate of a key's encoded size. */
export function keyBytes(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") {
      n += (ascii(part) ? part.length : encoder.encode(part).byteLength) + 2;
    } else if (part instanceof Uint8Array) n += part.byteLength * 2 + 2;
    else n += 10;
  }
  return n;
}

/**
 * An upper estimate of a value's serialized size (V8 writes strings as Latin-1 or UTF-16, so a
 * string takes at most two bytes a character, with its tag and length), walked without building
 * any text: it runs on every value of every plan.
 */
export function valueBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength + 16;
  if (value instanceof Deno.KvU64 || typeof value === "bigint") return 16;
  return walkBytes(value) + 16;
}

function walkBytes(value: unknown): number {
  switch (typeof value) {
    case "string":
      return 2 * value.length + 4;
    case "number":
      return 10;
    case "object": {
      if (value === null) return 2;
      if (value instanceof Uint8Array) return value.byteLength + 16;
      let n = 8;
      if (Array.isArray(value)) {
        for (const v of value) n += walkBytes(v);
        return n;
      }
      for (const k in value) {
        n += 2 * k.length + 6 + walkBytes((value as Record<string, unknown>)[k]);
      }
      return n;
    }
    default:
      return 4; // booleans, undefined
  }
}

/**
 * The text of a key, to compare keys by value. JSON tells strings, numbers and booleans apart;
 * bigints and byte strings are tagged.
 */
export function keyId(key: Deno.KvKey): string {
  const tagged = (p: Deno.KvKeyPart) =>
    typeof p === "bigint" ? { n: String(p) } : p instanceof Uint8Array ? { u: Array.from(p) } : p;
  // Strings, numbers and booleans only (every key this project writes): as they are, uncopied.
  return JSON.stringify(key.every((p) => tagged(p) === p) ? key : key.map(tagged));
}

/** `ids` (the key ids of `entries`' first ones) completed to one per entry. */
function idsOf(entries: readonly { key: Deno.KvKey }[], ids: string[]): string[] {
  for (let i = ids.length; i < entries.length; i++) ids.push(keyId(entries[i].key));
  return ids;
}

/** 2^64 - 1: Deno KV's `sum` wraps around at 2^64. */
const U64_MASK = (1n << 64n) - 1n;

/**
 * The mutations that change what a commit leaves, from `mutations` in commit order (`ids`: the
 * {@linkcode keyId} of each one's key). Deno KV applies a commit's mutations one after the other,
 * after every check, so:
 * - a `set` or `delete` followed by a `set` or `delete` of the same key is left out (the key ends
 *   as the later one leaves it);
 * - a `sum` directly followed, for its key, by another `sum` becomes one `sum` of both (wrapping
 *   at 2^64, as Deno KV does).
 *
 * The rest stay, in order. A projection batch sums one course's counters and rewrites its name
 * once per record: this writes each once per commit, the same values for fewer writes.
 *
 * @example
 * ```ts
 * const ms: Deno.KvMutation[] = [
 *   { type: "sum", key: ["n"], value: new Deno.KvU64(1n) },
 *   { type: "sum", key: ["n"], value: new Deno.KvU64(2n) },
 * ];
 * live(ms, ms.map((m) => keyId(m.key))); // one sum of 3n
 * ```
 */
export function live(
  mutations: readonly Deno.KvMutation[],
  ids: readonly string[],
): Deno.KvMutation[] {
  /** Each key's last mutation kept so far, by its place in `kept`. */
  const last = new Map<string, number>();
  const kept: (Deno.KvMutation | null)[] = [];
  for (let i = 0; i < mutations.length; i++) {
    const m = mutations[i];
    const at = last.get(ids[i]);
    const before = at === undefined ? null : kept[at];
    if (before !== null && m.type === "sum" && before.type === "sum") {
      kept[at!] = { type: "sum", key: before.key, value: addU64(before.value, m.value) };
      continue;
    }
    const replaces = m.type === "set" || m.type === "delete";
    if (before !== null && replaces && (before.type === "set" || before.type === "delete")) {
      kept[at!] = null;
    }
    last.set(ids[i], kept.length);
    kept.push(m);
  }
  return kept.filter((m) => m !== null);
}

/** `a + b` as Deno KV's `sum` adds them. */
const addU64 = (a: Deno.KvU64, b: Deno.KvU64) => new Deno.KvU64((a.value + b.value) & U64_MASK);

/** One plan of one request, ready to be committed alone or merged with others. */
export class CommitPlan implements Mutations {
  readonly checks: Deno.AtomicCheck[] = [];
  readonly mutations: Deno.KvMutation[] = [];
  /** {@linkcode keyId} of each check's and each mutation's key, as far as computed (see below). */
  #checkIdList: string[] = [];
  #mutationIdList: string[] = [];

  /**
   * The key id of each check, in order, each computed once: entries are only ever appended (by
   * the methods below, and by callers pushing onto `checks`), so the ids of new ones are added.
   */
  #checkIds(): string[] {
    return idsOf(this.checks, this.#checkIdList);
  }

  /** The key id of each mutation, in order, as {@linkcode CommitPlan.#checkIds}. */
  #mutationIds(): string[] {
    return idsOf(this.mutations, this.#mutationIdList);
  }

  check(...checks: Deno.AtomicCheck[]): this {
    for (const c of checks) this.checks.push({ key: c.key, versionstamp: c.versionstamp });
    return this;
  }

  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this {
    this.mutations.push({ type: "set", key, value, expireIn: options?.expireIn });
    return this;
  }

  sum(key: Deno.KvKey, n: bigint): this {
    this.mutations.push({ type: "sum", key, value: new Deno.KvU64(n) });
    return this;
  }

  delete(key: Deno.KvKey): this {
    this.mutations.push({ type: "delete", key });
    return this;
  }

  /**
   * This plan, then `next`: a plan decided from the state this one leaves, merged into one commit.
   * `next`'s checks of keys this plan mutates are dropped (this plan's writes decide what those
   * keys hold, and its own checks guard them), as are checks this plan makes already. Its
   * mutations apply after this plan's, and this plan's mutations of a key that `next` sets or
   * deletes are left out: the key ends as `next` leaves it, for one write instead of two.
   *
   * @example
   * ```ts
   * const first = new CommitPlan().check({ key: ["s"], versionstamp: null }).set(["s"], 1);
   * const second = new CommitPlan().check({ key: ["s"], versionstamp: "…" }).set(["s"], 2);
   * first.followedBy(second); // checks ["s"] absent, sets it to 2
   * ```
   */
  followedBy(next: CommitPlan): CommitPlan {
    const merged = new CommitPlan();
    const checkIds = this.#checkIds();
    const mutationIds = this.#mutationIds();
    const nextCheckIds = next.#checkIds();
    const nextMutationIds = next.#mutationIds();
    // Plans hold a few keys each: scans of their id lists, with nothing built for a lookup.
    const checksAlready = (id: string, versionstamp: string | null) => {
      for (let i = 0; i < checkIds.length; i++) {
        if (checkIds[i] === id && this.checks[i].versionstamp === versionstamp) return true;
      }
      return false;
    };
    const replaced = (id: string) => {
      for (let i = 0; i < nextMutationIds.length; i++) {
        if (nextMutationIds[i] === id && next.mutations[i].type !== "sum") return true;
      }
      return false;
    };
    merged.checks.push(...this.checks);
    merged.#checkIdList.push(...checkIds);
    for (let i = 0; i < next.checks.length; i++) {
      const c = next.checks[i];
      const id = nextCheckIds[i];
      if (mutationIds.includes(id) || checksAlready(id, c.versionstamp)) continue;
      merged.checks.push(c);
      merged.#checkIdList.push(id);
    }
    for (let i = 0; i < this.mutations.length; i++) {
      if (replaced(mutationIds[i])) continue;
      merged.mutations.push(this.mutations[i]);
      merged.#mutationIdList.push(mutationIds[i]);
    }
    merged.mutations.push(...next.mutations);
    merged.#mutationIdList.push(...nextMutationIds);
    return merged;
  }

  /** Adds this plan's checks and mutations to `op`, the dead ones left out ({@linkcode live}). */
  applyTo(op: Deno.AtomicOperation): Deno.AtomicOperation {
    return op.check(...this.checks).mutate(...live(this.mutations, this.#mutationIds()));
  }

  /**
   * Adds every check and mutation of `plans`, one after the other, to `op` (a merged commit): the
   * mutations as one list, so a key mutated by several plans is written once where it can be
   * ({@linkcode live}).
   *
   * @example
   * ```ts
   * await CommitPlan.applyAll(kv.atomic(), [a, b]).commit(); // a's mutations, then b's
   * ```
   */
  static applyAll(op: Deno.AtomicOperation, plans: readonly CommitPlan[]): Deno.AtomicOperation {
    const mutations: Deno.KvMutation[] = [];
    const ids: string[] = [];
    for (const p of plans) {
      op.check(...p.checks);
      mutations.push(...p.mutations);
      ids.push(...p.#mutationIds());
    }
    return op.mutate(...live(mutations, ids));
  }

  /**
   * This plan's size against Deno KV's atomic limits, and whether Deno KV would refuse it on its own
   * (a key or value too large: such a plan is never merged with others, so it can fail only its own
   * request). For a caller that cuts commits by size and needs no key ids.
   */
  measure(): { size: PlanSize; refused: boolean } {
    let keys = 0;
    let total = 0;
    let refused = false;
    for (const c of this.checks) {
      const bytes = keyBytes(c.key);
      keys += bytes;
      if (bytes > KV_MAX_KEY_BYTES) refused = true;
    }
    for (const m of this.mutations) {
      const bytes = keyBytes(m.key);
      const value = "value" in m ? valueBytes(m.value) : 0;
      keys += bytes;
      total += bytes + value;
      if (bytes > KV_MAX_KEY_BYTES || value > KV_MAX_VALUE_BYTES) refused = true;
    }
    const size = {
      checks: this.checks.length,
      mutations: this.mutations.length,
      keyBytes: keys,
      totalBytes: total + keys,
    };
    return { size, refused };
  }

  /**
   * Everything a committer needs to know of this plan: {@linkcode CommitPlan.measure}, and its keys
   * by {@linkcode keyId}.
   */
  profile(): PlanProfile {
    const checkIds = this.#checkIds();
    const mutationIds = this.#mutationIds();
    const checks = this.checks.map((c, i) => ({ id: checkIds[i], versionstamp: c.versionstamp }));
    const mutated: PlanProfile["mutated"] = new Map();
    this.mutations.forEach((m, i) => mutated.set(mutationIds[i], m.type !== "delete"));
    return { ...this.measure(), checks, mutated };
  }
}
