/**
 * Deno KV's commit limits as the outbox uses them (lib/store/limits.ts, lib/store/outbox.ts): a
 * lease pass takes its due entries in as few atomic commits as the limits allow (one check and up
 * to three mutations an entry, half of the 800 KiB), not one commit per entry.
 */
import { assertEquals } from "./_assert.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import { addOutboxEntries, leaseDue, settle } from "../lib/store/outbox.ts";

const NOW = Date.parse("2026-11-29T12:00:00.000Z");

function record(n: number, name = "Lesson"): LessonProgressRecord {
  return {
    tenant_id: "48213",
    user_id: 5000049,
    user_email: "ada@example.com",
    course_id: 2100013,
    course_name: name,
    enrollment_id: 90000042,
    lesson_id: n,
    lesson_name: name,
    lesson_type: "Video",
    chapter_id: 7013,
    chapter_name: name,
    completed_at: "2026-11-29T11:59:00.000Z",
    percentage_completed: 50,
    previous_percentage_completed: 40,
    first_completion: true,
    progress_event_id: `p${n}`,
    lesson_event_id: `l${n}`,
    skew_ms: 5,
    collated_at: "2026-11-29T11:59:01.000Z",
  };
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

Deno.test("limits: entries of large records are leased in commits of under 400 KiB", async () => {
  // Each entry's record holds 3,000 characters of names: as estimated from its JSON (twice its
  // length, for UTF-16), fewer than 100 fit in half of Deno KV's 800 KiB.
  const kv = await outboxOf(100, "n".repeat(1_000));
  try {
    const { leased } = await leaseDue(kv, NOW, { limit: 500, take: () => true });
    assertEquals(leased.length, 100);
    assertEquals(commitsOf(leased), 2);
  } finally {
    kv.close();
  }
});
