/**
 * A wrapper around a `Deno.Kv` handle that sees every round trip (`get`, `getMany`, `list`,
 * `commit`): benchmarks count them, fault tests make a chosen one fail, crash tests hold commits
 * open.
 *
 * @example
 * ```ts
 * const counts = { n: 0 };
 * const kv = instrumentKv(await Deno.openKv(":memory:"), { before: () => void counts.n++ });
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
}

/** Returns a handle that behaves like `kv` and calls `hooks.before` before each round trip. */
export function instrumentKv(kv: Deno.Kv, hooks: KvHooks): Deno.Kv {
  const wrapAtomic = (op: Deno.AtomicOperation): Deno.AtomicOperation => {
    const proxy: Deno.AtomicOperation = new Proxy(op, {
      get(target, prop) {
        if (prop === "commit") {
          if (!hooks.holdCommit) {
            return () => {
              hooks.before("commit");
              return target.commit();
            };
          }
          return async () => {
            hooks.before("commit");
            await hooks.holdCommit?.();
            return await target.commit();
          };
        }
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const result = value.apply(target, args);
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
            return (Reflect.get(target, prop, target) as (...a: unknown[]) => unknown).apply(
              target,
              args,
            );
          };
        case "list":
          return (...args: Parameters<Deno.Kv["list"]>) => {
            hooks.before("list");
            return target.list(...args);
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
