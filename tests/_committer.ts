/** Test helpers for the group committer and commit plans: a database that counts commits. */
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
