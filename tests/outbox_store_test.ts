/**
 * The transactional outbox's store (lib/store/outbox.ts), through its functions and
 * `GET /api/outbox`: an entry per record and destination, pending and due at once; a lease takes
 * the oldest due entries, at most `limit`, in commits within Deno KV's limits, and moves them to the
 * end of the lease; a batch that loses a race is re-read and retried without what was taken
 * meanwhile; settling records delivered (kept for the retention time), failed (due again) or dead,
 * leaving an entry that another process leased again to it; a dead entry is requeued; the listings
 * page oldest first.
 */
import { assert, assertEquals } from "./_assert.ts";
import { harness } from "./_helpers.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import {
  addOutboxEntries,
  LEASE_MS,
  type Leased,
  leaseDue,
  listOutbox,
  MESSAGE_ID_PART,
  messageIdOf,
  nextDue,
  requeue,
  settle,
  type Settlement,
} from "../lib/store/outbox.ts";
import {
  outboxDueKey,
  type OutboxEntry,
  outboxKey,
  type StoredOutboxEntry,
} from "../lib/store/keys.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { createForwarder, handlerDestination } from "../lib/forward/forwarder.ts";

const T0 = Date.parse("2026-11-29T12:00:00.000Z");
const DAY = 86_400_000;

function recordOf(n: number, over: Partial<LessonProgressRecord> = {}): LessonProgressRecord {
  return {
    tenant_id: "48213",
    user_id: 5000049,
    user_email: "ada@example.com",
    course_id: 2100013,
    course_name: "Watercolor for beginners",
    enrollment_id: 90000042,
    lesson_id: 24017,
    lesson_name: "Mixing colours",
    lesson_type: "Video",
    chapter_id: 7013,
    chapter_name: "Basics",
    completed_at: "2026-11-29T11:59:00.000Z",
    percentage_completed: 17.5,
    previous_percentage_completed: null,
    first_completion: true,
    progress_event_id: `2026112912000000${String(n).padStart(7, "0")}`,
    lesson_event_id: `2026112911590000${String(n).padStart(7, "0")}`,
    skew_ms: 12,
    collated_at: "2026-11-29T12:00:00.000Z",
    ...over,
  };
}

/** Writes one entry for `crm` per record `0…n-1`, the n-th due at `T0 + n`. Returns their ids. */
async function seed(kv: Deno.Kv, n: number, over: Partial<LessonProgressRecord> = {}) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const record = recordOf(i, over);
    const op = kv.atomic();
    addOutboxEntries(op, record, ["crm"], T0 + i);
    assert((await op.commit()).ok);
    ids.push(`crm:${messageIdOf(record)}`);
  }
  return ids;
}

async function entry(kv: Deno.Kv, id: string): Promise<StoredOutboxEntry | null> {
  return (await kv.get<StoredOutboxEntry>(outboxKey(id))).value;
}

async function dueKeys(kv: Deno.Kv) {
  return (await Array.fromAsync(kv.list<string>({ prefix: ["outbox_due"] }))).map((e) => e.key);
}

const takeAll = { limit: 100, take: () => true };
const delivered = (leased: Leased): Settlement => ({ leased, outcome: "delivered" });

async function withKv(body: (kv: Deno.Kv) => Promise<void>) {
  const kv = await Deno.openKv(":memory:");
  try {
    await body(kv);
  } finally {
    kv.close();
  }
}

Deno.test("outbox store: message ids escape '.' as '..' and '_' as '.u', so no two records share one", () => {
  const id = (tenant_id: string, progress_event_id: string) =>
    messageIdOf({ tenant_id, progress_event_id });
  assertEquals(id("48213", "2026112912"), "msg_48213_2026112912");
  assertEquals(id("a.b", "c"), "msg_a..b_c");
  assertEquals(id("a_b", "c"), "msg_a.ub_c");
  assertEquals(id("a", "b._c"), "msg_a_b...uc");
  assertEquals(id("x-y", "1.2_3"), "msg_x-y_1..2.u3");
  const part = new RegExp(`^msg_${MESSAGE_ID_PART.source}_${MESSAGE_ID_PART.source}$`);
  for (const m of ["msg_a..b_c", "msg_a.ub_c", "msg_a_b...uc"]) assert(part.test(m), m);
});

