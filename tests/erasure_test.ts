/**
 * Erasing a learner: after `DELETE /api/learners/:tenantId/:userId` the database is what it would
 * be had the learner never been seen (the same deliveries replayed without theirs), but for the
 * tombstone, zeroed counters and course and lesson names; a redelivery does not bring them back.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  BASE_TIME,
  dump,
  harness,
  idleForwarder,
  lessonWebhook,
  progressWebhook,
  type TestInit,
  type Webhook,
} from "./_helpers.ts";
import { parseConfig } from "../lib/config.ts";
import { createProjector } from "../lib/projector.ts";
import { createApp } from "../lib/http/app.ts";
import { courseCounterKey, erasedKey, eventBodyKey } from "../lib/store/keys.ts";
import { eraseLearner } from "../lib/store/erasure.ts";

const T = BASE_TIME;
const VICTIM = { tenant: "48213", user: 1, email: "victim@example.com" };

async function service(env: Record<string, string> = {}) {
  const kv = await Deno.openKv(":memory:");
  const config = parseConfig({
    KV_PATH: ":memory:",
    GIVE_UP_AFTER_ATTEMPTS: "2",
    HOLD_MS: "0",
    ...env,
  });
  const now = () => T + 3_600_000;
  const forwarder = idleForwarder();
  const projector = createProjector({ kv, destinations: forwarder.destinations, now });
  const app = createApp({ kv, config, forwarder, projector, log: () => {}, now });
  const request = async (path: string, init: TestInit = {}) => {
    const res = await app.request(path, init);
    return { status: res.status, json: await res.json() };
  };
  const post = (body: unknown) =>
    request("/webhooks/thinkific", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
  /** Projects the records' derived views, as a read through the app does first. */
  const project = () => projector.drain();
  return { kv, app, request, post, project };
}

function as(who: { tenant: string; user: number; email: string }, body: Webhook): Webhook {
  body.tenant_id = who.tenant;
  body.payload.user = { ...body.payload.user, id: who.user, email: who.email };
  return body;
}

/** The deliveries of a school's story: who, and the body of each delivery, in order. */
function story() {
  const out: { user: number; tenant: string; body: Webhook }[] = [];
  const add = (who: typeof VICTIM, body: Webhook) =>
    out.push({ user: who.user, tenant: who.tenant, body: as(who, body) });
  const other = { tenant: "48213", user: 2, email: "ada@example.com" };
  const sameIdElsewhere = { tenant: "777", user: 1, email: "kept@example.com" };
  // The victim: 30 records over two courses (more than one erasure batch), lessons in both orders.
  for (let i = 0; i < 30; i++) {
    const at = T + i * 60_000;
    const course = i % 3 ? 10 : 20;
    const lesson = lessonWebhook({ course, at, lesson: 100 + (i % 12) });
    const progress = progressWebhook({ course, at, percentage: String(i + 1) });
    for (const b of i % 2 ? [lesson, progress] : [progress, lesson]) {
      add(VICTIM, structuredClone(b));
    }
  }
  // An unmatched progress (gives up on its second delivery), a pending one, a lone lesson.
  const lone = progressWebhook({ course: 10, at: T + 99 * 60_000, percentage: "80" });
  add(VICTIM, lone);
  add(VICTIM, structuredClone(lone));
  add(VICTIM, progressWebhook({ course: 30, at: T + 120 * 60_000, percentage: "5" }));
  add(VICTIM, lessonWebhook({ course: 10, at: T + 150 * 60_000, lesson: 999 }));
  // Another learner of the same school and courses, and user 1 of another school.
  // (Course ids are Thinkific-wide: another school has other courses.)
  for (const [who, n, course] of [[other, 4, 10], [sameIdElsewhere, 2, 40]] as const) {
    for (let i = 0; i < n; i++) {
      const at = T + i * 90_000 + 7;
      add(who, lessonWebhook({ course, at, lesson: 100 + i }));
      add(who, progressWebhook({ course, at, percentage: String(10 * (i + 1)) }));
    }
    const gaveUp = progressWebhook({ course, at: T + 200 * 60_000, percentage: "90" });
    add(who, gaveUp);
    add(who, structuredClone(gaveUp));
  }
  return out;
}

/** A dump to compare: no versionstamps, no zero counters, no tombstones. */
async function state(kv: Deno.Kv) {
  return (await dump(kv))
    .filter((e) => e.key[0] !== "erased")
    .filter((e) => e.key[0] !== "projector") // when the projector last ran: no one's data
    .filter((e) => !(e.value instanceof Deno.KvU64 && e.value.value === 0n))
    .map((e) => [e.key, e.value instanceof Deno.KvU64 ? e.value.value : e.value]);
}

