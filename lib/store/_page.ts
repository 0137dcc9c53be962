/**
 * Opaque cursors and one ordered page of a KV listing.
 *
 * A cursor is base64url of `{"k": kind, "p": position}`: the kind names the listing that issued it
 * (`records`, `feed`, `unmatched`, `outbox/dead`, `learners/<course>`…), and a listing refuses a
 * cursor of another kind. Positions of different listings have the same shape (a time and ids), so
 * without the tag a cursor given to the wrong listing would silently start at a wrong place. The
 * tag is not signed: a client forging a cursor can only choose where its own listing starts, which
 * a filter does too; the tag is there to catch mistakes, not adversaries.
 * @module
 */
import { z } from "zod";

/** Where a listing stopped: the key suffix after the listing's prefix. */
export type Position = (number | string)[];

/** Which listing a cursor belongs to (shown in the 400 of a cursor given to another one). */
export type CursorKind =
  | "records"
  | "feed"
  | "unmatched"
  | "courses"
  | `outbox/${"dead" | "pending"}`
  | `learners/${number}`;

/** How a kind is named to the client. */
function describe(kind: string): string {
  const learners = /^learners\/(\d+)$/.exec(kind);
  if (learners) return `the learners page of course ${learners[1]}`;
  const outbox = /^outbox\/(\w+)$/.exec(kind);
  if (outbox) return `/api/outbox?status=${outbox[1]}`;
  return `/api/${kind}`;
}

/** Encodes the position of the last item of a page of the listing `kind`. */
export function encodeCursor(kind: CursorKind, position: Position): string {
  const bytes = new TextEncoder().encode(JSON.stringify({ k: kind, p: position }));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

const tagged = z.strictObject({ k: z.string().max(64), p: z.unknown() });

/**
 * A zod schema decoding a cursor of the listing `kind` from a query string into a position of the
 * given shape; anything this listing did not issue fails as a zod issue: a cursor of another
 * listing names it. `acceptUntagged`: also take a bare position, as versions before the tag issued
 * (the feed does, for one release, because its followers store their cursor across upgrades).
 */
export function cursorSchema<P extends Position>(
  kind: CursorKind,
  shape: z.ZodType<P>,
  options: { acceptUntagged?: boolean } = {},
) {
  return z.string().max(1024).transform((raw, ctx) => {
    let message = "is not a cursor returned by this API";
    try {
      const b64 = raw.replaceAll("-", "+").replaceAll("_", "/");
      const text = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
      );
      const value: unknown = JSON.parse(text);
      const tag = tagged.safeParse(value);
      if (tag.success && tag.data.k !== kind) {
        message = `is a cursor of ${describe(tag.data.k)}, not of ${describe(kind)}: ` +
          "start again without cursor";
      } else if (tag.success) {
        const parsed = shape.safeParse(tag.data.p);
        if (parsed.success) return parsed.data;
      } else if (Array.isArray(value)) {
        const parsed = shape.safeParse(value);
        if (parsed.success && options.acceptUntagged) return parsed.data;
        if (parsed.success) {
          message = "is a cursor of an earlier version of this service, which did not say " +
            "which listing it is for: start again without cursor";
        }
      }
    } catch {
      // fall through to the issue below
    }
    ctx.addIssue({ code: "custom", message });
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
    /** The listing, written in the cursor. */
    kind: CursorKind;
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
  return { items, positions, cursor: more && last ? encodeCursor(opts.kind, last) : null };
}
