/**
 * The CSV download of records, shared by `/api/records.csv` and the dashboard's course pages:
 * streamed one page of {@linkcode MAX_PAGE_SIZE} records at a time, as an attachment.
 * @module
 */
import { csvStream, RECORD_FIELDS } from "../csv.ts";
import { MAX_PAGE_SIZE } from "../store/limits.ts";
import { recordPages, type RecordQuery } from "../store/records.ts";

/** A streamed CSV answer of every record matching `query`, saved as `filename`. */
export function recordsCsvResponse(
  kv: Deno.Kv,
  query: Omit<RecordQuery, "limit" | "after">,
  filename: string,
): Response {
  const body = csvStream(RECORD_FIELDS, recordPages(kv, { ...query, limit: MAX_PAGE_SIZE }));
  return new Response(body, {
    headers: {
      "content-type": "text/csv; charset=utf-8; header=present",
      "content-disposition": `attachment; filename="${filename}"`,
      "cache-control": "no-store",
    },
  });
}
