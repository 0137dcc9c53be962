/**
 * A Thinkific delivery simulator against the real app: hundreds of completions (some a fraction
 * of a second apart), both halves shuffled and redelivered, lone progress events, lone lessons and
 * other topics, retried with a growing backoff on any non-2xx answer. Time is virtual: the app's
 * clock follows the simulation.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { rng } from "../bench/_stats.ts"; // the same seeded PRNG as the benchmarks' load

interface Delivery {
  at: number;
  body: Record<string, unknown>;
  attempt: number;
}

async function simulate(seed: number, backoffMs: number) {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
  const h = await harness();
  try {
    const truth = new Map<string, { lessonId: string; lesson: number; percentage: number }>();
    const lone: string[] = [];
    const deliveries: Delivery[] = [];
    const send = (body: Record<string, unknown>, eventAt: number) => {
      const first = eventAt + Math.floor(random() * 5_000); // shuffled: up to 5 s late
      deliveries.push({ at: first, body, attempt: 1 });
      if (random() < 0.15) {
        deliveries.push({ at: first + Math.floor(random() * 90_000), body, attempt: 1 });
      }
    };

    let lessonNo = 1;
    for (const tenant of ["100", "200"]) {
      for (let user = 1; user <= 12; user++) {
        for (const course of [10, 20, 30]) {
          let t = BASE_TIME + Math.floor(random() * 600_000);
          let pct = 0;
          const completions = 1 + Math.floor(random() * 6);
          for (let k = 0; k < completions; k++) {
            // Near-simultaneous completions (50–400 ms apart) a third of the time.
            t += random() < 0.33
              ? 50 + Math.floor(random() * 350)
              : 5_000 + Math.floor(random() * 120_000);
            const skew = random() < 0.7 ? 0 : pick([-1, 1]) * (1 + Math.floor(random() * 20));
            pct = Math.min(100, pct + 5 + Math.floor(random() * 10));
            const lesson = lessonWebhook({ tenant, user, course, at: t, lesson: lessonNo++ });
            const progress = progressWebhook({
              tenant,
              user,
              course,
              at: t + skew,
              percentage: String(pct),
            });
            truth.set(progress.id, {
              lessonId: lesson.id,
              lesson: lesson.payload.lesson.id,
              percentage: pct,
            });
            send(lesson, t);
            send(progress, t + skew);
          }
          if (random() < 0.15) {
            // An admin recalculation: progress with no lesson behind it, far from any completion.
            t += 60_000;
            const p = progressWebhook({ tenant, user, course, at: t, percentage: String(pct) });
            lone.push(p.id);
            send(p, t);
          }
          if (random() < 0.1) {
            t += 60_000;
            send(lessonWebhook({ tenant, user, course, at: t, lesson: lessonNo++ }), t); // re-completion
          }
          if (random() < 0.2) {
            send({
              ...lessonWebhook({ tenant, user, course, at: t }),
              resource: "order",
              action: "created",
            }, t);
          }
        }
      }
    }

    let served = 0;
    while (deliveries.length > 0) {
      deliveries.sort((a, b) => a.at - b.at);
      const batch = deliveries.splice(0, 1 + Math.floor(random() * 8)); // a few at once
      h.clock.now = Math.max(h.clock.now, batch.at(-1)!.at);
      const answers = await Promise.all(batch.map((d) => h.post(d.body)));
      for (const [i, r] of answers.entries()) {
        served++;
        assert(r.status < 500, `5xx: ${JSON.stringify(r.json)}`);
        const d = batch[i];
        if (r.status >= 300 && d.attempt < 15) {
          // Thinkific-like: a growing backoff.
          deliveries.push({
            at: h.clock.now + backoffMs * 2 ** Math.min(d.attempt - 1, 6),
            body: d.body,
            attempt: d.attempt + 1,
          });
        } else {
          assertEquals(r.status, 200, JSON.stringify(r.json));
        }
      }
    }

    const records: Record<string, unknown>[] = [];
    let cursor: string | null = null;
    do {
      const page = await h.get(`/api/records?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
      records.push(...(page.json.records as Record<string, unknown>[]));
      cursor = page.json.cursor as string | null;
    } while (cursor);

    const wrong = records.filter((r) =>
      truth.get(r.progress_event_id as string)?.lessonId !== r.lesson_event_id
    );
    assertEquals(wrong, [], `seed ${seed}: wrong pairs`);
    assertEquals(records.length, truth.size, `seed ${seed}: every true pair recorded once`);
    for (const r of records) {
      const t = truth.get(r.progress_event_id as string)!;
      assertEquals([r.lesson_id, r.percentage_completed], [t.lesson, t.percentage]);
    }
    const unmatched = (await h.get("/api/unmatched?limit=500")).json.events as {
      event_id: string;
    }[];
    assertEquals(
      unmatched.map((u) => u.event_id).sort(),
      [...lone].sort(),
      `seed ${seed}: unmatched`,
    );
    return { pairs: truth.size, lone: lone.length, served };
  } finally {
    h.close();
  }
}

for (const [seed, backoffMs] of [[1, 30_000], [2, 30_000], [3, 1_000], [4, 200], [5, 200]]) {
  Deno.test(`simulator: shuffled, redelivered load, seed ${seed}, retries from ${backoffMs} ms`, async () => {
    const { pairs, served } = await simulate(seed, backoffMs);
    assert(pairs > 150, `only ${pairs} pairs`);
    assert(served > 2 * pairs);
  });
}
