/**
 * `deno task replay <file or folder> [--url URL] [--secret S] [--concurrency N]`: posts captured
 * Thinkific webhooks to a deployment, signed and retried like Thinkific, and counts the outcomes.
 *
 * Input: a `.json` file (one webhook), an `.ndjson`/`.jsonl` file (one webhook per line), or a
 * folder (all its `.json`, `.ndjson` and `.jsonl` files, in name order). Every input is read and
 * checked before the first one is sent. Exit code: 0 when every webhook got a 2xx answer, 1
 * otherwise (or on a usage, input or URL error, told in one line on stderr).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import {
  answerStatusOf,
  deliver,
  type DeliveryResult,
  networkErrorMessage,
  WEBHOOK_PATH,
  webhookUrl,
} from "./_deliver.ts";

const DEFAULT_URL = `http://localhost:8000${WEBHOOK_PATH}`;
const MAX_CONCURRENCY = 64;

const USAGE = `usage: deno task replay <file or folder> [--url URL] [--secret S] [--concurrency N]
  --url          webhook endpoint (default ${DEFAULT_URL}; a URL without a path gets ${WEBHOOK_PATH})
  --secret       signing secret (default: THINKIFIC_WEBHOOK_SECRET; unsigned when neither is set)
  --concurrency  webhooks in flight at once, 1-${MAX_CONCURRENCY} (default 4)`;

/** What `main` needs from the outside world; tests pass their own. */
export interface ReplayDeps {
  fetch?: typeof fetch;
  env?: Record<string, string | undefined>;
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
  /** Backoff between deliveries of one webhook (default: `_deliver.ts`'s). */
  retryDelayMs?: (attempt: number) => number;
  /** Deliveries per webhook (default 15, as Thinkific). */
  maxAttempts?: number;
}

/** A usage, input or URL problem: reported in one line, exit code 1. */
class ReplayError extends Error {
  override name = "ReplayError";
}

const argsSchema = z.object({
  inputs: z.array(z.string()).length(1, "give exactly one file or folder to replay"),
  url: z.string().trim().transform((raw, ctx) => {
    try {
      const url = new URL(raw);
      if (url.protocol === "http:" || url.protocol === "https:") return webhookUrl(url.href);
    } catch {
      // reported below
    }
    ctx.addIssue({ code: "custom", message: `--url must be an http(s) URL, got "${raw}"` });
    return z.NEVER;
  }),
  secret: z.string().min(1, "--secret must not be empty").optional(),
  concurrency: z.string().trim()
    .regex(/^\d+$/, `--concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}`)
    .transform(Number)
    .refine(
      (n) => n >= 1 && n <= MAX_CONCURRENCY,
      `--concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}`,
    ),
});

type Args = z.output<typeof argsSchema>;

function parseCli(args: string[], env: Record<string, string | undefined>): Args | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: "string" },
        secret: { type: "string" },
        concurrency: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify[\s\S]*$/, "").split("\n")[0];
    throw new ReplayError(`${message} (see --help)`);
  }
  if (parsed.values.help) return "help";
  const result = argsSchema.safeParse({
    inputs: parsed.positionals,
    url: parsed.values.url ?? DEFAULT_URL,
    secret: parsed.values.secret ?? (env.THINKIFIC_WEBHOOK_SECRET || undefined),
    concurrency: parsed.values.concurrency ?? "4",
  });
  if (!result.success) {
    const message = result.error.issues[0].message;
    throw new ReplayError(
      result.error.issues[0].path[0] === "inputs" ? `${message} (see --help)` : message,
    );
  }
  return result.data;
}

/** One webhook to send: where it came from (`file` or `file:line`) and its exact body. */
export interface CapturedWebhook {
  source: string;
  body: string;
}

const webhookObject = z.looseObject({});

function checkJson(text: string, source: string): void {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ReplayError(`${source}: invalid JSON (${(err as Error).message})`);
  }
  if (!webhookObject.safeParse(value).success || Array.isArray(value)) {
    throw new ReplayError(`${source}: not a JSON object (one webhook body expected)`);
  }
}

const isNdjson = (path: string) => /\.(ndjson|jsonl)$/i.test(path);
const isInput = (name: string) => /\.(json|ndjson|jsonl)$/i.test(name);

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new ReplayError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Reads and checks every webhook of a file or folder, in order. */
export async function readWebhooks(path: string): Promise<CapturedWebhook[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw new ReplayError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let files = [path];
  if (info.isDirectory) {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(path)) {
        if (entry.isFile && isInput(entry.name)) names.push(entry.name);
      }
    } catch (err) {
      throw new ReplayError(`cannot read ${path}: ${(err as Error).message}`);
    }
    if (names.length === 0) throw new ReplayError(`no .json or .ndjson files in ${path}`);
    files = names.sort().map((name) => `${path.replace(/[\\/]+$/, "")}/${name}`);
  }
  const out: CapturedWebhook[] = [];
  for (const file of files) {
    const text = await readText(file);
    if (isNdjson(file)) {
      text.split("\n").forEach((raw, i) => {
        const line = raw.replace(/\r$/, "");
        if (line.trim() === "") return;
        const source = `${file}:${i + 1}`;
        checkJson(line, source);
        out.push({ source, body: line });
      });
    } else {
      checkJson(text, file);
      out.push({ source: file, body: text });
    }
  }
  if (out.length === 0) throw new ReplayError(`no webhooks in ${path}`);
  return out;
}