Deno.test("erasure: no trace of the learner remains, counts reported, idempotent, no comeback", async () => {
  const deliveries = story();
  const full = await service();
  const without = await service();
  try {
    for (const d of deliveries) {
      const r = await full.post(d.body);
      assert(r.status < 500, JSON.stringify(r.json));
      if (d.tenant !== VICTIM.tenant || d.user !== VICTIM.user) await without.post(d.body);
    }
    const records = (await full.request("/api/records?user_id=1&tenant_id=48213")).json.records;
    assertEquals(records.length, 30);

    // The unmatched event and its body expired (RETENTION_DAYS): its id pointer and entry remain.
    const expired = deliveries[60].body;
    for await (const e of full.kv.list({ prefix: ["events", "48213", 1] })) {
      if (e.key.at(-1) !== expired.id) continue; // an event's key ends with its id
      await full.kv.atomic().delete(e.key).delete(eventBodyKey("48213", expired.id)).commit();
    }

    const erased = await full.request("/api/learners/48213/1", { method: "DELETE" });
    assertEquals(erased.status, 200);
    assertEquals(erased.json, {
      status: "erased",
      tenant_id: "48213",
      user_id: 1,
      removed: {
        events: 62, // 30 pairs, the pending progress, the lone lesson (the unmatched one expired)
        records: 30,
        enrollments: 3,
        learner_entries: 2,
        unmatched: 2, // the progress that gave up, and the lone lesson's entry (listed later)
        outbox: 30,
      },
    });

    const after = await state(full.kv);
    await without.project();
    const expected = await state(without.kv);
    // Course and lesson names stay (no personal data): keep only those the other story has.
    const names = new Set(expected.map(([k]) => JSON.stringify(k)));
    const kept = after.filter(([k]) =>
      !((k as Deno.KvKey)[0] === "dash_course" || (k as Deno.KvKey)[0] === "dash_lesson") ||
      names.has(JSON.stringify(k))
    );
    assertEquals(kept, expected);
    assert(
      !JSON.stringify(after, (_, v) => typeof v === "bigint" ? String(v) : v).includes("victim@"),
    );

    // Again: nothing more to remove.
    const again = await full.request("/api/learners/48213/1", { method: "DELETE" });
    assertEquals(Object.values(again.json.removed), [0, 0, 0, 0, 0, 0]);

    // Redeliveries (a paired event, the pending progress) and a new event are refused, not stored.
    const before = await state(full.kv);
    for (const d of [deliveries[0], deliveries[62], deliveries[63]]) {
      assertEquals(d.user, 1);
      const r = await full.post(d.body);
      assertEquals([r.status, r.json.status], [200, "erased"]);
    }
    const fresh = as(VICTIM, lessonWebhook({ course: 10, at: T + 500 * 60_000 }));
    assertEquals((await full.post(fresh)).json.status, "erased");
    assertEquals(await state(full.kv), before);
  } finally {
    full.kv.close();
    without.kv.close();
  }
});

Deno.test("erasure: bad learner paths are 400s naming the parameter; the bearer token applies", async () => {
  const s = await service({ API_TOKEN: "erase-token" });
  try {
    const auth = { authorization: "Bearer erase-token" };
    const none = await s.request("/api/learners/48213/1", { method: "DELETE" });
    assertEquals(none.status, 401);
    for (
      const [path, name] of [["48213/abc", "userId"], ["48213/0", "userId"], [
        "a%20b/1",
        "tenantId",
      ]]
    ) {
      const r = await s.request(`/api/learners/${path}`, { method: "DELETE", headers: auth });
      assertEquals(r.status, 400, path);
      assert(String(r.json.error).includes(name), r.json.error);
    }
    const ok = await s.request("/api/learners/48213/5", { method: "DELETE", headers: auth });
    assertEquals([ok.status, ok.json.removed.events], [200, 0]);
  } finally {
    s.kv.close();
  }
});