Deno.test("outbox store: a record gets one pending entry per destination, due at once, in its own commit", async () => {
  await withKv(async (kv) => {
    const record = recordOf(1);
    const op = kv.atomic();
    addOutboxEntries(op, record, ["crm", "webhook"], T0);
    assert((await op.commit()).ok);
    const messageId = messageIdOf(record);
    for (const destination of ["crm", "webhook"]) {
      assertEquals(await entry(kv, `${destination}:${messageId}`), {
        id: `${destination}:${messageId}`,
        destination,
        messageId,
        record,
        status: "pending",
        attempts: 0,
        dueAt: T0,
        lastError: null,
        createdAt: T0,
        deliveredAt: null,
        deadAt: null,
      });
    }
    assertEquals(await dueKeys(kv), [
      outboxDueKey(T0, `crm:${messageId}`),
      outboxDueKey(T0, `webhook:${messageId}`),
    ]);
    assertEquals(await nextDue(kv), T0);
    // The same record again: its entries exist, so the commit is refused.
    const again = kv.atomic();
    addOutboxEntries(again, record, ["crm"], T0 + 5);
    assertEquals((await again.commit()).ok, false);
    // No destination, no entry.
    const none = kv.atomic();
    addOutboxEntries(none, recordOf(2), [], T0);
    assert((await none.commit()).ok);
    assertEquals((await dueKeys(kv)).length, 2);
  });
});

Deno.test("outbox store: a lease takes at most `limit` due entries, oldest first, and makes them due at the lease's end", async () => {
  await withKv(async (kv) => {
    const ids = await seed(kv, 5);
    assertEquals(await nextDue(kv), T0);
    const asked: string[] = [];
    const now = T0 + 3; // entries 0…3 are due, entry 4 is not yet
    const { leased, contended } = await leaseDue(kv, now, {
      limit: 2,
      take: (id) => (asked.push(id), id !== ids[0]),
    });
    assertEquals(asked, ids.slice(0, 3), "asked in due order, until the limit was taken");
    assertEquals(leased.map((l) => l.value.id), [ids[1], ids[2]]);
    assertEquals(contended, false);
    for (const l of leased) {
      assertEquals(l.value.dueAt, now + LEASE_MS);
      assertEquals(l.value.status, "pending");
      assertEquals(l.value.attempts, 0);
      assertEquals(await entry(kv, l.value.id), l.value);
      assertEquals((await kv.get(l.key)).versionstamp, l.versionstamp);
    }
    assertEquals(await dueKeys(kv), [
      outboxDueKey(T0, ids[0]),
      outboxDueKey(T0 + 3, ids[3]),
      outboxDueKey(T0 + 4, ids[4]),
      outboxDueKey(now + LEASE_MS, ids[1]),
      outboxDueKey(now + LEASE_MS, ids[2]),
    ]);
    // Everything due now, without a limit worth the name: entry 4 is not due.
    const rest = await leaseDue(kv, now, takeAll);
    assertEquals(rest.leased.map((l) => l.value.id), [ids[0], ids[3]]);
    assertEquals(await nextDue(kv), T0 + 4);
    // Leased entries are not due again before their lease ends, then they are.
    assertEquals((await leaseDue(kv, now + LEASE_MS - 1, takeAll)).leased.length, 1);
    assertEquals((await leaseDue(kv, now + LEASE_MS, takeAll)).leased.length, 4);
  });
});

Deno.test("outbox store: a due key whose entry is gone, settled or leased again is skipped", async () => {
  await withKv(async (kv) => {
    const ids = await seed(kv, 4);
    const [gone, done, moved, fine] = ids;
    await kv.delete(outboxKey(gone));
    const [l] = (await leaseDue(kv, T0 + 1, { limit: 1, take: (id) => id === done })).leased;
    await settle(kv, [delivered(l)], T0 + 1, DAY);
    // Stale due keys, as a process that read the index before these changes would see them.
    const movedEntry = (await entry(kv, moved))!;
    await kv.set(outboxKey(moved), { ...movedEntry, dueAt: T0 + 2 * LEASE_MS });
    await kv.set(outboxDueKey(T0, done), done);
    // Past the delivered entry's last due time (the end of its lease), before the moved one's.
    const { leased } = await leaseDue(kv, T0 + 1 + LEASE_MS, takeAll);
    assertEquals(leased.map((l) => l.value.id), [fine]);
    assertEquals((await entry(kv, done))!.status, "delivered");
    assertEquals((await entry(kv, moved))!.dueAt, T0 + 2 * LEASE_MS);
  });
});

