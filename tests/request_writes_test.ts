/**
 * What a delivery's own commit writes (issue 19: write units per pair): only what deciding needs,
 * and one projection entry per record, the record inside (the projector stores it, its feed entry
 * and the end of its events' unmatched entries); the course's name only when it is new or changed.
 */
import { assertEquals } from "./_assert.ts";
import { harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { recordCommits } from "./_committer.ts";
import {
  enrollmentKey,
  type EnrollmentSummary,
  type Projection,
  PROJECTION_PREFIX,
} from "../lib/store/keys.ts";

/** The first part of each key a successful commit wrote, per delivery. */
async function writesOf(env: Record<string, string> = {}) {
  const real = await Deno.openKv(":memory:");
  const { kv, commits } = recordCommits(real);
  const h = await harness(env, kv);
  return {
    h,
    async post(body: unknown) {
      const from = commits.length;
      const r = await h.post(body);
      const writes = commits.slice(from).filter((c) => c.ok)
        .flatMap((c) => c.mutations.map((m) => `${m.type} ${String(m.key[0])}`));
      return { status: r.status, writes: writes.sort() };
    },
    close: () => real.close(),
  };
}

Deno.test("request writes: a pair, lesson first, writes 10 keys; progress first, 8", async () => {
  const w = await writesOf();
  try {
    const lesson = await w.post(lessonWebhook({ user: 1 }));
    assertEquals(lesson.writes, [
      "set dash_course",
      "set enrollments",
      "set event_ids",
      "set events",
      "set unmatched",
    ]);
    const progress = await w.post(progressWebhook({ user: 1 }));
    assertEquals(progress.status, 200);
    assertEquals(progress.writes, [
      "set enrollments",
      "set event_ids",
      "set events",
      "set events",
      "set projection",
    ]);
    // The projection entry carries what the record lacks: the lesson's place in its course.
    const [entry] = await Array.fromAsync(w.h.kv.list<Projection>({ prefix: PROJECTION_PREFIX }));
    const sent = lessonWebhook({ user: 1 }).payload.lesson;
    assertEquals(entry.value.firstLesson, { lessonPosition: sent.position });
    assertEquals(entry.value.record.lesson_id, sent.id);
    const first = await w.post(progressWebhook({ user: 2 }));
    assertEquals(first.writes, [
      "set enrollments",
      "set event_ids",
      "set events",
    ]);
    const second = await w.post(lessonWebhook({ user: 2 }));
    assertEquals(second.writes, [
      "set enrollments",
      "set event_ids",
      "set events",
      "set events",
      "set projection",
    ]);
  } finally {
    w.close();
  }
});

Deno.test("request writes: a lone lesson names its course only when the name is new or changed", async () => {
  const w = await writesOf();
  try {
    const named = (r: { writes: string[] }) => r.writes.includes("set dash_course");
    assertEquals(named(await w.post(lessonWebhook({ user: 1, course: 10 }))), true);
    assertEquals(named(await w.post(lessonWebhook({ user: 2, course: 10 }))), false);
    const renamed = lessonWebhook({ user: 3, course: 10 });
    renamed.payload.course.name = "Watercolor, second edition";
    assertEquals(named(await w.post(renamed)), true);
    const again = lessonWebhook({ user: 4, course: 10 });
    again.payload.course.name = "Watercolor, second edition";
    assertEquals(named(await w.post(again)), false);
    assertEquals(named(await w.post(lessonWebhook({ user: 5, course: 11 }))), true);
    const info = await w.h.kv.get<{ course_name: string }>(["dash_course", 10]);
    assertEquals(info.value?.course_name, "Watercolor, second edition");
    // The same course id and name from another school: the course is named again, as that school's.
    const other = lessonWebhook({ user: 6, course: 10, tenant: "777" });
    other.payload.course.name = "Watercolor, second edition";
    assertEquals(named(await w.post(other)), true);
    const now = await w.h.kv.get<{ tenant_id: string }>(["dash_course", 10]);
    assertEquals(now.value?.tenant_id, "777");
  } finally {
    w.close();
  }
});

Deno.test("request writes: an enrollment lists 8 events stored without a pair; the 9th gets a key in its learner's index, and a pair leaves the list", async () => {
  const w = await writesOf();
  try {
    const base = Date.parse("2026-11-02T14:00:00.000Z");
    const lessons = Array.from(
      { length: 9 },
      (_, i) => lessonWebhook({ user: 1, at: base + i * 60_000 }),
    );
    const indexed: boolean[] = [];
    for (const lesson of lessons) {
      const r = await w.post(lesson);
      assertEquals(r.status, 200);
      indexed.push(r.writes.includes("set learner_event_ids"));
    }
    assertEquals(indexed, [...Array(8).fill(false), true]);
    const summary = async () =>
      (await w.h.kv.get<EnrollmentSummary>(
        enrollmentKey({ tenantId: "48213", userId: 1, courseId: 2100013 }),
      ))
        .value!;
    assertEquals((await summary()).lone?.map(([id]) => id), lessons.slice(0, 8).map((l) => l.id));
    // The first lesson pairs: it leaves the list.
    const progress = await w.post(progressWebhook({ user: 1, at: base }));
    assertEquals(progress.status, 200);
    assertEquals((await summary()).lone?.map(([id]) => id), lessons.slice(1, 8).map((l) => l.id));
  } finally {
    w.close();
  }
});
