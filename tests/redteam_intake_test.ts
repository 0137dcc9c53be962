/**
 * What a webhook contributes to a record, field by field, with every id and name distinct so a
 * field taken from the wrong place shows (the chapter's id is not the lesson's); and the longest
 * email address the standards allow (320 characters) is accepted, one more is refused naming it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { parseWebhook } from "../lib/thinkific/schemas.ts";

Deno.test("redteam intake: a lesson webhook's facts come from its chapter, lesson, course, enrollment and user", () => {
  const body = lessonWebhook({ id: "9001", user: 61, course: 62, lesson: 24017 });
  const parsed = parseWebhook(body, "lesson.completed");
  assertEquals(parsed, {
    kind: "event",
    event: {
      id: "9001",
      tenantId: "48213",
      topic: "lesson.completed",
      userId: 61,
      courseId: 62,
      at: BASE_TIME,
      facts: {
        kind: "lesson",
        userEmail: "ada@example.com",
        courseName: "Watercolor for beginners",
        enrollmentId: 90000042,
        lessonId: 24017,
        lessonName: "Lesson 24017",
        lessonType: "Video",
        lessonPosition: 17,
        chapterId: 7013,
        chapterName: "Mixing colours",
      },
    },
  });
});

Deno.test("redteam intake: a progress webhook's facts come from its enrollment, course and user", () => {
  const body = progressWebhook({ id: "9002", user: 61, course: 62, percentage: "42.25" });
  assertEquals(parseWebhook(body, null), {
    kind: "event",
    event: {
      id: "9002",
      tenantId: "48213",
      topic: "enrollment.progress",
      userId: 61,
      courseId: 62,
      at: BASE_TIME,
      facts: {
        kind: "progress",
        userEmail: "ada@example.com",
        courseName: "Watercolor for beginners",
        enrollmentId: 90000042,
        percentage: 42.25,
      },
    },
  });
});

Deno.test("redteam intake: an email of 320 characters is accepted, 321 is refused naming payload.user.email", () => {
  const email = (n: number) => `${"a".repeat(64)}@${"b".repeat(n - 70)}.test`;
  assertEquals(email(320).length, 320);
  for (const make of [lessonWebhook, progressWebhook]) {
    const body = make();
    const ok = parseWebhook({
      ...body,
      payload: { ...body.payload, user: { ...body.payload.user, email: email(320) } },
    }, null);
    assertEquals(ok.kind === "event" && ok.event.facts.userEmail, email(320));
    const long = parseWebhook({
      ...body,
      payload: { ...body.payload, user: { ...body.payload.user, email: email(321) } },
    }, null);
    assert(long.kind === "invalid", JSON.stringify(long));
    assertEquals(long.issues.map((i) => i.path), [["payload", "user", "email"]]);
  }
});

Deno.test("redteam intake: numeric school and event ids are kept as text, a lesson at position 0 and a 12-decimal percentage are accepted", () => {
  const lesson = lessonWebhook();
  const parsed = parseWebhook({
    ...lesson,
    id: 20261102091512,
    tenant_id: 48213,
    payload: { ...lesson.payload, lesson: { ...lesson.payload.lesson, position: 0 } },
  }, null);
  assert(parsed.kind === "event", JSON.stringify(parsed));
  assertEquals([parsed.event.id, parsed.event.tenantId], ["20261102091512", "48213"]);
  assertEquals(parsed.event.facts.kind === "lesson" && parsed.event.facts.lessonPosition, 0);
  const progress = parseWebhook(progressWebhook({ percentage: "33.333333333333" }), null);
  assert(progress.kind === "event", JSON.stringify(progress));
  assertEquals(
    progress.event.facts.kind === "progress" && progress.event.facts.percentage,
    33.333333333333,
  );
  // A float printed in full (a third of the lessons) is a percentage too.
  const third = parseWebhook(progressWebhook({ percentage: "33.333333333333336" }), null);
  assert(third.kind === "event", JSON.stringify(third));
  assertEquals(third.event.facts.kind === "progress" && third.event.facts.percentage, 100 / 3);
});