/** Outcome counts of a replay. */
export interface Tally {
  collated: number;
  collatedAfterPending: number;
  stored: number;
  unmatched: number;
  ignored: number;
  stillPending: number;
  /** Failed deliveries by final status (`"0"`: no answer). */
  errors: Record<string, number>;
}

function newTally(): Tally {
  return {
    collated: 0,
    collatedAfterPending: 0,
    stored: 0,
    unmatched: 0,
    ignored: 0,
    stillPending: 0,
    errors: {},
  };
}

const errorCount = (t: Tally) => Object.values(t.errors).reduce((a, b) => a + b, 0);

function errorText(r: DeliveryResult): string {
  if (r.status === 0) return r.error ?? "no answer";
  const b = r.body as Record<string, unknown> | null;
  const detail = b && typeof b === "object" && typeof b.error === "string"
    ? b.error
    : JSON.stringify(r.body);
  return `${r.status} ${detail}`.slice(0, 300);
}

/** Counts one result; returns a fatal message when the URL or secret is evidently wrong. */
function record(t: Tally, r: DeliveryResult, url: string): string | null {
  const kind = answerStatusOf(r.body);
  if (r.status >= 200 && r.status < 300) {
    if (kind === "collated") {
      t.collated++;
      if (r.attempts > 1) t.collatedAfterPending++;
      return null;
    }
    if (kind === "stored" || kind === "unmatched" || kind === "ignored") {
      t[kind]++;
      return null;
    }
  }
  if (kind === "pending") {
    t.stillPending++;
    return null;
  }
  const key = String(r.status);
  t.errors[key] = (t.errors[key] ?? 0) + 1;
  if (r.status === 401) {
    return `${url} answered ${errorText(r)}: check --secret or THINKIFIC_WEBHOOK_SECRET`;
  }
  if (r.status === 404 || r.status === 405) {
    return `${url} answered ${errorText(r)}: is --url the webhook endpoint (…${WEBHOOK_PATH})?`;
  }
  return null;
}

function tallyLine(t: Tally): string {
  const errors = Object.entries(t.errors).map(([s, n]) => `${s === "0" ? "no answer" : s}×${n}`);
  return `collated ${t.collated}, stored ${t.stored}, unmatched ${t.unmatched}, ` +
    `ignored ${t.ignored}, pending ${t.stillPending}, errors ${errorCount(t)}` +
    (errors.length ? ` (${errors.join(", ")})` : "");
}

async function checkReachable(url: string, fetchFn: typeof fetch): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  try {
    const res = await fetchFn(url, { method: "HEAD", signal: controller.signal });
    await res.body?.cancel();
  } catch (err) {
    const why = controller.signal.aborted ? "no answer within 10 s" : networkErrorMessage(err);
    throw new ReplayError(`cannot reach ${url}: ${why}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the command; returns the exit code. */
export async function main(args: string[], deps: ReplayDeps = {}): Promise<number> {
  const out = deps.stdout ?? ((line: string) => console.log(line));
  const err = deps.stderr ?? ((line: string) => console.error(line));
  const fetchFn = deps.fetch ?? fetch;
  try {
    const cli = parseCli(args, deps.env ?? Deno.env.toObject());
    if (cli === "help") {
      out(USAGE);
      return 0;
    }
    const webhooks = await readWebhooks(cli.inputs[0]);
    await checkReachable(cli.url, fetchFn);

    const started = performance.now();
    const tally = newTally();
    const failures: string[] = [];
    let next = 0;
    let done = 0;
    let fatal: string | null = null;
    let lastProgress = started;
    const progress = () => {
      const now = performance.now();
      if (done < webhooks.length && (done % 100 === 0 || now - lastProgress >= 1000)) {
        lastProgress = now;
        err(`replay: ${done}/${webhooks.length} done (${tallyLine(tally)})`);
      }
    };
    const worker = async () => {
      while (fatal === null && next < webhooks.length) {
        const w = webhooks[next++];
        const result = await deliver(cli.url, w.body, {
          secret: cli.secret,
          fetch: fetchFn,
          maxAttempts: deps.maxAttempts,
          retryDelayMs: deps.retryDelayMs,
        });
        const stop = record(tally, result, cli.url);
        if (stop !== null) fatal ??= stop;
        if (
          answerStatusOf(result.body) !== "pending" && (result.status < 200 || result.status > 299)
        ) {
          failures.push(`${w.source}: ${errorText(result)}`);
        }
        done++;
        progress();
      }
    };
    await Promise.all(Array.from({ length: Math.min(cli.concurrency, webhooks.length) }, worker));
    if (fatal !== null) throw new ReplayError(fatal);

    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    out(`replay: ${webhooks.length} webhook(s) from ${cli.inputs[0]} → ${cli.url} in ${seconds} s`);
    out(
      `  collated   ${tally.collated}` +
        (tally.collatedAfterPending ? ` (${tally.collatedAfterPending} after redelivery)` : ""),
    );
    out(`  stored     ${tally.stored}`);
    out(`  unmatched  ${tally.unmatched}`);
    out(`  ignored    ${tally.ignored}`);
    if (tally.stillPending) {
      out(`  pending    ${tally.stillPending} (still pending after the last retry)`);
    }
    const errors = Object.entries(tally.errors)
      .map(([status, n]) => `${status === "0" ? "no answer" : status}×${n}`);
    out(`  errors     ${errorCount(tally)}${errors.length ? ` (${errors.join(", ")})` : ""}`);
    for (const line of failures.slice(0, 10)) out(`    ${line}`);
    if (failures.length > 10) out(`    … and ${failures.length - 10} more`);
    return errorCount(tally) === 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof ReplayError) {
      err(`replay: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
