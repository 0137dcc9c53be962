/**
 * Records as CSV (RFC 4180): a header row of the record's field names, CRLF line ends, fields
 * quoted when they hold a comma, a quote, CR or LF (quotes doubled), `null` as an empty field.
 *
 * Text that a spreadsheet would run as a formula when the file is opened (OWASP "CSV injection"):
 * a text value beginning with `=`, `+`, `-`, `@`, a tab or a CR is written with a `'` in front, so
 * it shows as text. Numbers are written as numbers (`-7` stays `-7`): only text values (strings)
 * are neutralised. `{ raw: true }` writes every value as received, for programs that read CSV as
 * data.
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

/** How fields are written. */
export interface CsvOptions {
  /** Write text as received, formula-like text included (default: neutralised). */
  raw?: boolean;
}

/** The first characters that make a spreadsheet read a cell as a formula (OWASP). */
const FORMULA_START = /^[=+\-@\t\r]/;

/** One CSV field. */
export function csvField(value: unknown, options: CsvOptions = {}): string {
  if (value === null || value === undefined) return "";
  let text = String(value);
  if (typeof value === "string" && !options.raw && FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One CSV line, CRLF included. */
export function csvLine(values: readonly unknown[], options: CsvOptions = {}): string {
  return values.map((v) => csvField(v, options)).join(",") + "\r\n";
}

/**
 * A byte stream of CSV: the header, then the rows of each page, reading the next page only when
 * the reader wants more (so memory stays one page, whatever the total).
 */
export function csvStream<T, K extends keyof T & string>(
  columns: readonly K[],
  pages: AsyncIterable<T[]>,
  options: CsvOptions = {},
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
      // A pull that enqueues nothing is not called again: skip empty pages (no match at all).
      for (;;) {
        const next = await iterator.next();
        if (next.done) return controller.close();
        const text = next.value.map((row) => csvLine(columns.map((k) => row[k]), options))
          .join("");
        if (text) return controller.enqueue(encoder.encode(text));
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  }, { highWaterMark: 0 });
}
