/**
 * The CSV download of records, shared by `/api/records.csv` and the dashboard's course pages:
 * streamed one page of {@linkcode MAX_PAGE_SIZE} records at a time, as an attachment. Formula-like
 * text is neutralised unless `?raw=true` (see `lib/csv.ts`).
 * @module
 */
import { z } from "zod";
import { csvStream, RECORD_FIELDS } from "../csv.ts";
import { MAX_PAGE_SIZE } from "../store/limits.ts";
import { recordPages, type RecordQuery } from "../store/records.ts";

/** `raw`: `true` writes text as received (formulas included); `false` (default) neutralises. */
export const rawFlag = z.enum(["true", "false"], { error: "must be true or false" }).optional()
  .transform((v) => v === "true");

/** A streamed CSV answer of every record matching `query`, saved as `filename`. */
export function recordsCsvResponse(
  kv: Deno.Kv,
  query: Omit<RecordQuery, "limit" | "after">,
  filename: string,
  options: { raw?: boolean } = {},
): Response {
  const pages = recordPages(kv, { ...query, limit: MAX_PAGE_SIZE });
  const body = csvStream(RECORD_FIELDS, pages, { raw: options.raw });
  return new Response(body, {
    headers: {
      "content-type": "text/csv; charset=utf-8; header=present",
      "content-disposition": `attachment; filename="${filename}"`,
      "cache-control": "no-store",
    },
  });
}
