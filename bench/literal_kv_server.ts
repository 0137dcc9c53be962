/**
 * The design card taken literally on Deno KV (issue 19's peer), as a competent user would first
 * write it: `Deno.serve`, the service's own HMAC check (`lib/thinkific/signature.ts`), only the
 * fields it needs parsed, no schema validation, no group commit, nothing else.
 *
 * Per delivery, ONE atomic checks that the event id is new (`["ids", tenant, id]` has no
 * versionstamp) and sets it, plus the event under `[tenant, user, course, topic, ts, id]`. A
 * lesson then answers 200. A progress event (new or redelivered) range-lists the lessons of its
 * enrollment over ±500 ms, takes the closest, and sets the record in a second atomic that checks
 * neither the progress (`["records", tenant, progressId]`) nor the lesson
 * (`["paired", tenant, lessonId]`) is recorded yet, so a pair is recorded once even under
 * duplicates and concurrent deliveries. When that check fails, one `getMany` says why: the
 * progress is already recorded (200) or the lesson went to another progress (the next closest is
 * tried). A progress with no lesson left answers 409. One JSON log line per webhook goes to stdout.
 *
 * Per pair the request's commits write 6 keys: the id and the event of each half, the record and
 * the lesson's paired marker.
 *
 * Env: `PORT`, `KV_PATH` (a file; default `:memory:`), `THINKIFIC_WEBHOOK_SECRET`, and, for the
 * bench only, `KV_LATENCY_MS` (every KV call waits that long first, through `instrumentKv`).
 *
 * Routes: `POST /webhooks/thinkific`, `GET /healthz`, `GET /api/records` (every record, one page,
 * in the service's field names, for the benchmark's data check).
 * @module
 */
import { instrumentKv } from "../lib/store/instrument.ts";
import { importSigningKey } from "../lib/thinkific/signature.ts";
import { verifySignature } from "./_webcrypto_verify.ts";

const LESSON = "lesson.completed";
const PROGRESS = "enrollment.progress";
const WINDOW_MS = 500;

/** What is stored per event: the few fields pairing needs, and the body as it came. */
interface StoredEvent {
  id: string;
  lesson_name?: string;
  percentage?: number;
  body: string;
}

/** A record, in the service's field names (those the bench's data check reads, and a few more). */
export interface LiteralRecord {
  progress_event_id: string;
  lesson_event_id: string;
  tenant_id: string;
  user_id: number;
  course_id: number;
  completed_at: string;
  percentage_completed: number;
  lesson_name: string;
  collated_at: string;
}

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
const decoder = new TextDecoder();

/** One JSON line per webhook on stdout, as the service and the SQLite baseline write. */
export function stdoutLog(fields: Record<string, unknown>) {
  console.log(JSON.stringify({ time: new Date().toISOString(), msg: "webhook", ...fields }));
}

