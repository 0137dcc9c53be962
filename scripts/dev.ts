/**
 * `deno task dev`: starts the server (with `--watch`) as a child process, plays the fixture story
 * against it as Thinkific would (signed, retried), prints the resulting records in plain words and
 * the unmatched list, then keeps serving until Ctrl+C.
 *
 * Environment: `PORT` (default 8000), `HOST` (default `127.0.0.1`: this machine only, since
 * `/api` and the dashboard are open without `API_TOKEN`), `KV_PATH` (default `./data/dev.sqlite3`),
 * `THINKIFIC_WEBHOOK_SECRET` (default: a dev secret), `API_TOKEN` (used for `/api` when set).
 *
 * Stopping: on SIGINT or SIGTERM, or when the process that started it goes away (its parent, or its
 * parent's parent: `npx` above `deno task`), it closes the server's standard input, which stops the
 * server and its watcher (see `_dev_server.ts`); whatever still runs after
 * {@linkcode STOP_GRACE_MS} is killed. If `dev.ts` itself is killed, the system closes that input.
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
/** How long the server may take to shut down gracefully before it is killed. */
const STOP_GRACE_MS = 3_000;
/** How often the parent and grandparent are checked. */
const PARENT_POLL_MS = 1_000;

/** Fast local backoff: 100 ms, 200 ms, 400 ms, then 500 ms. */
const devDelay = (attempt: number) => Math.min(100 * 2 ** (attempt - 1), 500);

const envSchema = z.object({
  PORT: z.string().trim().regex(/^\d+$/, "must be a port number").transform(Number)
    .refine((n) => n >= 1 && n <= 65535, "must be from 1 to 65535").optional().default(8000),
  HOST: z.string().trim().regex(/^[A-Za-z0-9.:-]+$/, "must be an IP address or a host name")
    .optional().transform((v) => v || "127.0.0.1"),
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

function ensurePortFree(hostname: string, port: number) {
  try {
    Deno.listen({ hostname, port }).close();
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new Error(`port ${port} is already in use: stop what runs there or set PORT`);
    }
    throw err;
  }
}

/**
 * The parent of `pid`, from `ps` (reading `/proc` would need `--allow-all`), or `undefined` where
 * `ps` is missing (Windows) or `pid` is gone.
 */
async function parentOf(pid: number): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("ps", {
      args: ["-o", "ppid=", "-p", String(pid)],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const ppid = Number(new TextDecoder().decode(out.stdout).trim());
    return out.success && ppid > 0 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Calls `onGone` once when this process's parent or grandparent exits: `deno task` forwards
 * signals, but `npx` killed leaves `deno task` running, orphaned and unsignalled.
 */
function watchAncestors(onGone: () => void): () => void {
  const parent = Deno.ppid;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const check = async (grandparent: number | undefined) => {
    const now = grandparent === undefined ? undefined : await parentOf(parent);
    if (stopped) return;
    if (Deno.ppid !== parent || now !== grandparent) return onGone();
    timer = setTimeout(() => check(grandparent), PARENT_POLL_MS);
  };
  parentOf(parent).then((grandparent) => {
    if (!stopped) timer = setTimeout(() => check(grandparent), PARENT_POLL_MS);
  });
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function waitForHealth(base: string, exited: () => boolean) {
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
  const host = env.HOST;
  // The server runs in the project folder: a relative KV_PATH is made relative to ours.
  const kvPath = /^(:memory:|https?:\/\/|\/|[A-Za-z]:[\\/])/.test(env.KV_PATH)
    ? env.KV_PATH
    : `${Deno.cwd()}/${env.KV_PATH.replace(/^\.[\\/]/, "")}`;
  try {
    ensurePortFree(host, port);
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
      "scripts/_dev_server.ts",
    ],
    cwd: ROOT,
    env: {
      PORT: String(port),
      HOST: host,
      KV_PATH: kvPath,
      THINKIFIC_WEBHOOK_SECRET: env.THINKIFIC_WEBHOOK_SECRET,
      HOLD_MS: env.HOLD_MS,
    },
    // Held open until the server must stop (see _dev_server.ts).
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const status = child.status.finally(() => (exited = true));
  const stdin = child.stdin.getWriter();
  const forwarding = Promise.all([
    forwardLines(child.stdout, (l) => console.log(l)),
    forwardLines(child.stderr, (l) => console.error(l)),
  ]);

  const stop = new AbortController();
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const stopServer = () => {
    if (killTimer !== undefined || exited) return;
    stdin.close().catch(() => {});
    killTimer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, STOP_GRACE_MS);
  };
  const stopAll = () => {
    stop.abort();
    stopServer();
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((sig) => {
    Deno.addSignalListener(sig, stopAll);
    return [sig, stopAll] as const;
  });
  const unwatch = watchAncestors(stopAll);

  const listening = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  const base = `http://${listening.includes(":") ? `[${listening}]` : listening}:${port}`;
  let failed = false;
  try {
    say(`dev: starting the server on ${host} port ${port} (KV_PATH=${kvPath})`);
    await waitForHealth(base, () => exited);
    await playStory(
      `${base}${WEBHOOK_PATH}`,
      env.THINKIFIC_WEBHOOK_SECRET,
      await loadFixtures(),
      stop.signal,
    );
    if (!stop.signal.aborted) await printResults(base, env.API_TOKEN);
    if (!stop.signal.aborted) {
      say(
        `Serving at ${base}/ (GET /api/records, GET /api/unmatched, ` +
          `POST ${WEBHOOK_PATH}). Ctrl+C to stop.`,
      );
    }
  } catch (err) {
    console.error(`dev: ${(err as Error).message}`);
    failed = true;
    stopServer();
  }

  const result = await status;
  clearTimeout(killTimer);
  unwatch();
  await forwarding;
  for (const [sig, handler] of handlers) Deno.removeSignalListener(sig, handler);
  if (failed) return 1;
  return stop.signal.aborted ? 0 : result.code;
}

if (import.meta.main) Deno.exit(await main());
