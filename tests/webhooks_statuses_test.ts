/**
 * `POST /webhooks/thinkific` (lib/http/webhooks.ts) through the app: the answer and status of each
 * outcome, the content types taken as JSON, and the one log line per delivery with its topic,
 * event id, outcome, status and duration.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  dump,
  harness,
  idleForwarder,
  lessonWebhook,
  type LogLine,
  progressWebhook,
  SECRET,
  signedInit,
} from "./_helpers.ts";
import { createApp } from "../lib/http/app.ts";
import { parseConfig } from "../lib/config.ts";
import { instrumentKv } from "../lib/store/instrument.ts";
import { importSigningKey, signBody } from "../lib/thinkific/signature.ts";

/** The log lines of the webhooks as `jsonLogger` writes them (an undefined field is absent). */
const webhookLines = (logs: LogLine[]) =>
  logs.filter((l) => l.msg === "webhook").map((l) => JSON.parse(JSON.stringify(l)));

/** A log line without its duration, and that duration. */
function split(line: Record<string, unknown>) {
  const { ms, ...rest } = line;
  assert(typeof ms === "number" && ms >= 0 && ms < 60_000, `ms: ${ms}`);
  return rest;
}

Deno.test("webhooks: each outcome has its answer: stored, collated, pending, unmatched, ignored", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    const lesson = lessonWebhook({ user: 1 });
    const stored = await h.post(lesson);
    assertEquals(stored, { status: 200, json: { status: "stored", event_id: lesson.id } });

    const progress = progressWebhook({ user: 1 });
    const collated = await h.post(progress);
    assertEquals(collated.status, 200);
    assertEquals(Object.keys(collated.json), ["status", "record"]);
    assertEquals(collated.json.status, "collated");
    const record = collated.json.record as Record<string, unknown>;
    assertEquals([record.lesson_event_id, record.progress_event_id], [lesson.id, progress.id]);

    const lone = progressWebhook({ user: 2 });
    assertEquals(await h.post(lone), {
      status: 409,
      json: { status: "pending", event_id: lone.id, attempts: 1, waiting_for: "lesson.completed" },
    });
    assertEquals(await h.post(lone), {
      status: 200,
      json: {
        status: "unmatched",
        event_id: lone.id,
        attempts: 2,
        waiting_for: "lesson.completed",
      },
    });

    const order = { ...progressWebhook(), resource: "order", action: "created" };
    assertEquals(await h.post(order), {
      status: 200,
      json: { status: "ignored", topic: "order.created" },
    });
  } finally {
    h.close();
  }
});

Deno.test("webhooks: PENDING_STATUS is the status of a pending answer, and only of it", async () => {
  const h = await harness({ PENDING_STATUS: "425" });
  try {
    const p = progressWebhook({ user: 3 });
    const r = await h.post(p);
    assertEquals([r.status, r.json.status], [425, "pending"]);
    assertEquals((await h.post(lessonWebhook({ user: 3 }))).status, 200);
    assertEquals((await h.post(p)).status, 200);
  } finally {
    h.close();
  }
});

Deno.test("webhooks: with LOGIC_TOPIC=lesson.completed a lone lesson waits for enrollment.progress", async () => {
  const h = await harness({ LOGIC_TOPIC: "lesson.completed" });
  try {
    const lesson = lessonWebhook({ user: 4 });
    assertEquals(await h.post(lesson), {
      status: 409,
      json: {
        status: "pending",
        event_id: lesson.id,
        attempts: 1,
        waiting_for: "enrollment.progress",
      },
    });
    const progress = progressWebhook({ user: 4 });
    const paired = await h.post(progress);
    assertEquals([paired.status, paired.json.status], [200, "collated"]);
    const alone = progressWebhook({ user: 40 });
    assertEquals(await h.post(alone), {
      status: 200,
      json: { status: "stored", event_id: alone.id },
    });
  } finally {
    h.close();
  }
});

Deno.test("webhooks: an id already received under the other topic is a 422 naming it, nothing stored", async () => {
  const h = await harness();
  try {
    const lesson = lessonWebhook({ user: 5 });
    await h.post(lesson);
    const before = await dump(h.kv);
    const r = await h.post(progressWebhook({ user: 5, id: lesson.id }));
    assertEquals(r, {
      status: 422,
      json: {
        error: `event id ${lesson.id} was already received as a lesson.completed event: ` +
          "an id names one event",
      },
    });
    assertEquals(await dump(h.kv), before);
    const line = split(webhookLines(h.logs).at(-1)!);
    assertEquals(line, {
      msg: "webhook",
      topic: "enrollment.progress",
      event_id: lesson.id,
      outcome: "conflict",
      status: 422,
    });
  } finally {
    h.close();
  }
});

