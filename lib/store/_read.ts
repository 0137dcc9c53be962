/**
 * Reads of many keys: Deno KV's `getMany` takes at most {@linkcode KV_MAX_GET_MANY} keys, so
 * longer lists are read in batches, one after another.
 *
 * @example
 * ```ts
 * const entries = await readAll<OutboxEntry>(kv, ids.map(outboxKey)); // in the order of `keys`
 * ```
 * @module
 */
import { KV_MAX_GET_MANY } from "./limits.ts";

/** Reads `keys` in `getMany` batches; the entries come in the order of `keys`. */
export async function readAll<T>(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<T>[]> {
  const out: Deno.KvEntryMaybe<T>[] = [];
  for (let i = 0; i < keys.length; i += KV_MAX_GET_MANY) {
    out.push(...await kv.getMany<T[]>(keys.slice(i, i + KV_MAX_GET_MANY)));
  }
  return out;
}