Deno.test("erasure: a delivery in flight when the tombstone lands writes nothing", async () => {
  const real = await Deno.openKv(":memory:");
  let armed = true;
  // The erasure's tombstone is written between the collator's reads and its commit.
  const kv = new Proxy(real, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            if (armed) {
              armed = false;
              await target.set(erasedKey("48213", 5000049), {
                erased_at: new Date().toISOString(),
              });
            }
            return await commit();
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const h = await harness({}, kv);
  try {
    const r = await h.post(lessonWebhook());
    assertEquals([r.status, r.json.status], [200, "erased"]);
    assertEquals((await dump(real)).map((e) => e.key[0]), ["erased"]);
  } finally {
    real.close();
  }
});

/** Whether a key or value (walked, raw bodies decoded) names the user id or holds the email. */
function names(value: unknown, user: number, email: string): boolean {
  if (value instanceof Uint8Array) {
    const text = new TextDecoder().decode(value);
    try {
      return names(JSON.parse(text), user, email);
    } catch {
      return text.includes(email);
    }
  }
  if (value instanceof Deno.KvU64) return false;
  if (typeof value === "number") return value === user;
  if (typeof value === "string") return value === String(user) || value.includes(email);
  if (Array.isArray(value)) return value.some((v) => names(v, user, email));
  if (value && typeof value === "object") {
    return Object.values(value).some((v) => names(v, user, email));
  }
  return false;
}

/** Every entry of the database but the learner's tombstone that names them. */
async function traces(kv: Deno.Kv, who: { tenant: string; user: number; email: string }) {
  const tombstone = JSON.stringify(erasedKey(who.tenant, who.user));
  return (await dump(kv)).filter((e) =>
    JSON.stringify(e.key) !== tombstone &&
    (names(e.key, who.user, who.email) || names(e.value, who.user, who.email))
  ).map((e) => e.key);
}

Deno.test("erasure: a learner who was never counted lowers no learner count", async () => {
  const s = await service();
  try {
    const paired = { tenant: "48213", user: 3, email: "paired@example.com" };
    const lone = { tenant: "48213", user: 4, email: "lone@example.com" };
    // C1 (11): one paired learner, one with a lone lesson. C2 (12): only a lone lesson.
    for (
      const b of [
        as(paired, lessonWebhook({ course: 11, at: T })),
        as(paired, progressWebhook({ course: 11, at: T, percentage: "10" })),
        as(lone, lessonWebhook({ course: 11, at: T + 60_000 })),
        as(lone, lessonWebhook({ course: 12, at: T + 60_000 })),
      ]
    ) assert((await s.post(b)).status < 500);
    // The counters themselves: a course known only from lone lessons may not be listed.
    const learners = async () => {
      await s.project();
      const got = await s.kv.getMany<Deno.KvU64[]>(
        [11, 12].map((c) => courseCounterKey(c, "learners")),
      );
      return Object.fromEntries(got.map((g, i) => [11 + i, g.value?.value ?? 0n]));
    };
    assertEquals(await learners(), { 11: 1n, 12: 0n });
    assertEquals((await s.request("/api/learners/48213/4", { method: "DELETE" })).status, 200);
    assertEquals(await learners(), { 11: 1n, 12: 0n });
    // A real learner of C2 later counts as one, not as zero after a wrap.
    await s.post(as(paired, lessonWebhook({ course: 12, at: T + 120_000 })));
    await s.post(as(paired, progressWebhook({ course: 12, at: T + 120_000, percentage: "5" })));
    assertEquals(await learners(), { 11: 1n, 12: 1n });
  } finally {
    s.kv.close();
  }
});

Deno.test("erasure: nothing names the learner afterwards, whatever the history's length", async () => {
  const victim = { tenant: "48213", user: 8675309, email: "victim@example.com" };
  const other = { tenant: "48213", user: 2, email: "ada@example.com" };
  const deliveries: { who: typeof victim; body: Webhook }[] = [];
  const add = (who: typeof victim, body: Webhook) => deliveries.push({ who, body: as(who, body) });
  const minute = 60_000;
  // Course 50: a record, then a lone progress (an admin recalculation), then 30 more records: the
  // first record's activity key is older than the 24 progress values the summary keeps.
  add(victim, lessonWebhook({ course: 50, at: T, lesson: 1 }));
  add(victim, progressWebhook({ course: 50, at: T, percentage: "1" }));
  add(victim, progressWebhook({ course: 50, at: T + 30 * minute, percentage: "2" }));
  for (let i = 0; i < 30; i++) {
    const at = T + (60 + i) * minute;
    add(victim, lessonWebhook({ course: 50, at, lesson: 2 + i }));
    add(victim, progressWebhook({ course: 50, at, percentage: String(3 + i) }));
  }
  // Course 51: 205 distinct lessons (more than the summary's 200), then the first one again.
  for (let i = 0; i <= 205; i++) {
    const at = T + i * minute;
    add(victim, lessonWebhook({ course: 51, at, lesson: 1000 + (i % 205) }));
    add(victim, progressWebhook({ course: 51, at, percentage: (i / 3).toFixed(1) }));
  }
  // Course 52: a lone lesson, a progress that gives up, a pending progress: all three expire.
  add(victim, lessonWebhook({ course: 52, at: T, lesson: 7 }));
  const gaveUp = progressWebhook({ course: 52, at: T + 10 * minute, percentage: "40" });
  add(victim, gaveUp);
  add(victim, structuredClone(gaveUp));
  add(victim, progressWebhook({ course: 52, at: T + 20 * minute, percentage: "50" }));
  // Course 53: only a lone lesson (the learner was never counted there).
  add(victim, lessonWebhook({ course: 53, at: T, lesson: 9 }));
  // Another learner in the same courses and lessons.
  for (const [course, lesson] of [[50, 1], [51, 1000], [51, 1001], [52, 7], [53, 9]]) {
    const at = T + 3 * minute + course;
    add(other, lessonWebhook({ course, at, lesson }));
    add(other, progressWebhook({ course, at, percentage: "10" }));
  }

  const full = await service();
  const without = await service();
  try {
    for (const d of deliveries) {
      const r = await full.post(d.body);
      assert([200, 409].includes(r.status), JSON.stringify(r.json));
      if (d.who !== victim) await without.post(d.body);
    }
    // Course 52's events expire (RETENTION_DAYS): their values and unmatched entries go, their
    // event-id pointers stay 30 days longer.
    const expired: string[] = [];
    for await (const e of full.kv.list({ prefix: ["events", "48213", 8675309, 52] })) {
      const id = e.key.at(-1) as string; // an event's key ends with its id
      expired.push(id);
      await full.kv.atomic().delete(e.key).delete(eventBodyKey("48213", id)).commit();
    }
    assertEquals(expired.length, 3);
    for await (const e of full.kv.list<{ event_id: string }>({ prefix: ["unmatched"] })) {
      if (expired.includes(e.value.event_id)) await full.kv.delete(e.key);
    }

    const r = await full.request(`/api/learners/48213/${victim.user}`, { method: "DELETE" });
    assertEquals(r.status, 200);
    assertEquals(await traces(full.kv, victim), []);

    const after = await state(full.kv);
    await without.project();
    const expected = await state(without.kv);
    const keep = new Set(expected.map(([k]) => JSON.stringify(k)));
    assertEquals(
      after.filter(([k]) =>
        !((k as Deno.KvKey)[0] === "dash_course" || (k as Deno.KvKey)[0] === "dash_lesson") ||
        keep.has(JSON.stringify(k))
      ),
      expected,
    );

    // A redelivery of an expired event is refused as the learner's, and stores nothing.
    const lone = deliveries.find((d) => d.body.id === expired[0])!;
    const again = await full.post(lone.body);
    assertEquals([again.status, again.json.status], [200, "erased"]);
    assertEquals(await traces(full.kv, victim), []);
  } finally {
    full.kv.close();
    without.kv.close();
  }
});

for (
  const race of [
    {
      name: "racing the erasure is answered erased, never 5xx (no recent records)",
      // The erasure runs to its end between the redelivery's read of its event and of its record
      // (stored, or still pending in its projection entry).
      call: "getMany",
      table: "records",
      recent: false,
    },
    {
      name: "of a record made lately, racing the erasure, is answered erased",
      // The erasure runs to its end just before the redelivery reads the learner's tombstone.
      call: "get",
      table: "erased",
      recent: true,
    },
  ] as const
) {
  Deno.test(`erasure: a redelivery ${race.name}`, async () => {
    const real = await Deno.openKv(":memory:");
    let erasing: Promise<unknown> | null = null;
    const kv = new Proxy(real, {
      get(target, prop) {
        if (prop === race.call) {
          return async (arg: Deno.KvKey | Deno.KvKey[]) => {
            const first = race.call === "get" ? arg as Deno.KvKey : (arg as Deno.KvKey[])[0];
            if (first?.[0] === race.table && erasing === null) {
              erasing = eraseLearner(real, { tenantId: "48213", userId: 5000049 }, {
                destinations: [],
                now: Date.now(),
              });
              await erasing;
            }
            return await (target[race.call] as (a: typeof arg) => Promise<unknown>).call(
              target,
              arg,
            );
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const h = await harness({}, kv, race.recent ? {} : { recent: false });
    try {
      const lesson = lessonWebhook();
      assertEquals((await h.post(lesson)).status, 200);
      assertEquals((await h.post(progressWebhook())).json.status, "collated");
      const r = await h.post(lesson);
      assert(erasing !== null, `the redelivery read ${race.table}`);
      assertEquals([r.status, r.json.status], [200, "erased"]);
    } finally {
      real.close();
    }
  });
}
