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
 * | `http://localhost…` | a local `denokv` over KV Connect |
 *
 * A database that cannot be opened (a folder, a folder that cannot be created, a file that is not
 * a database) is a {@linkcode ConfigError} naming `KV_PATH`, in one line.
 *
 * @example
 * ```ts
 * const kv = await openKv(config);
 * ```
 * @module
 */
import { retryWhenBusy } from "./store/retry.ts";
import { type Config, ConfigError } from "./config.ts";
import type { WakeMode } from "./hold.ts";

export const DEFAULT_KV_PATH = "./data/kv.sqlite3";

/** Where `config` says the database is, in words for the start-up log. */
export function describeKv(config: Pick<Config, "kvPath" | "onDenoDeploy">): string {
  if (config.kvPath) {
    return isRemote(config.kvPath) ? "remote (KV Connect)" : config.kvPath;
  }
  return config.onDenoDeploy ? "Deno Deploy database" : DEFAULT_KV_PATH;
}

const isRemote = (path: string) => /^https?:\/\//i.test(path);

const firstLine = (err: unknown) =>
  (err instanceof Error ? err.message : String(err)).split("\n")[0].trim();

/** Opens the database `config` names; a failure is a one-line {@linkcode ConfigError}. */
export async function openKv(config: Pick<Config, "kvPath" | "onDenoDeploy">): Promise<Deno.Kv> {
  if (!config.kvPath && config.onDenoDeploy) return await Deno.openKv();
  const path = config.kvPath ?? DEFAULT_KV_PATH;
  const named = config.kvPath ? `KV_PATH "${path}"` : `KV_PATH (unset, so "${path}")`;
  if (path !== ":memory:" && !isRemote(path)) {
    const isFolder = await Deno.stat(path).then((s) => s.isDirectory, () => false);
    if (isFolder) {
      throw new ConfigError(`${named} is a folder: give a file path, such as ${path}/kv.sqlite3`);
    }
    const dir = path.replace(/[\\/][^\\/]*$/, "");
    try {
      if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
    } catch (err) {
      throw new ConfigError(`${named}: its folder cannot be created (${firstLine(err)})`);
    }
  }
  // Deno 2.5 (Deploy's runtime) cannot open a file whose folder is `.`: give it a full path.
  const file = path === ":memory:" || isRemote(path) ? path : absolutePath(path);
  try {
    // Processes started together on one file (`deno serve --parallel`) may find it locked a moment.
    return await retryWhenBusy(() => Deno.openKv(file));
  } catch (err) {
    throw new ConfigError(`${named} cannot be opened (${firstLine(err)})`);
  }
}

/**
 * `path` from the root: as given when it is absolute, else under the working folder. (`node:path`
 * would do it too, but importing it loads Deno's Node.js layer: about 7 MiB of resident memory.)
 */
export function absolutePath(path: string, cwd: string = Deno.cwd()): string {
  if (/^([\\/]|[A-Za-z]:[\\/])/.test(path)) return path;
  return `${cwd}/${path.replace(/^\.[\\/]/, "")}`;
}

/**
 * How a held delivery hears of writes made by other processes on the database `config` names:
 * `kv.watch` on Deno Deploy and remote databases, a poll of the enrollment's key on a local SQLite
 * file (whose watchers do not see other processes' writes), nothing else in memory.
 */
export function wakeModeOf(config: Pick<Config, "kvPath" | "onDenoDeploy">): WakeMode {
  if (!config.kvPath) return config.onDenoDeploy ? "watch" : "poll";
  if (config.kvPath === ":memory:") return "memory";
  return isRemote(config.kvPath) ? "watch" : "poll";
}
