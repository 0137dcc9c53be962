/**
 * Test helpers for the projector: records whose projections are left pending (posted through an
 * app whose projector never runs), and how many wait.
 * @module
 */
import { assertEquals } from "./_assert.ts";
import { type Harness, lessonWebhook, nextId, progressWebhook, signedInit } from "./_helpers.ts";
import { createApp } from "../lib/http/app.ts";
import type { Projector } from "../lib/projector.ts";
import { PROJECTION_PREFIX } from "../lib/store/keys.ts";

/** One exact pair: its learner, course, lesson, time and percentage. */
export interface PairSpec {
  user: number;
  course?: number;
  lesson: number;
  at: number;
  percentage?: string;
}

/**
 * Posts `n` exact pairs (the `i`-th as `pair(i)` says, lesson first) on `h`'s database, each
 * answered 200, through an app whose projector never runs: their projections are left pending.
 */
export async function pairsLeftPending(h: Harness, n: number, pair: (i: number) => PairSpec) {
  const inert: Projector = { destinations: [], drain: () => Promise.resolve(), kick() {} };
  const app = createApp({ kv: h.kv, config: h.config, log: () => {}, projector: inert });
  for (let i = 0; i < n; i++) {
    const { user, course, lesson, at, percentage } = pair(i);
    for (
      const body of [
        lessonWebhook({ user, course, lesson, at, id: nextId() }),
        progressWebhook({ user, course, at, percentage, id: nextId() }),
      ]
    ) {
      const res = await app.request("/webhooks/thinkific", await signedInit(body));
      await res.body?.cancel();
      assertEquals(res.status, 200, `pair ${i}`);
    }
  }
}

/** How many projection entries wait. */
export async function pendingProjections(kv: Deno.Kv): Promise<number> {
  return (await Array.fromAsync(kv.list({ prefix: PROJECTION_PREFIX }))).length;
}
