/**
 * Deno KV's commit limits as the outbox uses them (lib/store/limits.ts, lib/store/outbox.ts): a
 * lease pass takes its due entries in as few atomic commits as the limits allow (one check and up
 * to three mutations an entry, half of the 800 KiB), not one commit per entry.
 */
import { assertEquals } from "./_assert.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import { addOutboxEntries, leaseDue, settle } from "../lib/store/outbox.ts";

const NOW = Date.parse("2026-11-29T12:00:00.000Z");

/** A record as the outbox sees it: an id and the names that make up most of its size. */
function record(n: number, name = "Lesson"): LessonProgressRecord {
  const names = { course_name: name, lesson_name: name, chapter_name: name };
  return { tenant_id: "48213", progress_event_id: `p${n}`, ...names } as LessonProgressRecord;
}

/** A database with `count` due entries (records named `name`), one destination each. */
async function outboxOf(count: number, name?: string): Promise<Deno.Kv> {
  const kv = await Deno.openKv(":memory:");
  for (let n = 0; n < count; n++) {
    const op = kv.atomic();
    addOutboxEntries(op, record(n, name), ["hook"], NOW - 1_000);
    await op.commit();
  }
  return kv;
}

const commitsOf = (entries: { versionstamp: string }[]) =>
  new Set(entries.map((e) => e.versionstamp)).size;

Deno.test("limits: a lease pass takes 200 due entries in two commits of 100, then settles them in two", async () => {
  const kv = await outboxOf(200);
  try {
    const { leased } = await leaseDue(kv, NOW, { limit: 500, take: () => true });
    assertEquals(leased.length, 200);
    // Deno KV takes 100 checks in a commit: one an entry.
    assertEquals(commitsOf(leased), 2);
    const settlements = leased.map((l) => ({ leased: l, outcome: "delivered" as const }));
    assertEquals(await settle(kv, settlements, NOW, 86_400_000), 200);
    const stored = await Array.fromAsync(kv.list({ prefix: ["outbox"] }));
    assertEquals(stored.length, 200);
    assertEquals(commitsOf(stored), 2);
  } finally {
    kv.close();
  }
});

Deno.test("limits: entries of large records are leased in commits of up to 400 KiB", async () => {
  // Each entry's record holds 3,000 characters of names, about 7 KB as estimated from its JSON
  // (twice its length, for UTF-16): 110 of them need two commits of half of Deno KV's 800 KiB
  // (a third if the budget were smaller), though their checks would fit in two commits as well.
  const kv = await outboxOf(110, "n".repeat(1_000));
  try {
    const { leased } = await leaseDue(kv, NOW, { limit: 500, take: () => true });
    assertEquals(leased.length, 110);
    assertEquals(commitsOf(leased), 2);
  } finally {
    kv.close();
  }
});
