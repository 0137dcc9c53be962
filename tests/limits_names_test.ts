/**
 * The name limit of a webhook (MAX_NAME_CHARS in lib/store/limits.ts): course, lesson and chapter
 * names of up to 1,000 characters are stored whole and recorded as sent; one more is a 422 naming
 * the field.
 */
import { assertEquals } from "./_assert.ts";
import { allRecords, BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";

Deno.test("limits: names of 1,000 characters are recorded whole; 1,001 is a 422 naming the field", async () => {
  const h = await harness();
  try {
    const long = "é".repeat(999) + "z";
    const lesson = lessonWebhook({ at: BASE_TIME, lessonName: long });
    lesson.payload.chapter.name = long;
    lesson.payload.course.name = long;
    assertEquals((await h.post(lesson)).status, 200);
    const progress = progressWebhook({ at: BASE_TIME });
    progress.payload.course.name = long;
    assertEquals((await h.deliver(progress)).status, 200);
    const [record] = await allRecords(h);
    assertEquals(
      [record.lesson_name, record.chapter_name, record.course_name],
      [long, long, long],
    );

    const fields: [string, (b: ReturnType<typeof lessonWebhook>) => void][] = [
      ["lesson", (b) => void (b.payload.lesson.name += "z")],
      ["chapter", (b) => void (b.payload.chapter.name = long + "z")],
      ["course", (b) => void (b.payload.course.name = long + "z")],
    ];
    for (const [field, lengthen] of fields) {
      const body = lessonWebhook({ at: BASE_TIME + 1, lessonName: long });
      lengthen(body);
      const r = await h.post(body);
      assertEquals(r.status, 422, field);
      assertEquals(
        (r.json.issues as { path: string[] }[]).map((i) => i.path.join(".")),
        [`payload.${field}.name`],
      );
    }
  } finally {
    h.close();
  }
});
