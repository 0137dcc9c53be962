/**
 * Test helpers: Thinkific-shaped webhooks, a harness around the real app on an in-memory KV, and
 * a delivery loop that retries like Thinkific.
 * @module
 */
import type { WarmViews } from "../lib/store/warm.ts";
import type { Hono } from "hono";
import { type Config, parseConfig } from "../lib/config.ts";
import type { Forwarder } from "../lib/forward/forwarder.ts";
import { createApp } from "../lib/http/app.ts";
import { createProjector } from "../lib/projector.ts";
import { importSigningKey, signBody } from "../lib/thinkific/signature.ts";

export const SECRET = "test-webhook-secret";
export const BASE_TIME = Date.parse("2026-11-02T14:15:12.334Z");

let counter = 0;
/** A fresh 23-digit event id. */
export function nextId(): string {
  counter += 1;
  return `2026110209151233${String(counter).padStart(7, "0")}`;
}

export interface Who {
  tenant?: string;
  user?: number;
  course?: number;
}

/** A `lesson.completed` webhook body. */
export function lessonWebhook(
  opts: Who & { id?: string; at?: number; lesson?: number; lessonName?: string } = {},
) {
  const course = opts.course ?? 2100013;
  const lesson = opts.lesson ?? 24017;
  return {
    id: opts.id ?? nextId(),
    resource: "lesson",
    action: "completed",
    tenant_id: opts.tenant ?? "48213",
    tenant_global_id: "5f0c7a2e-1b7d-4c39-9a51-0d3e4f6a8b21",
    created_at: new Date(opts.at ?? BASE_TIME).toISOString(),
    payload: {
      chapter: { id: 7013, name: "Mixing colours" },
      course: { id: course, name: "Watercolor for beginners" },
      enrollment: { id: 90000042 },
      lesson: {
        id: lesson,
        name: opts.lessonName ?? `Lesson ${lesson}`,
        position: lesson % 100,
        type: "Video",
      },
      user: {
        email: "ada@example.com",
        first_name: "Ada",
        id: opts.user ?? 5000049,
        last_name: "Tester",
      },
    },
  };
}

/** An `enrollment.progress` webhook body. */
export function progressWebhook(
  opts: Who & { id?: string; at?: number; percentage?: string } = {},
) {
  const course = opts.course ?? 2100013;
  return {
    id: opts.id ?? nextId(),
    resource: "enrollment",
    action: "progress",
    tenant_id: opts.tenant ?? "48213",
    created_at: new Date(opts.at ?? BASE_TIME).toISOString(),
    payload: {
      activated_at: "2026-10-30T08:00:00.000Z",
      completed_at: null,
      course: { id: course, name: "Watercolor for beginners" },
      course_id: course,
      created_at: "2026-10-30T08:00:00.000Z",
      expiry_date: null,
      free_trial: false,
      id: 90000042,
      percentage_completed: opts.percentage ?? "17.5",
      started_at: "2026-10-30T08:03:41.120Z",
      updated_at: "2026-11-02T14:15:12.320Z",
      user: {
        email: "ada@example.com",
        first_name: "Ada",
        id: opts.user ?? 5000049,
        last_name: "Tester",
      },
    },
  };
}

export type Webhook = ReturnType<typeof lessonWebhook> | ReturnType<typeof progressWebhook>;

const keyPromise = importSigningKey(SECRET);

/**
 * What the tests give `app.request` and `fetch`: narrower than `RequestInit` on purpose. Deno 2.5
 * types hono's `app.request` with undici's `RequestInit`, whose `body` refuses Deno's
 * `BodyInit` (an `ArrayBufferView` of any kind) but takes a string or a `Uint8Array`, as both
 * runtimes' `fetch` do.
 */
export interface TestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer>;
}

/** Request init for a signed delivery of `body`. */
export async function signedInit(
  body: unknown,
  opts: { secret?: boolean; headers?: Record<string, string> } = {},
): Promise<TestInit> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (typeof body === "object" && body !== null && "resource" in body) {
    const b = body as { resource: string; action: string };
    headers["x-thinkific-topic"] = `${b.resource}.${b.action}`;
  }
  if (opts.secret !== false) {
    headers["x-thinkific-hmac-sha256"] = await signBody(await keyPromise, text);
  }
  return { method: "POST", body: text, headers: { ...headers, ...opts.headers } };
}

/** A log line captured from the app. */
export type LogLine = Record<string, unknown>;

/** The real app on a KV database, with captured logs and a controllable clock. */
export interface Harness {
  app: Hono;
  kv: Deno.Kv;
  config: Config;
  logs: LogLine[];
  clock: { now: number };
  post(body: unknown, opts?: { secret?: boolean; headers?: Record<string, string> }): Promise<
    { status: number; json: Record<string, unknown> }
  >;
  get(path: string, headers?: Record<string, string>): Promise<
    { status: number; json: Record<string, unknown> }
  >;
  /** Posts until the answer is not the pending status, like Thinkific's retries (a minute apart). */
  deliver(body: unknown, maxAttempts?: number): Promise<
    { status: number; json: Record<string, unknown>; attempts: number }
  >;
  /** Projects the records' derived views, as a read through the app does first. */
  project(): Promise<void>;
  close(): void;
}

