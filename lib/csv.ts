/**
 * Records as CSV (RFC 4180): a header row of the record's field names, CRLF line ends, fields
 * quoted when they hold a comma, a quote, CR or LF (quotes doubled), `null` as an empty field.
 * Values are written as they are: a name that starts with `=` stays text only in a program that
 * reads CSV as data.
 *
 * @example
 * ```ts
 * const stream = csvStream(RECORD_FIELDS, pages);
 * ```
 * @module
 */
import type { LessonProgressRecord } from "./matching/record.ts";

/** The record's fields, in the order of the contract (the CSV's columns). */
export const RECORD_FIELDS = [
  "tenant_id",
  "user_id",
  "user_email",
  "course_id",
  "course_name",
  "enrollment_id",
  "lesson_id",
  "lesson_name",
  "lesson_type",
  "chapter_id",
  "chapter_name",
  "completed_at",
  "percentage_completed",
  "previous_percentage_completed",
  "first_completion",
  "progress_event_id",
  "lesson_event_id",
  "skew_ms",
  "collated_at",
] as const satisfies readonly (keyof LessonProgressRecord)[];

// Every field of the record is a column: this fails to compile when one is missing.
type Missing = Exclude<keyof LessonProgressRecord, (typeof RECORD_FIELDS)[number]>;
const _allFields: [Missing] extends [never] ? true : Missing = true;

/** One CSV field. */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One CSV line, CRLF included. */
export function csvLine(values: readonly unknown[]): string {
  return values.map(csvField).join(",") + "\r\n";
}

/**
 * A byte stream of CSV: the header, then the rows of each page, reading the next page only when
 * the reader wants more (so memory stays one page, whatever the total).
 */
export function csvStream<T, K extends keyof T & string>(
  columns: readonly K[],
  pages: AsyncIterable<T[]>,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const iterator = pages[Symbol.asyncIterator]();
  let headerSent = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!headerSent) {
        headerSent = true;
        controller.enqueue(encoder.encode(csvLine(columns)));
        return;
      }
      const next = await iterator.next();
      if (next.done) return controller.close();
      const text = next.value.map((row) => csvLine(columns.map((k) => row[k]))).join("");
      if (text) controller.enqueue(encoder.encode(text));
    },
    async cancel() {
      await iterator.return?.();
    },
  }, { highWaterMark: 0 });
}