Deno.test("outbox store: one lease pass looks at no more than 2000 due keys", async () => {
  await withKv(async (kv) => {
    for (let from = 0; from < 2500; from += 500) {
      const op = kv.atomic();
      for (let i = from; i < from + 500; i++) op.set(outboxDueKey(T0, `busy:${i}`), `busy:${i}`);
      assert((await op.commit()).ok);
    }
    let asked = 0;
    const { leased } = await leaseDue(kv, T0, { limit: 100, take: () => (asked++, false) });
    assertEquals([leased.length, asked], [0, 2000]);
  });
});

Deno.test("outbox store: 150 entries, or 100 entries of 10 KB, are leased and settled in commits Deno KV accepts", async () => {
  // Deno KV takes 100 checks and 800 KiB in one commit; "水" is 2 bytes in a stored string.
  for (const [n, over] of [[150, {}], [100, { lesson_name: "水".repeat(5_000) }]] as const) {
    await withKv(async (kv) => {
      const ids = await seed(kv, n, over);
      const { leased } = await leaseDue(kv, T0 + n, { limit: n, take: () => true });
      assertEquals(leased.map((l) => l.value.id), ids, `${n} entries`);
      assertEquals(await settle(kv, leased.map(delivered), T0 + n, DAY), n);
      for (const id of ids) assertEquals((await entry(kv, id))!.status, "delivered", id);
      assertEquals(await dueKeys(kv), []);
    });
  }
});

/** `real`, with `before` run (and awaited) before each commit reaches it. */
function beforeCommits(real: Deno.Kv, before: (n: number) => Promise<void>) {
  let commits = 0;
  const kv = instrumentKv(real, { before() {}, holdCommit: () => before(++commits) });
  return { kv, commits: () => commits };
}

Deno.test("outbox store: a lease that loses a race is retried without the entries the other process took", async () => {
  await withKv(async (real) => {
    const ids = await seed(real, 3);
    let other: Leased[] = [];
    const { kv, commits } = beforeCommits(real, async (n) => {
      // Between this process's read and its commit, another one leases the first entry.
      if (n === 1) other = (await leaseDue(real, T0 + 5, { limit: 1, take: () => true })).leased;
    });
    const { leased, contended } = await leaseDue(kv, T0 + 5, takeAll);
    assertEquals(other.map((l) => l.value.id), [ids[0]]);
    assertEquals(leased.map((l) => l.value.id), [ids[1], ids[2]]);
    assertEquals(contended, true);
    assertEquals(commits(), 2);
    // Each leased entry is what is stored, so its settlement's check holds.
    assertEquals(await settle(real, [...other, ...leased].map(delivered), T0 + 6, DAY), 3);
  });
});

Deno.test("outbox store: a lease that loses every race gives up after a few tries, saying it was contended", async () => {
  await withKv(async (real) => {
    const [id] = await seed(real, 1);
    const { kv, commits } = beforeCommits(real, async () => {
      // Someone rewrites the entry (as it is) before every commit: each check fails.
      await real.set(outboxKey(id), await entry(real, id));
    });
    const { leased, contended } = await leaseDue(kv, T0, takeAll);
    assertEquals([leased, contended], [[], true]);
    assert(commits() >= 2 && commits() <= 4, `${commits()} tries`);
    assertEquals((await entry(real, id))!.dueAt, T0, "not leased");
  });
});

