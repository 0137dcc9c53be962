/**
 * `deno task dev`: starts the server (with `--watch`) as a child process, plays the fixture story
 * against it as Thinkific would (signed, retried), prints the resulting records in plain words and
 * the unmatched list, then keeps serving until Ctrl+C.
 *
 * Environment: `PORT` (default 8000), `KV_PATH` (default `./data/dev.sqlite3`),
 * `THINKIFIC_WEBHOOK_SECRET` (default: a dev secret), `API_TOKEN` (used for `/api` when set).
 *
 * @module
 */
import { z } from "zod";
import { type Fixture, loadFixtures } from "../fixtures/mod.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";
import {
  answerStatusOf,
  type AttemptReport,
  deliver,
  type DeliveryResult,
  describeRecord,
  describeUnmatched,
  isRetryable,
  type UnmatchedLike,
  WEBHOOK_PATH,
} from "./_deliver.ts";

const ROOT = new URL("../", import.meta.url);
const DEV_SECRET = "dev-only-webhook-secret";
const HEALTH_TIMEOUT_MS = 60_000;

/** Fast local backoff: 100 ms, 200 ms, 400 ms, then 500 ms. */
const devDelay = (attempt: number) => Math.min(100 * 2 ** (attempt - 1), 500);

const envSchema = z.object({
  PORT: z.string().trim().regex(/^\d+$/, "must be a port number").transform(Number)
    .refine((n) => n >= 1 && n <= 65535, "must be from 1 to 65535").optional().default(8000),
  KV_PATH: z.string().trim().optional().transform((v) => v || "./data/dev.sqlite3"),
  THINKIFIC_WEBHOOK_SECRET: z.string().optional().transform((v) => v || DEV_SECRET),
  API_TOKEN: z.string().optional().transform((v) => v || undefined),
  // The story's lone progress event is held on each of its fast redeliveries: keep it short here.
  HOLD_MS: z.string().trim().regex(/^\d+$/, "must be a whole number of ms").optional()
    .default("250"),
});

const say = (line: string) => console.log(line);

async function forwardLines(stream: ReadableStream<Uint8Array>, write: (line: string) => void) {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) write(`[server] ${line}`);
  }
  if (rest) write(`[server] ${rest}`);
}

function ensurePortFree(port: number) {
  try {
    Deno.listen({ port }).close();
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new Error(`port ${port} is already in use: stop what runs there or set PORT`);
    }
    throw err;
  }
}

async function waitForHealth(base: string, child: Deno.ChildProcess, exited: () => boolean) {
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited()) throw new Error("the server exited before it became healthy");
    try {
      const res = await fetch(`${base}/healthz`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill("SIGTERM");
  throw new Error(`${base}/healthz did not answer within ${HEALTH_TIMEOUT_MS / 1000} s`);
}

function outcomeText(status: number, body: unknown, error?: string): string {
  if (status === 0) return `no answer (${error})`;
  const b = (body ?? {}) as Record<string, unknown>;
  const kind = answerStatusOf(body);
  switch (kind) {
    case "collated": {
      const r = b.record as LessonProgressRecord;
      return `${status} collated: “${r.lesson_name}”, ${r.percentage_completed}%`;
    }
    case "pending":
      return `${status} pending: waiting for its ${b.waiting_for ?? "counterpart"}`;
    case "unmatched":
      return `${status} unmatched: gave up after ${b.attempts} deliveries`;
    case "ignored":
      return `${status} ignored (${b.topic ?? "unhandled topic"})`;
    case "stored":
      return `${status} stored: waiting for its enrollment.progress`;
  }
  return `${status} ${typeof b.error === "string" ? b.error : JSON.stringify(body)}`;
}

async function playStory(
  url: string,
  secret: string,
  fixtures: Fixture[],
  signal: AbortSignal,
): Promise<void> {
  const width = Math.max(...fixtures.map((f) => f.name.length));
  say(`Posting ${fixtures.length} fixture webhooks to ${url} (signed, retried like Thinkific)`);
  const retrying: { name: string; done: Promise<DeliveryResult> }[] = [];
  for (const f of fixtures) {
    if (signal.aborted) return;
    let onFirst!: (a: AttemptReport) => void;
    const first = new Promise<AttemptReport>((resolve) => (onFirst = resolve));
    const done = deliver(url, f.body, {
      secret,
      retryDelayMs: devDelay,
      signal,
      onAttempt: (a) => a.attempt === 1 && onFirst(a),
    });
    const a = await Promise.race([
      first,
      done.then((r) => ({ attempt: 1, status: r.status, body: r.body, error: r.error })),
    ]);
    say(`  ${f.name.padEnd(width)}  ${outcomeText(a.status, a.body, a.error)}`);
    if (isRetryable(a.status, a.body)) retrying.push({ name: f.name, done });
    else await done;
  }
  if (retrying.length === 0) return;
  say(`Redelivering ${retrying.length} pending webhook(s) in the background, as Thinkific would…`);
  for (const { name, done } of retrying) {
    const r = await done;
    const after = answerStatusOf(r.body) === "unmatched" ? "" : ` (after ${r.attempts} deliveries)`;
    say(`  ${name.padEnd(width)}  ${outcomeText(r.status, r.body, r.error)}${after}`);
  }
}

async function getAll<T>(
  base: string,
  path: string,
  field: string,
  token?: string,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const url = new URL(path, base);
    url.searchParams.set("limit", "500");
    if (cursor) url.searchParams.set("cursor", cursor);
    const res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    const body = await res.json() as Record<string, unknown>;
    if (!res.ok) throw new Error(`GET ${path} answered ${res.status}: ${JSON.stringify(body)}`);
    items.push(...(body[field] as T[]));
    cursor = typeof body.cursor === "string" ? body.cursor : null;
  } while (cursor);
  return items;
}

