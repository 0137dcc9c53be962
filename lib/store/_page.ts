/**
 * Opaque cursors and one ordered page of a KV listing.
 * @module
 */
import { z } from "zod";

/** Where a listing stopped: the key suffix after the listing's prefix. */
export type Position = (number | string)[];

/** Encodes the position of the last item of a page. */
export function encodeCursor(position: Position): string {
  const bytes = new TextEncoder().encode(JSON.stringify(position));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

/**
 * A zod schema decoding a cursor from a query string into a position of the given shape; anything
 * this API did not issue fails as a zod issue.
 */
export function cursorSchema<P extends Position>(shape: z.ZodType<P>) {
  return z.string().max(1024).transform((raw, ctx) => {
    try {
      const b64 = raw.replaceAll("-", "+").replaceAll("_", "/");
      const text = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
      );
      const parsed = shape.safeParse(JSON.parse(text));
      if (parsed.success) return parsed.data;
    } catch {
      // fall through to the issue below
    }
    ctx.addIssue({ code: "custom", message: "is not a cursor returned by this API" });
    return z.NEVER;
  });
}

/** Positions of listings ordered by a time, then one or two ids. */
export const timeIdIdPosition = z.tuple([
  z.number().finite(),
  z.string().max(128),
  z.string().max(128),
]);
export const timeIdPosition = z.tuple([z.number().finite(), z.string().max(256)]);

/**
 * Lists one page under `prefix`, oldest first, starting at `from` (a position prefix, inclusive)
 * or strictly after `after`.
 */
export async function listPage<T>(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  opts: {
    limit: number;
    from?: (string | number)[];
    after?: Position;
    /** Stops before this position prefix (exclusive). */
    before?: (string | number)[];
    /** Keeps only the entries it accepts (the listing reads on until it has `limit` of them). */
    keep?: (position: Position, value: T) => boolean;
  },
): Promise<{ items: T[]; positions: Position[]; cursor: string | null }> {
  const start = opts.after
    ? [...prefix, ...opts.after, new Uint8Array()]
    : opts.from
    ? [...prefix, ...opts.from]
    : undefined;
  const end = opts.before ? [...prefix, ...opts.before] : undefined;
  const selector = start && end
    ? { start, end }
    : start
    ? { prefix, start }
    : end
    ? { prefix, end }
    : { prefix };
  const items: T[] = [];
  const positions: Position[] = [];
  let last: Position | null = null;
  let more = false;
  const keep = opts.keep;
  for await (const entry of kv.list<T>(selector, keep ? {} : { limit: opts.limit + 1 })) {
    const position = entry.key.slice(prefix.length) as Position;
    if (keep && !keep(position, entry.value)) continue;
    if (items.length === opts.limit) {
      more = true;
      break;
    }
    items.push(entry.value);
    positions.push(last = position);
  }
  return { items, positions, cursor: more && last ? encodeCursor(last) : null };
}
