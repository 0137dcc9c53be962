/**
 * Opens the Deno KV database chosen by `KV_PATH`.
 *
 * | `KV_PATH` | database |
 * | --- | --- |
 * | unset, on Deno Deploy | the app's assigned database (`Deno.openKv()`) |
 * | unset, elsewhere | `./data/kv.sqlite3` |
 * | `:memory:` | in memory (tests) |
 * | a file path | SQLite file (its folder is created) |
 * | `https://…` | a remote database over KV Connect (`DENO_KV_ACCESS_TOKEN`) |
 *
 * @example
 * ```ts
 * const kv = await openKv(config);
 * ```
 * @module
 */
import type { Config } from "./config.ts";
import type { WakeMode } from "./hold.ts";

export const DEFAULT_KV_PATH = "./data/kv.sqlite3";

/** Where `config` says the database is, in words for the start-up log. */
export function describeKv(config: Pick<Config, "kvPath" | "onDenoDeploy">): string {
  if (config.kvPath) {
    return config.kvPath.startsWith("https://") ? "remote (KV Connect)" : config.kvPath;
  }
  return config.onDenoDeploy ? "Deno Deploy database" : DEFAULT_KV_PATH;
}

/** Opens the database `config` names. */
export async function openKv(config: Pick<Config, "kvPath" | "onDenoDeploy">): Promise<Deno.Kv> {
  if (!config.kvPath && config.onDenoDeploy) return await Deno.openKv();
  const path = config.kvPath ?? DEFAULT_KV_PATH;
  if (path !== ":memory:" && !/^https?:\/\//.test(path)) {
    const dir = path.replace(/[\\/][^\\/]*$/, "");
    if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
  }
  return await Deno.openKv(path);
}

/**
 * How a held delivery hears of writes made by other processes on the database `config` names:
 * `kv.watch` on Deno Deploy and remote databases, a poll of the enrollment's key on a local SQLite
 * file (whose watchers do not see other processes' writes), nothing else in memory.
 */
export function wakeModeOf(config: Pick<Config, "kvPath" | "onDenoDeploy">): WakeMode {
  if (!config.kvPath) return config.onDenoDeploy ? "watch" : "poll";
  if (config.kvPath === ":memory:") return "memory";
  return /^https?:\/\//.test(config.kvPath) ? "watch" : "poll";
}
