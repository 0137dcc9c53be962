/**
 * The baseline for `deno task bench`: the blog's design, as small as it gets. `Deno.serve` and
 * one SQLite file (`node:sqlite`): every event is inserted (`INSERT OR IGNORE` on its id), then
 * one indexed query looks for an unpaired counterpart within ±500 ms, closest first; if found,
 * both are marked paired and a record row is written. A progress without its lesson answers 409,
 * a lesson 200. The HMAC check is the service's own (`lib/thinkific/signature.ts`); there is no
 * schema validation beyond the few fields it needs.
 *
 * Each webhook is one SQLite transaction (WAL, `synchronous=FULL`, as Deno KV's SQLite backend:
 * acknowledged means on disk), and one JSON log line per webhook goes to stdout, as the service
 * does, so the comparison is of designs, not of logging or durability settings.
 *
 * Env: `PORT`, `DB_PATH` (default `:memory:`), `THINKIFIC_WEBHOOK_SECRET`.
 *
 * Routes: `POST /webhooks/thinkific`, `GET /healthz`, `GET /api/records` (every record, one page,
 * in the service's field names, for the benchmark's data check).
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { importSigningKey } from "../lib/thinkific/signature.ts";
import { verifySignature } from "./_webcrypto_verify.ts";

const LESSON = "lesson.completed";
const PROGRESS = "enrollment.progress";
const WINDOW_MS = 500;

const port = Number(Deno.env.get("PORT") ?? "8001");
const path = Deno.env.get("DB_PATH") || ":memory:";
const secret = Deno.env.get("THINKIFIC_WEBHOOK_SECRET");
const key = secret ? await importSigningKey(secret) : null;

const db = new DatabaseSync(path);
db.exec(`
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = FULL;
  PRAGMA busy_timeout = 5000;
  CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    "user" INTEGER NOT NULL,
    course INTEGER NOT NULL,
    topic TEXT NOT NULL,
    ts INTEGER NOT NULL,
    body TEXT NOT NULL,
    paired INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX IF NOT EXISTS events_match ON events (tenant, "user", course, topic, ts);
  CREATE TABLE IF NOT EXISTS records (
    progress_event_id TEXT PRIMARY KEY,
    lesson_event_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    "user" INTEGER NOT NULL,
    course INTEGER NOT NULL,
    completed_at INTEGER NOT NULL,
    percentage REAL,
    lesson_name TEXT,
    collated_at INTEGER NOT NULL
  );
`);

const insertEvent = db.prepare(
  `INSERT OR IGNORE INTO events (id, tenant, "user", course, topic, ts, body)
   VALUES (?, ?, ?, ?, ?, ?, ?)`,
);
const selfPaired = db.prepare(`SELECT paired FROM events WHERE id = ?`);
const findCounterpart = db.prepare(
  `SELECT id, ts, body FROM events
   WHERE tenant = ? AND "user" = ? AND course = ? AND topic = ? AND paired = 0
     AND ts BETWEEN ? - ${WINDOW_MS} AND ? + ${WINDOW_MS}
   ORDER BY abs(ts - ?) LIMIT 1`,
);
const markPaired = db.prepare(`UPDATE events SET paired = 1 WHERE id IN (?, ?)`);
const insertRecord = db.prepare(
  `INSERT OR IGNORE INTO records (progress_event_id, lesson_event_id, tenant, "user", course,
     completed_at, percentage, lesson_name, collated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
);
const allRecords = db.prepare(
  `SELECT progress_event_id, lesson_event_id, tenant AS tenant_id, "user" AS user_id, course AS
     course_id, completed_at, percentage AS percentage_completed, lesson_name FROM records
   ORDER BY completed_at`,
);

const decoder = new TextDecoder();

interface Webhook {
  id?: unknown;
  resource?: unknown;
  action?: unknown;
  tenant_id?: unknown;
  created_at?: unknown;
  payload?: {
    user?: { id?: unknown };
    course?: { id?: unknown };
    lesson?: { name?: unknown };
    percentage_completed?: unknown;
  };
}

const json = (body: unknown, status = 200) => Response.json(body, { status });

function log(fields: Record<string, unknown>) {
  console.log(JSON.stringify({ time: new Date().toISOString(), msg: "webhook", ...fields }));
}

type Outcome = { status: number; outcome: string; body: unknown };

/** Stores one event and pairs it if it can, in one transaction. */
function collate(w: Webhook, topic: string, text: string): Outcome {
  const id = String(w.id);
  const tenant = String(w.tenant_id);
  const user = w.payload?.user?.id;
  const course = w.payload?.course?.id;
  const ts = typeof w.created_at === "string" ? Date.parse(w.created_at) : NaN;
  if (typeof user !== "number" || typeof course !== "number" || !Number.isFinite(ts)) {
    return { status: 422, outcome: "rejected", body: { error: "missing fields" } };
  }
  db.exec("BEGIN IMMEDIATE");
  try {
    const inserted = insertEvent.run(id, tenant, user, course, topic, ts, text).changes > 0;
    if (!inserted && (selfPaired.get(id) as { paired: number } | undefined)?.paired) {
      db.exec("COMMIT");
      return { status: 200, outcome: "collated", body: { status: "collated", event_id: id } };
    }
    const other = topic === LESSON ? PROGRESS : LESSON;
    const found = findCounterpart.get(tenant, user, course, other, ts, ts, ts) as
      | { id: string; ts: number; body: string }
      | undefined;
    if (found) {
      markPaired.run(id, found.id);
      const [lesson, progress] = topic === LESSON
        ? [w, JSON.parse(found.body) as Webhook]
        : [JSON.parse(found.body) as Webhook, w];
      insertRecord.run(
        String(progress.id),
        String(lesson.id),
        tenant,
        user,
        course,
        Date.parse(String(lesson.created_at)),
        Number(progress.payload?.percentage_completed),
        String(lesson.payload?.lesson?.name ?? ""),
        Date.now(),
      );
      db.exec("COMMIT");
      return {
        status: 200,
        outcome: "collated",
        body: { status: "collated", lesson_event_id: lesson.id, progress_event_id: progress.id },
      };
    }
    db.exec("COMMIT");
    return topic === PROGRESS
      ? { status: 409, outcome: "pending", body: { status: "pending", event_id: id } }
      : { status: 200, outcome: "stored", body: { status: "stored", event_id: id } };
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
}

async function webhook(req: Request): Promise<Response> {
  const started = performance.now();
  const bytes = new Uint8Array(await req.arrayBuffer());
  if (key && !(await verifySignature(key, req.headers.get("x-thinkific-hmac-sha256"), bytes))) {
    log({ outcome: "bad_signature", status: 401 });
    return json({ error: "invalid signature" }, 401);
  }
  const text = decoder.decode(bytes);
  let w: Webhook;
  try {
    w = JSON.parse(text);
  } catch {
    return json({ error: "body is not valid JSON" }, 400);
  }
  const topic = `${w.resource}.${w.action}`;
  if (topic !== LESSON && topic !== PROGRESS) {
    log({ topic, outcome: "ignored", status: 200 });
    return json({ status: "ignored", topic });
  }
  let result: Outcome;
  try {
    result = collate(w, topic, text);
  } catch (err) {
    log({ topic, outcome: "error", status: 503, error: String(err) });
    return json({ error: "temporarily unavailable" }, 503);
  }
  log({
    topic,
    event_id: String(w.id),
    outcome: result.outcome,
    status: result.status,
    ms: Math.round((performance.now() - started) * 10) / 10,
  });
  return json(result.body, result.status);
}

Deno.serve({
  port,
  hostname: "127.0.0.1",
  onListen: ({ hostname, port }) =>
    console.log(JSON.stringify({ msg: "listening", url: `http://${hostname}:${port}/` })),
}, (req) => {
  const path = new URL(req.url).pathname;
  if (req.method === "POST" && path === "/webhooks/thinkific") return webhook(req);
  if (req.method === "GET" && path === "/healthz") return json({ status: "ok" });
  if (req.method === "GET" && path === "/api/records") {
    return json({ records: allRecords.all(), cursor: null });
  }
  return json({ error: "not found" }, 404);
});
