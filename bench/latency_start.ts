/**
 * Bench only: `start.ts` exactly as `deno task start` runs it (configuration, forwarding when
 * `FORWARD_URL` and `FORWARD_SECRET` are set, held deliveries, the app, the server), except that
 * every KV call waits `KV_LATENCY_MS` first, like a database tens of milliseconds away.
 *
 * It makes `Deno.openKv` hand out handles wrapped by `instrumentKv(kv, { latency })`, then loads
 * `start.ts`, so `main.ts` builds everything as it always does (its forwarder and the outbox
 * sweep included) on the slowed handle. With `KV_LATENCY_MS` unset or 0 nothing is wrapped.
 *
 * ```sh
 * KV_LATENCY_MS=20 KV_PATH=/tmp/kv.sqlite3 deno run -A bench/latency_start.ts
 * ```
 * @module
 */
import { instrumentKv } from "../lib/store/instrument.ts";

const latencyMs = Number(Deno.env.get("KV_LATENCY_MS") ?? "0");
if (!Number.isFinite(latencyMs) || latencyMs < 0) {
  console.error(`KV_LATENCY_MS "${Deno.env.get("KV_LATENCY_MS")}": give milliseconds, 0 or more`);
  Deno.exit(1);
}
if (latencyMs > 0) {
  const openKv = Deno.openKv;
  // `Deno.openKv` is a configurable getter: replace it before main.ts opens its database.
  Object.defineProperty(Deno, "openKv", {
    configurable: true,
    value: async (path?: string) =>
      instrumentKv(await openKv(path), { before() {}, latency: () => latencyMs }),
  });
}
await import("../start.ts");