/** Builds a harness on `kv` (default: a new in-memory database). */
export async function harness(
  env: Record<string, string> = {},
  kv?: Deno.Kv,
  /**
   * `warm`: the app's warm views (`false`: none, every delivery reads); `recent: false`: no recent
   * records, a redelivery reads its view and its record.
   */
  opts: { warm?: false | WarmViews; recent?: false } = {},
): Promise<Harness> {
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0", ...env });
  const db = kv ?? await Deno.openKv(":memory:");
  const logs: LogLine[] = [];
  const clock = { now: Date.parse("2026-11-29T12:00:00.000Z") };
  const projector = createProjector({ kv: db, now: () => clock.now });
  const app = createApp({
    kv: db,
    config,
    log: (l) => logs.push(l),
    now: () => clock.now,
    projector,
    warm: opts.warm === false ? null : opts.warm,
    recent: opts.recent === false ? null : undefined,
  });
  const h: Harness = {
    app,
    kv: db,
    config,
    logs,
    clock,
    async post(body, opts) {
      const res = await app.request("/webhooks/thinkific", await signedInit(body, opts));
      return { status: res.status, json: await res.json() };
    },
    async get(path, headers) {
      const res = await app.request(path, { headers });
      return { status: res.status, json: await res.json() };
    },
    async deliver(body, maxAttempts = 15) {
      for (let attempt = 1;; attempt++) {
        if (attempt > 1) clock.now += 60_000;
        const r = await h.post(body);
        if (r.status !== config.pendingStatus || attempt >= maxAttempts) {
          return { ...r, attempts: attempt };
        }
      }
    },
    project: () => projector.drain(),
    close() {
      if (!kv) db.close();
    },
  };
  return h;
}

/** Every key/value in the database (for "nothing stored" checks). */
export async function dump(kv: Deno.Kv): Promise<Deno.KvEntry<unknown>[]> {
  const out: Deno.KvEntry<unknown>[] = [];
  for await (const e of kv.list({ prefix: [] })) out.push(e);
  return out;
}

/** All records, following cursors. */
export async function allRecords(h: Harness, query = ""): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let cursor: string | null = null;
  do {
    const sep = query ? "&" : "";
    const c: string = cursor ? `${sep}cursor=${cursor}` : "";
    const r = await h.get(`/api/records?${query}${c}`);
    if (r.status !== 200) throw new Error(`records: ${r.status} ${JSON.stringify(r.json)}`);
    out.push(...(r.json.records as Record<string, unknown>[]));
    cursor = r.json.cursor as string | null;
  } while (cursor);
  return out;
}

/**
 * A temporary folder, removed on dispose (`await using`). SQLite may still be closing its `-wal` and
 * `-shm` files in it when a KV handle or a server has just been closed, so removal is retried
 * until the folder is gone rather than left behind with a database in it.
 */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir();
  return {
    path,
    async [Symbol.asyncDispose]() {
      for (let attempt = 1;; attempt++) {
        try {
          await Deno.remove(path, { recursive: true });
          return;
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) return;
          if (attempt >= 50) throw err;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    },
  };
}

/** A forwarder that writes outbox entries (through the collator) but never sweeps. */
export function idleForwarder(): Forwarder {
  return {
    destinations: ["webhook"],
    kick() {},
    sweep: () => Promise.resolve(0),
    tick: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

/** `lib/<path>`'s URL as a string literal, for an `import` in a child's code. */
export const libImport = (path: string): string =>
  JSON.stringify(new URL(`../lib/${path}`, import.meta.url).href);

/**
 * Runs `code` in a child `deno eval` with the project's `deno.json` (and `v8Flags`), killed after
 * `killAfterMs` (10 s). For what only a process shows: whether it exits, what its heap keeps, what
 * it loads. `importMap` (a file) replaces `deno.json`'s imports; `env` is added to this process's.
 */
export async function evalChild(
  code: string,
  options: {
    v8Flags?: string;
    killAfterMs?: number;
    importMap?: string;
    env?: Record<string, string>;
  } = {},
): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const config = `--config=${new URL("../deno.json", import.meta.url).pathname}`;
  const flags = [
    ...options.v8Flags ? [`--v8-flags=${options.v8Flags}`] : [],
    ...options.importMap ? [`--import-map=${options.importMap}`] : [],
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", config, ...flags, code],
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const started = Date.now();
  const killer = setTimeout(() => child.kill(), options.killAfterMs ?? 10_000);
  const out = await child.output();
  clearTimeout(killer);
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return {
    code: out.code,
    stdout: text(out.stdout).trim(),
    stderr: text(out.stderr),
    ms: Date.now() - started,
  };
}

/** Runs `fn` on a new in-memory database, closed afterwards. */
export async function withKv(fn: (kv: Deno.Kv) => Promise<void>) {
  const kv = await Deno.openKv(":memory:");
  try {
    await fn(kv);
  } finally {
    kv.close();
  }
}
