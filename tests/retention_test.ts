/**
 * Retention: what holds a raw body or a learner's event expires after `RETENTION_DAYS` (the KV
 * `expireIn` of each write, as documented in `lib/store/keys.ts`), and records are kept.
 */
import { assert, assertEquals } from "./_assert.ts";
import { harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { EVENT_ID_GRACE_MS } from "../lib/store/keys.ts";

const DAY = 86_400_000;

/** `kv`, recording the `expireIn` of every value set (`set`, or an atomic `set` or `mutate`). */
function recording(kv: Deno.Kv) {
  const writes: { prefix: string; expireIn: number | undefined }[] = [];
  const note = (key: Deno.KvKey, options?: { expireIn?: number }) =>
    writes.push({ prefix: String(key[0]), expireIn: options?.expireIn });
  const wrapOp = (op: Deno.AtomicOperation): Deno.AtomicOperation => {
    const proxy: Deno.AtomicOperation = new Proxy(op, {
      get(target, prop) {
        const v = Reflect.get(target, prop);
        if (typeof v !== "function") return v;
        return (...args: unknown[]) => {
          if (prop === "set") note(args[0] as Deno.KvKey, args[2] as { expireIn?: number });
          if (prop === "mutate") {
            for (const m of args as Deno.KvMutation[]) {
              if (m.type === "set") note(m.key, { expireIn: m.expireIn });
            }
          }
          const r = v.apply(target, args);
          return r === target ? proxy : r;
        };
      },
    });
    return proxy;
  };
  const db = new Proxy(kv, {
    get(target, prop) {
      const v = Reflect.get(target, prop);
      if (typeof v !== "function") return v;
      if (prop === "atomic") return () => wrapOp(target.atomic());
      return (...args: unknown[]) => {
        if (prop === "set") note(args[0] as Deno.KvKey, args[2] as { expireIn?: number });
        return v.apply(target, args);
      };
    },
  });
  const expiries = (prefix: string) =>
    writes.filter((w) => w.prefix === prefix).map((w) => w.expireIn);
  return { db, expiries };
}

Deno.test("retention: events, bodies and id pointers expire after RETENTION_DAYS; records stay", async () => {
  const kv = await Deno.openKv(":memory:");
  const { db, expiries } = recording(kv);
  const h = await harness({ RETENTION_DAYS: "7" }, db);
  try {
    const at = Date.parse("2026-11-02T14:15:12.334Z");
    assertEquals((await h.post(lessonWebhook({ at }))).status, 200);
    assertEquals((await h.deliver(progressWebhook({ at }))).status, 200);
    // A progress with no lesson: waits, then is stored unmatched.
    const lone = await h.deliver(progressWebhook({ at: at + 3_600_000, user: 777 }));
    assertEquals(lone.status, 200);
    // A body over 2 KiB (an unknown field makes it so) is stored under its own key.
    const large = { ...lessonWebhook({ at, user: 778 }), notes: "x".repeat(3_000) };
    assertEquals((await h.post(large)).status, 200);

    const retention = 7 * DAY;
    const bodies = expiries("event_bodies");
    assertEquals(bodies, [retention], "the large body only: the others are inside their events");
    const ids = expiries("event_ids");
    assert(ids.length >= 3, `id pointers written: ${ids.length}`);
    assertEquals(ids, ids.map(() => retention + EVENT_ID_GRACE_MS));
    assertEquals(
      expiries("learner_event_ids").every((e) => e === retention + EVENT_ID_GRACE_MS),
      true,
    );
    // An event updated later keeps its original end of life: what is left of the 7 days.
    const events = expiries("events");
    assert(events.length >= 3, `events written: ${events.length}`);
    for (const e of events) {
      assert(e !== undefined && e <= retention && e > retention - DAY, `event expireIn ${e}`);
    }
    // The lone progress's unmatched entry goes with its event.
    const unmatched = expiries("unmatched");
    assert(unmatched.length > 0, "unmatched entry written");
    for (const e of unmatched) {
      assert(e !== undefined && e <= retention && e > retention - DAY, `unmatched expireIn ${e}`);
    }
    await h.project(); // records are stored by the projector
    assert(expiries("records").length > 0, "records written");
    assertEquals(expiries("records").every((e) => e === undefined), true);
  } finally {
    h.close();
    kv.close();
  }
});