Deno.test("webhooks: an erased learner's delivery is answered erased, logged, and stores nothing", async () => {
  const h = await harness();
  try {
    const erase = await h.app.request("/api/learners/48213/6", { method: "DELETE" });
    assertEquals(erase.status, 200);
    await erase.body?.cancel();
    const before = await dump(h.kv);
    const lesson = lessonWebhook({ user: 6 });
    assertEquals(await h.post(lesson), {
      status: 200,
      json: { status: "erased", event_id: lesson.id },
    });
    assertEquals(await dump(h.kv), before);
    assertEquals(split(webhookLines(h.logs).at(-1)!), {
      msg: "webhook",
      topic: "lesson.completed",
      event_id: lesson.id,
      outcome: "erased",
      status: 200,
    });
  } finally {
    h.close();
  }
});

Deno.test("webhooks: one log line per delivery with topic, event id, outcome and status", async () => {
  const h = await harness();
  try {
    const lesson = lessonWebhook({ user: 7 });
    const progress = progressWebhook({ user: 7 });
    const lone = progressWebhook({ user: 8 });
    const order = { ...progressWebhook(), resource: "order", action: "created" };
    const noId = { resource: "user", action: "signup", payload: {} };
    const big = progressWebhook({ user: 9 });
    Object.assign(big.payload, { padding: "x".repeat(66_000) });
    const badSchema = { ...progressWebhook(), created_at: "yesterday" };

    await h.post(lesson);
    await h.post(progress);
    await h.post(lone);
    await h.post(order);
    await h.post(noId);
    await h.post(lone, { secret: false });
    await h.post(lone, { headers: { "content-type": "text/plain" } });
    await h.post(big);
    await h.post(badSchema);
    await h.post({ id: "1", payload: {} });
    await h.post(progress, { headers: { "x-thinkific-topic": "lesson.completed" } });

    const lines = webhookLines(h.logs).map(split);
    const base = { msg: "webhook" };
    assertEquals(lines, [
      { ...base, topic: "lesson.completed", event_id: lesson.id, outcome: "stored", status: 200 },
      {
        ...base,
        topic: "enrollment.progress",
        event_id: progress.id,
        outcome: "collated",
        status: 200,
      },
      {
        ...base,
        topic: "enrollment.progress",
        event_id: lone.id,
        outcome: "pending",
        status: 409,
      },
      { ...base, topic: "order.created", event_id: order.id, outcome: "ignored", status: 200 },
      { ...base, topic: "user.signup", event_id: null, outcome: "ignored", status: 200 },
      { ...base, outcome: "bad_signature", status: 401 },
      { ...base, outcome: "rejected", status: 415 },
      { ...base, topic: "enrollment.progress", outcome: "rejected", status: 413 },
      { ...base, topic: "enrollment.progress", outcome: "rejected", status: 422 },
      { ...base, outcome: "rejected", status: 422 },
      { ...base, outcome: "rejected", status: 400 },
    ]);
  } finally {
    h.close();
  }
});

Deno.test("webhooks: a handled event too large to store is a 413 naming its topic and the limit", async () => {
  const h = await harness();
  try {
    const big = lessonWebhook();
    Object.assign(big.payload, { padding: "x".repeat(66_000) });
    assertEquals(await h.post(big), {
      status: 413,
      json: { error: "a lesson.completed body larger than 65000 bytes cannot be stored" },
    });
  } finally {
    h.close();
  }
});

Deno.test("webhooks: another topic over 65,000 bytes (within MAX_BODY_BYTES) is still acknowledged", async () => {
  const h = await harness();
  try {
    const order = { ...progressWebhook(), resource: "order", action: "created" };
    Object.assign(order.payload, { padding: "x".repeat(66_000) });
    assertEquals(await h.post(order), {
      status: 200,
      json: { status: "ignored", topic: "order.created" },
    });
    assertEquals(await dump(h.kv), []);
  } finally {
    h.close();
  }
});