Deno.test("outbox store: settling records delivered, retried and dead entries", async () => {
  await withKv(async (kv) => {
    const ids = await seed(kv, 3);
    const now = T0 + 100;
    const { leased } = await leaseDue(kv, T0 + 2, takeAll);
    const long = "x".repeat(600);
    const recorded = await settle(
      kv,
      [
        delivered(leased[0]),
        { leased: leased[1], outcome: "failed", error: long, retryInMs: 30_000 },
        { leased: leased[2], outcome: "failed", error: "HTTP 500", retryInMs: null },
      ],
      now,
      7 * DAY,
    );
    assertEquals(recorded, 3);
    const [done, retried, dead] = await Promise.all(ids.map((id) => entry(kv, id)));
    const base = (i: number) => ({ ...leased[i].value, attempts: 1 });
    // A delivered entry keeps its bookkeeping, not its record (stored under ["records", …]).
    const { record: _record, ...kept } = base(0);
    assertEquals(done, { ...kept, status: "delivered", deliveredAt: now, lastError: null });
    assertEquals(retried, { ...base(1), dueAt: now + 30_000, lastError: "x".repeat(500) });
    assertEquals(dead, { ...base(2), status: "dead", deadAt: now, lastError: "HTTP 500" });
    assertEquals(await dueKeys(kv), [outboxDueKey(now + 30_000, ids[1])]);
    assertEquals(await nextDue(kv), now + 30_000);
    const dead1 = await listOutbox(kv, { status: "dead", limit: 10 });
    assertEquals(dead1, { entries: [dead as OutboxEntry], cursor: null });
    const pending = await listOutbox(kv, { status: "pending", limit: 10 });
    assertEquals(pending, { entries: [retried as OutboxEntry], cursor: null });
    // A second attempt counts on from the first.
    const again = await leaseDue(kv, now + 30_000, takeAll);
    await settle(kv, again.leased.map(delivered), now + 30_001, 7 * DAY);
    assertEquals((await entry(kv, ids[1]))!.attempts, 2);
    assertEquals(await nextDue(kv), null);
  });
});

/** `real`, noting the `expireIn` each commit gives an outbox entry, by entry id. */
function notingExpiry(real: Deno.Kv) {
  const expireIn = new Map<string, number | undefined>();
  const kv = new Proxy(real, {
    get(target, prop) {
      if (prop !== "atomic") return Reflect.get(target, prop, target).bind(target);
      return () => {
        const op = target.atomic();
        const set = op.set.bind(op);
        op.set = (key, value, options) => {
          if (key[0] === "outbox") expireIn.set(String(key[1]), options?.expireIn);
          return set(key, value, options);
        };
        return op;
      };
    },
  });
  return { kv, expireIn };
}

Deno.test("outbox store: a delivered entry expires after the retention time; pending and dead ones are kept", async () => {
  await withKv(async (real) => {
    const ids = await seed(real, 3);
    const { kv, expireIn } = notingExpiry(real);
    const { leased } = await leaseDue(kv, T0 + 2, takeAll);
    assertEquals([...expireIn.values()], [undefined, undefined, undefined], "a lease keeps them");
    await settle(
      kv,
      [
        delivered(leased[0]),
        { leased: leased[1], outcome: "failed", error: "down", retryInMs: 10_000 },
        { leased: leased[2], outcome: "failed", error: "down", retryInMs: null },
      ],
      T0 + 3,
      30 * DAY,
    );
    assertEquals(ids.map((id) => expireIn.get(id)), [30 * DAY, undefined, undefined]);
  });
});

Deno.test("outbox store: a forwarder's delivered entries expire after retentionDays, 30 by default", async () => {
  for (const [retentionDays, days] of [[undefined, 30], [7, 7]]) {
    await withKv(async (real) => {
      const [id] = await seed(real, 1);
      const { kv, expireIn } = notingExpiry(real);
      const crm = handlerDestination("crm", () => Promise.resolve());
      const forwarder = createForwarder({ kv, destinations: [crm], retentionDays, log: () => {} });
      try {
        assertEquals(await forwarder.sweep(), 1);
        assertEquals(expireIn.get(id), days! * DAY, `retentionDays ${retentionDays}`);
      } finally {
        await forwarder.close();
      }
    });
  }
});

