/**
 * Test helpers for the group committer and commit plans: a database that counts commits, and
 * handles whose `atomic()` or `list()` a test replaces.
 */
import { instrumentKv } from "../lib/store/instrument.ts";
import { CommitPlan } from "../lib/store/plan.ts";

/** A plan that sets `key` to `value` if it is absent. */
export const fresh = (key: Deno.KvKey, value: unknown): CommitPlan =>
  new CommitPlan().check({ key, versionstamp: null }).set(key, value);

/** An in-memory database (`real`), and a handle on it (`kv`) that counts its commits. */
export async function countingKv() {
  const real = await Deno.openKv(":memory:");
  const calls = { commit: 0 };
  const kv = instrumentKv(real, { before: (c) => void (c === "commit" && calls.commit++) });
  return { kv, real, calls };
}

/**
 * A handle on `kv` whose `list(selector, options)` is `list(selector, options, kv)` (call `kv.list`
 * from it for the real one); everything else is `kv`'s own.
 */
export function withList(
  kv: Deno.Kv,
  list: (
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions | undefined,
    kv: Deno.Kv,
  ) => Deno.KvListIterator<unknown> | AsyncGenerator<Deno.KvEntry<unknown>>,
): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "list") {
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) =>
          list(selector, options, target);
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** One atomic commit seen by {@linkcode recordCommits}. */
export interface SeenCommit {
  checks: Deno.AtomicCheck[];
  mutations: Deno.KvMutation[];
  /** Whether it succeeded (`null` while in flight). */
  ok: boolean | null;
}

/**
 * A handle on `kv` whose `atomic()` hands out `wrap(op)` for each new operation; everything else is
 * `kv`'s own.
 */
export function withAtomic(
  kv: Deno.Kv,
  wrap: (op: Deno.AtomicOperation) => Deno.AtomicOperation,
): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") return () => wrap(target.atomic());
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/**
 * A handle on `kv` that records every atomic commit made through it, with the checks and mutations
 * given by `.check()` and `.mutate()` (how a `CommitPlan` is applied), in the order of the commits.
 */
export function recordCommits(kv: Deno.Kv): { kv: Deno.Kv; commits: SeenCommit[] } {
  const commits: SeenCommit[] = [];
  const handle = withAtomic(kv, (op) => {
    const seen: SeenCommit = { checks: [], mutations: [], ok: null };
    const check = op.check.bind(op);
    const mutate = op.mutate.bind(op);
    const commit = op.commit.bind(op);
    return Object.assign(op, {
      check(...c: Deno.AtomicCheck[]) {
        seen.checks.push(...c);
        return check(...c);
      },
      mutate(...m: Deno.KvMutation[]) {
        seen.mutations.push(...m);
        return mutate(...m);
      },
      async commit() {
        commits.push(seen);
        const result = await commit();
        seen.ok = result.ok;
        return result;
      },
    });
  });
  return { kv: handle, commits };
}

/**
 * A handle on `kv` whose commits wait until released: `inFlight` lists the commits started and
 * not yet released (their keys mutated), and `release()` lets the oldest one go to the database.
 */
export function gatedKv(kv: Deno.Kv) {
  const inFlight: { keys: Deno.KvKey[]; go: () => void }[] = [];
  const handle = withAtomic(kv, (op) => {
    const keys: Deno.KvKey[] = [];
    const mutate = op.mutate.bind(op);
    const commit = op.commit.bind(op);
    return Object.assign(op, {
      mutate(...m: Deno.KvMutation[]) {
        keys.push(...m.map((x) => x.key));
        return mutate(...m);
      },
      async commit() {
        await new Promise<void>((go) => inFlight.push({ keys, go }));
        return await commit();
      },
    });
  });
  return {
    kv: handle,
    inFlight,
    /** Lets the oldest commit in flight go, and waits until it has been answered. */
    async release() {
      const next = inFlight.shift();
      if (!next) throw new Error("no commit in flight");
      next.go();
      for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
    },
  };
}