Deno.test("webhooks: the logged duration is the request's, in tenths of a millisecond", async () => {
  // KV_PATH=:memory: wakes held deliveries by notification only: no poll timer outlives the test.
  const h = await harness({ HOLD_MS: "60", KV_PATH: ":memory:" });
  try {
    const started = performance.now();
    const r = await h.post(progressWebhook({ user: 10 }));
    const elapsed = performance.now() - started;
    assertEquals(r.status, 409, "held for HOLD_MS, then pending");
    const { ms } = webhookLines(h.logs).at(-1)!;
    assert(ms >= 60 && ms <= elapsed + 0.1, `logged ${ms} ms of ${elapsed} ms`);
    assertEquals(Math.round(ms * 10), ms * 10, `${ms} has one decimal at most`);
  } finally {
    h.close();
  }
});

Deno.test("webhooks: JSON content types are accepted, any other is a 415", async () => {
  const h = await harness();
  try {
    const accepted = [
      "application/json",
      "Application/JSON",
      "application/json ; charset=utf-8",
      "application/vnd.thinkific+json",
      "application/vnd.api.v2+json; charset=utf-8",
    ];
    for (const type of accepted) {
      const r = await h.post(lessonWebhook(), { headers: { "content-type": type } });
      assertEquals([r.status, r.json.status], [200, "stored"], type);
    }
    const refused = [
      "text/json",
      "text/plain",
      "application/jsonp",
      "application/json-seq",
      "application/+json",
      "application/vnd thing+json",
      "application/x+jsonx",
      "xapplication/x+json",
      "text/x+json",
    ];
    for (const type of refused) {
      const r = await h.post(lessonWebhook(), { headers: { "content-type": type } });
      assertEquals(r, {
        status: 415,
        json: { error: "Content-Type must be application/json" },
      }, type);
    }
  } finally {
    h.close();
  }
});

Deno.test("webhooks: a body without Content-Type is read as JSON; one with a UTF-8 BOM too", async () => {
  const h = await harness();
  try {
    const key = await importSigningKey(SECRET);
    const lesson = lessonWebhook();
    const text = JSON.stringify(lesson);
    const bare = new Request("http://x/webhooks/thinkific", {
      method: "POST",
      body: new TextEncoder().encode(text),
      headers: { "x-thinkific-hmac-sha256": await signBody(key, text) },
    });
    assertEquals(bare.headers.get("content-type"), null);
    const res = await h.app.request(bare);
    assertEquals([res.status, (await res.json()).status], [200, "stored"]);

    const bom = `\uFEFF${JSON.stringify(lessonWebhook())}`;
    const r = await h.app.request("/webhooks/thinkific", await signedInit(bom));
    assertEquals([r.status, (await r.json()).status], [200, "stored"]);
  } finally {
    h.close();
  }
});

Deno.test("webhooks: a new record kicks the forwarder once and has its outbox entry; nothing else kicks", async () => {
  const kv = await Deno.openKv(":memory:");
  const forwarder = idleForwarder();
  let kicks = 0;
  forwarder.kick = () => void kicks++;
  const config = parseConfig({ THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0" });
  const app = createApp({ kv, config, forwarder, log: () => {} });
  const post = async (body: unknown) => {
    const res = await app.request("/webhooks/thinkific", await signedInit(body));
    return (await res.json()).status;
  };
  try {
    const progress = progressWebhook({ user: 11 });
    assertEquals(await post(progress), "pending");
    assertEquals(await post(lessonWebhook({ user: 11 })), "collated");
    assertEquals(kicks, 1);
    assertEquals(await post(progress), "collated", "a redelivery of a paired event");
    assertEquals(await post(lessonWebhook({ user: 12 })), "stored");
    assertEquals(kicks, 1);
    const pending = await (await app.request("/api/outbox?status=pending")).json();
    const entries = pending.entries as { destination: string; record: { user_id: number } }[];
    assertEquals(entries.map((e) => [e.destination, e.record.user_id]), [["webhook", 11]]);
  } finally {
    kv.close();
  }
});

Deno.test("webhooks: storage failing mid-delivery is logged as an error with status 503", async () => {
  const real = await Deno.openKv(":memory:");
  const kv = instrumentKv(real, {
    before(call) {
      if (call === "commit") throw new Error("injected commit failure");
    },
  });
  const h = await harness({}, kv);
  try {
    const lesson = lessonWebhook();
    const r = await h.post(lesson);
    assertEquals(r.status, 503);
    assertEquals(split(webhookLines(h.logs).at(-1)!), {
      msg: "webhook",
      topic: "lesson.completed",
      event_id: lesson.id,
      outcome: "error",
      status: 503,
    });
  } finally {
    real.close();
  }
});
