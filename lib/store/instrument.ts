/**
 * A wrapper around a `Deno.Kv` handle that sees every round trip (`get`, `getMany`, `list`,
 * `commit`): benchmarks count them, fault tests make a chosen one fail, crash and feed tests hold
 * commits open, and Deno Deploy's conditions are imitated by adding latency to every call (a KV
 * Connect database in another region answers in tens of milliseconds).
 *
 * @example
 * ```ts
 * const counts = { n: 0 };
 * const kv = instrumentKv(await Deno.openKv(":memory:"), { before: () => void counts.n++ });
 * // Like a database 20 ms away:
 * const far = instrumentKv(await Deno.openKv(":memory:"), { before() {}, latency: () => 20 });
 * ```
 * @module
 */

/** Which kind of round trip is about to happen. */
export type KvCall = "get" | "getMany" | "list" | "commit";

/** Called before each round trip; throw to make it fail. */
export interface KvHooks {
  before(call: KvCall): void;
  /** Awaited before each commit reaches the database: a commit waits as long as this does. */
  holdCommit?: () => Promise<void>;
  /** Milliseconds each round trip waits before it reaches the database (none: no wait). */
  latency?: (call: KvCall) => number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `it`, whose first page waits `ms` first (a listing's first round trip). */
function delayedList<T>(it: Deno.KvListIterator<T>, ms: number): Deno.KvListIterator<T> {
  let waited: Promise<unknown> | null = null;
  const delayed = {
    get cursor() {
      return it.cursor;
    },
    async next() {
      await (waited ??= sleep(ms));
      return await it.next();
    },
    [Symbol.asyncIterator]() {
      return delayed;
    },
  };
  return delayed as unknown as Deno.KvListIterator<T>;
}

/** Returns a handle that behaves like `kv` and calls `hooks.before` before each round trip. */
export function instrumentKv(kv: Deno.Kv, hooks: KvHooks): Deno.Kv {
  const wrapAtomic = (op: Deno.AtomicOperation): Deno.AtomicOperation => {
    const proxy: Deno.AtomicOperation = new Proxy(op, {
      get(target, prop) {
        if (prop === "commit") {
          if (!hooks.holdCommit && !hooks.latency) {
            return () => {
              hooks.before("commit");
              return target.commit();
            };
          }
          return async () => {
            hooks.before("commit");
            const ms = hooks.latency?.("commit") ?? 0;
            if (ms > 0) await sleep(ms);
            await hooks.holdCommit?.();
            return await target.commit();
          };
        }
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const result = value.apply(target, args);
          // Stryker disable next-line ConditionalExpression: equivalent, every AtomicOperation method but commit (above) returns the operation itself
          return result === target ? proxy : result;
        };
      },
    });
    return proxy;
  };

  return new Proxy(kv, {
    get(target, prop) {
      switch (prop) {
        case "get":
        case "getMany":
          return (...args: unknown[]) => {
            hooks.before(prop);
            const call = () =>
              (Reflect.get(target, prop, target) as (...a: unknown[]) => unknown).apply(
                target,
                args,
              );
            const ms = hooks.latency?.(prop) ?? 0;
            return ms > 0 ? sleep(ms).then(call) : call();
          };
        case "list":
          return (...args: Parameters<Deno.Kv["list"]>) => {
            hooks.before("list");
            const ms = hooks.latency?.("list") ?? 0;
            const it = target.list(...args);
            return ms > 0 ? delayedList(it, ms) : it;
          };
        case "atomic":
          return () => wrapAtomic(target.atomic());
        default: {
          const value = Reflect.get(target, prop, target);
          return typeof value === "function" ? value.bind(target) : value;
        }
      }
    },
  });
}