/** The server's request handler on `kv`; `key` checks signatures (null: unsigned accepted). */
export function literalHandler(
  kv: Deno.Kv,
  key: CryptoKey | null,
  log: (fields: Record<string, unknown>) => void = stdoutLog,
): (req: Request) => Promise<Response> {
  type Outcome = { status: number; outcome: string; body: unknown };

  /** The progress `w` (stored) pairs with the closest lesson not recorded yet, if any. */
  async function pair(
    w: Webhook,
    id: string,
    tenant: string,
    user: number,
    course: number,
    ts: number,
  ): Promise<Outcome> {
    const lessons: Deno.KvEntry<StoredEvent>[] = [];
    for await (
      const e of kv.list<StoredEvent>({
        start: [tenant, user, course, LESSON, ts - WINDOW_MS],
        end: [tenant, user, course, LESSON, ts + WINDOW_MS + 1],
      })
    ) lessons.push(e);
    const dt = (e: Deno.KvEntry<StoredEvent>) => Math.abs((e.key[4] as number) - ts);
    lessons.sort((a, b) => dt(a) - dt(b));
    const recordKey = ["records", tenant, id];
    for (const lesson of lessons) {
      const pairedKey = ["paired", tenant, lesson.value.id];
      const record: LiteralRecord = {
        progress_event_id: id,
        lesson_event_id: lesson.value.id,
        tenant_id: tenant,
        user_id: user,
        course_id: course,
        completed_at: new Date(lesson.key[4] as number).toISOString(),
        percentage_completed: Number(w.payload?.percentage_completed),
        lesson_name: lesson.value.lesson_name ?? "",
        collated_at: new Date().toISOString(),
      };
      const res = await kv.atomic()
        .check({ key: recordKey, versionstamp: null }, { key: pairedKey, versionstamp: null })
        .set(recordKey, record)
        .set(pairedKey, id)
        .commit();
      const done = {
        status: 200,
        outcome: "collated",
        body: { status: "collated", lesson_event_id: lesson.value.id, progress_event_id: id },
      };
      if (res.ok) return done;
      const [mine] = await kv.getMany<[LiteralRecord, string]>([recordKey, pairedKey]);
      if (mine.value) {
        return { ...done, body: { ...done.body, lesson_event_id: mine.value.lesson_event_id } };
      }
      // The lesson went to another progress event: try the next closest.
    }
    return { status: 409, outcome: "pending", body: { status: "pending", event_id: id } };
  }

  async function collate(w: Webhook, topic: string, text: string): Promise<Outcome> {
    const id = String(w.id);
    const tenant = String(w.tenant_id);
    const user = w.payload?.user?.id;
    const course = w.payload?.course?.id;
    const ts = typeof w.created_at === "string" ? Date.parse(w.created_at) : NaN;
    if (typeof user !== "number" || typeof course !== "number" || !Number.isFinite(ts)) {
      return { status: 422, outcome: "rejected", body: { error: "missing fields" } };
    }
    const idKey = ["ids", tenant, id];
    const event: StoredEvent = topic === LESSON
      ? { id, lesson_name: String(w.payload?.lesson?.name ?? ""), body: text }
      : { id, percentage: Number(w.payload?.percentage_completed), body: text };
    const res = await kv.atomic()
      .check({ key: idKey, versionstamp: null })
      .set(idKey, true)
      .set([tenant, user, course, topic, ts, id], event)
      .commit();
    if (topic === LESSON) {
      return {
        status: 200,
        outcome: res.ok ? "stored" : "duplicate",
        body: { status: res.ok ? "stored" : "duplicate", event_id: id },
      };
    }
    // A progress event, new or redelivered (a 409's retry): pair it if it can be.
    return await pair(w, id, tenant, user, course, ts);
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
      result = await collate(w, topic, text);
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

  return async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "POST" && path === "/webhooks/thinkific") return await webhook(req);
    if (req.method === "GET" && path === "/healthz") return json({ status: "ok" });
    if (req.method === "GET" && path === "/api/records") {
      const records: LiteralRecord[] = [];
      for await (const e of kv.list<LiteralRecord>({ prefix: ["records"] })) records.push(e.value);
      return json({ records, cursor: null });
    }
    return json({ error: "not found" }, 404);
  };
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT") ?? "8002");
  const secret = Deno.env.get("THINKIFIC_WEBHOOK_SECRET");
  const latencyMs = Number(Deno.env.get("KV_LATENCY_MS") ?? "0");
  const raw = await Deno.openKv(Deno.env.get("KV_PATH") || ":memory:");
  const kv = latencyMs > 0 ? instrumentKv(raw, { before() {}, latency: () => latencyMs }) : raw;
  const handler = literalHandler(kv, secret ? await importSigningKey(secret) : null);
  // Exit through Deno.exit on a signal, so `--cpu-prof` writes its profile.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => Deno.exit(0));
  }
  Deno.serve({
    port,
    hostname: "127.0.0.1",
    onListen: ({ hostname, port }) =>
      console.log(JSON.stringify({ msg: "listening", url: `http://${hostname}:${port}/` })),
  }, handler);
}