async function printResults(base: string, token?: string) {
  const records = await getAll<LessonProgressRecord>(base, "/api/records", "records", token);
  say(`Records (${records.length}):`);
  for (const r of records) say(`  • ${describeRecord(r)}`);
  const unmatched = await getAll<UnmatchedLike>(base, "/api/unmatched", "events", token);
  say(`Unmatched (${unmatched.length}):`);
  for (const e of unmatched) say(`  • ${describeUnmatched(e)}`);
  if (unmatched.length === 0) {
    say("  (none yet: a progress event without a lesson is listed after 10 deliveries)");
  }
}

async function main(): Promise<number> {
  const parsed = envSchema.safeParse(Deno.env.toObject());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    console.error(`dev: ${issue.path.join(".")} ${issue.message}`);
    return 1;
  }
  const env = parsed.data;
  const port = env.PORT;
  // The server runs in the project folder: a relative KV_PATH is made relative to ours.
  const kvPath = /^(:memory:|https?:\/\/|\/|[A-Za-z]:[\\/])/.test(env.KV_PATH)
    ? env.KV_PATH
    : `${Deno.cwd()}/${env.KV_PATH.replace(/^\.[\\/]/, "")}`;
  try {
    ensurePortFree(port);
  } catch (err) {
    console.error(`dev: ${(err as Error).message}`);
    return 1;
  }

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--watch",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "start.ts",
    ],
    cwd: ROOT,
    env: {
      PORT: String(port),
      KV_PATH: kvPath,
      THINKIFIC_WEBHOOK_SECRET: env.THINKIFIC_WEBHOOK_SECRET,
      HOLD_MS: env.HOLD_MS,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const status = child.status.finally(() => (exited = true));
  const forwarding = Promise.all([
    forwardLines(child.stdout, (l) => console.log(l)),
    forwardLines(child.stderr, (l) => console.error(l)),
  ]);

  const stop = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((sig) => {
    const handler = () => {
      stop.abort();
      try {
        child.kill(sig);
      } catch {
        // already gone
      }
    };
    Deno.addSignalListener(sig, handler);
    return [sig, handler] as const;
  });

  const base = `http://127.0.0.1:${port}`;
  let failed = false;
  try {
    say(`dev: starting the server on port ${port} (KV_PATH=${kvPath})`);
    await waitForHealth(base, child, () => exited);
    await playStory(
      `${base}${WEBHOOK_PATH}`,
      env.THINKIFIC_WEBHOOK_SECRET,
      await loadFixtures(),
      stop.signal,
    );
    if (!stop.signal.aborted) await printResults(base, env.API_TOKEN);
    if (!stop.signal.aborted) {
      say(
        `Serving at http://localhost:${port}/ (GET /api/records, GET /api/unmatched, ` +
          `POST ${WEBHOOK_PATH}). Ctrl+C to stop.`,
      );
    }
  } catch (err) {
    console.error(`dev: ${(err as Error).message}`);
    failed = true;
    if (!exited) child.kill("SIGTERM");
  }

  const result = await status;
  await forwarding;
  for (const [sig, handler] of handlers) Deno.removeSignalListener(sig, handler);
  if (failed) return 1;
  return stop.signal.aborted ? 0 : result.code;
}

if (import.meta.main) Deno.exit(await main());