Deno.test("outbox store: settling an entry leased again by another process leaves it to that process", async () => {
  await withKv(async (kv) => {
    const ids = await seed(kv, 3);
    const first = (await leaseDue(kv, T0 + 2, takeAll)).leased;
    // This process overran its lease: another one leased the second entry again meanwhile.
    const second = await leaseDue(kv, T0 + 2 + LEASE_MS, { limit: 1, take: (id) => id === ids[1] });
    assertEquals(second.leased.map((l) => l.value.id), [ids[1]]);
    assertEquals(await settle(kv, first.map(delivered), T0 + 3, DAY), 2);
    const statuses = await Promise.all(ids.map(async (id) => (await entry(kv, id))!.status));
    assertEquals(statuses, ["delivered", "pending", "delivered"]);
    assertEquals(await entry(kv, ids[1]), second.leased[0].value);
    // Alone in its batch, it is not recorded either.
    assertEquals(await settle(kv, [delivered(first[1])], T0 + 4, DAY), 0);
    assertEquals(await settle(kv, second.leased.map(delivered), T0 + 5, DAY), 1);
  });
});

Deno.test("outbox store: a dead entry is requeued due now; others are returned as they are", async () => {
  await withKv(async (kv) => {
    const ids = await seed(kv, 2);
    const { leased } = await leaseDue(kv, T0 + 1, takeAll);
    await settle(
      kv,
      [
        { leased: leased[0], outcome: "failed", error: "gone", retryInMs: null },
        delivered(leased[1]),
      ],
      T0 + 2,
      DAY,
    );
    const dead = (await entry(kv, ids[0])) as OutboxEntry;
    const now = T0 + 9_000;
    const back = await requeue(kv, ids[0], now);
    assertEquals(back, { ...dead, status: "pending", deadAt: null, dueAt: now });
    assertEquals(await entry(kv, ids[0]), back);
    assertEquals(await listOutbox(kv, { status: "dead", limit: 10 }), {
      entries: [],
      cursor: null,
    });
    assertEquals(await nextDue(kv), now);
    assertEquals(await requeue(kv, ids[0], now + 1), back, "already pending: unchanged");
    assertEquals(await requeue(kv, ids[1], now), await entry(kv, ids[1]));
    assertEquals(await requeue(kv, "crm:msg_1_2", now), null);
  });
});

Deno.test("outbox store: requeuing an entry erased meanwhile finds nothing", async () => {
  await withKv(async (real) => {
    const [id] = await seed(real, 1);
    const { leased } = await leaseDue(real, T0, takeAll);
    await settle(
      real,
      [{ leased: leased[0], outcome: "failed", error: "x", retryInMs: null }],
      T0,
      DAY,
    );
    // Erased between requeue's read and its commit.
    const { kv } = beforeCommits(real, () => real.delete(outboxKey(id)));
    assertEquals(await requeue(kv, id, T0 + 1), null);
    assertEquals(await dueKeys(real), []);
  });
});

Deno.test("outbox store: GET /api/outbox pages dead entries oldest first, skipping vanished ones", async () => {
  const h = await harness();
  try {
    const ids = await seed(h.kv, 25);
    const { leased } = await leaseDue(h.kv, T0 + 25, takeAll);
    // Each dies at its own time, in seed order.
    for (const [i, l] of leased.entries()) {
      await settle(
        h.kv,
        [{ leased: l, outcome: "failed", error: `e${i}`, retryInMs: null }],
        T0 + 100 + i,
        DAY,
      );
    }
    await h.kv.delete(outboxKey(ids[3])); // its dead key stays behind
    const seen: string[] = [];
    const pages: number[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : "";
      const r = await h.get(`/api/outbox?status=dead&limit=12${query}`);
      assertEquals(r.status, 200, JSON.stringify(r.json));
      const entries = r.json.entries as OutboxEntry[];
      pages.push(entries.length);
      seen.push(...entries.map((e) => e.id));
      cursor = r.json.cursor as string | null;
    } while (cursor);
    assertEquals(seen, ids.filter((_, i) => i !== 3));
    assertEquals(pages, [11, 12, 1]);
    const pending = await h.get("/api/outbox?status=pending");
    assertEquals(pending.json, { entries: [], cursor: null });
  } finally {
    h.close();
  }
});
