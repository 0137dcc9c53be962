/**
 * The CSV's columns are the contract's field order, spelled out here (not derived from
 * `RECORD_FIELDS`), so two columns swapped in the code fail this test; each value sits under its
 * own column.
 */
import { assertEquals } from "./_assert.ts";
import { handRecord } from "./_records.ts";
import { csvStream, RECORD_FIELDS } from "../lib/csv.ts";

const HEADER = "tenant_id,user_id,user_email,course_id,course_name,enrollment_id,lesson_id," +
  "lesson_name,lesson_type,chapter_id,chapter_name,completed_at,percentage_completed," +
  "previous_percentage_completed,first_completion,progress_event_id,lesson_event_id,skew_ms," +
  "collated_at";

async function* onePage<T>(rows: T[]) {
  yield rows;
}

Deno.test("redteam csv: the header lists the record's fields in the contract's order, each row under it", async () => {
  const record = { ...handRecord({ user: 7, course: 12, lesson: 3, skew: -4 }), chapter_id: 5 };
  const text = await new Response(csvStream(RECORD_FIELDS, onePage([record]))).text();
  const [header, row, end] = text.split("\r\n");
  assertEquals([header, end], [HEADER, ""]);
  const cells = row.split(",");
  const byName = Object.fromEntries(header.split(",").map((name, i) => [name, cells[i]]));
  assertEquals(byName, {
    tenant_id: "48213",
    user_id: "7",
    user_email: "user7@example.com",
    course_id: "12",
    course_name: "Course 12",
    enrollment_id: "7",
    lesson_id: "3",
    lesson_name: "Lesson 3",
    lesson_type: "Video",
    chapter_id: "5",
    chapter_name: "Chapter 1",
    completed_at: record.completed_at,
    percentage_completed: "50",
    previous_percentage_completed: "",
    first_completion: "true",
    progress_event_id: record.progress_event_id,
    lesson_event_id: record.lesson_event_id,
    skew_ms: "-4",
    collated_at: record.collated_at,
  });
});
