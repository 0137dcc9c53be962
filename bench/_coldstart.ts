/**
 * Section 5: cold start. `deno run` of `start.ts` with `deno task start`'s flags and a fresh KV
 * file, from spawn to the first 2xx on `/healthz` (polled every 5 ms). One unmeasured run first
 * warms the module cache.
 * @module
 */
import { spawnServer } from "./_proc.ts";
import { median } from "./_stats.ts";

export interface ColdStart {
  runs: number[];
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export async function measureColdStart(runs: number): Promise<ColdStart> {
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const dir = await Deno.makeTempDir({ prefix: "bench-coldstart-" });
    try {
      const server = await spawnServer("project", dir);
      await server.close();
      if (i > 0) times.push(server.startMs);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  return {
    runs: times,
    medianMs: median(times),
    minMs: Math.min(...times),
    maxMs: Math.max(...times),
  };
}
