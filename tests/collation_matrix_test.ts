/**
 * The collation matrix: each row is a story of deliveries against the real app (in-memory KV), with
 * the answer expected at every step and the records and unmatched events expected at the end.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  BASE_TIME,
  dump,
  harness,
  lessonWebhook,
  progressWebhook,
  signedInit,
  type Webhook,
} from "./_helpers.ts";

const T = BASE_TIME;

/** A step: post `event` once and expect `status` (and `outcome`, the body's status). */
type Step =
  | { post: string; status: number; outcome?: string }
  | { parallel: string[]; times?: number }
  | { deliver: string; status: number; outcome: string; attempts?: number }
  | { advance: number };

interface Row {
  name: string;
  events: Record<string, Webhook>;
  steps: Step[];
  /** Expected records as "Progress+Lesson" names. */
  records: string[];
  unmatched?: string[];
  env?: Record<string, string>;
}

const L = (at: number, extra: Parameters<typeof lessonWebhook>[0] = {}) =>
  lessonWebhook({ at, ...extra });
const P = (at: number, extra: Parameters<typeof progressWebhook>[0] = {}) =>
  progressWebhook({ at, ...extra });

const post = (name: string, status: number, outcome?: string): Step => ({
  post: name,
  status,
  outcome,
});
/** Time passes (as between Thinkific's retries). */
const wait: Step = { advance: 60_000 };
const deliver = (name: string, status: number, outcome: string, attempts?: number): Step => ({
  deliver: name,
  status,
  outcome,
  attempts,
});

const rows: Row[] = [
  {
    name: "lesson first",
    events: { L: L(T), P: P(T) },
    steps: [post("L", 200, "stored"), post("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "progress first",
    events: { L: L(T), P: P(T) },
    steps: [post("P", 409, "pending"), post("L", 200, "collated"), post("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "simultaneous arrival",
    events: { L: L(T), P: P(T) },
    steps: [{ parallel: ["L", "P"] }, deliver("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "lesson redelivered before pairing",
    events: { L: L(T), P: P(T) },
    steps: [post("L", 200, "stored"), post("L", 200, "stored"), post("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "lesson redelivered after pairing",
    events: { L: L(T), P: P(T) },
    steps: [post("L", 200), post("P", 200), post("L", 200, "collated"), post("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "progress redelivered before pairing",
    events: { L: L(T), P: P(T) },
    steps: [post("P", 409), post("P", 409, "pending"), post("L", 200, "collated"), post("P", 200)],
    records: ["P+L"],
  },
  {
    name: "progress redelivered many times after pairing",
    events: { L: L(T), P: P(T) },
    steps: [post("L", 200), post("P", 200), ...Array(12).fill(post("P", 200, "collated"))],
    records: ["P+L"],
  },
  ...[1, -1, 499, -499, 500, -500].flatMap((skew): Row[] => [
    {
      name: `skew ${skew} ms, lesson first: paired on the progress retry`,
      events: { L: L(T), P: P(T + skew) },
      steps: [
        post("L", 200, "stored"),
        post("P", 409, "pending"),
        wait,
        post("P", 200, "collated"),
      ],
      records: ["P+L"],
    },
    {
      name: `skew ${skew} ms, progress first`,
      events: { L: L(T), P: P(T + skew) },
      steps: [post("P", 409), post("L", 200, "stored"), wait, post("P", 200, "collated")],
      records: ["P+L"],
    },
  ]),
  ...[501, -501, 5000].map((skew): Row => ({
    name: `skew ${skew} ms: never paired, progress ends unmatched`,
    events: { L: L(T), P: P(T + skew) },
    steps: [post("L", 200), deliver("P", 200, "unmatched", 10)],
    records: [],
    unmatched: ["P"],
  })),
  {
    name: "skew 3 ms, fast retries: pending until the settle time has passed",
    events: { L: L(T), P: P(T + 3) },
    steps: [
      post("L", 200),
      post("P", 409),
      post("P", 409, "pending"),
      { advance: 9_999 },
      post("P", 409, "pending"),
      { advance: 1 },
      post("P", 200, "collated"),
    ],
    records: ["P+L"],
  },
  {
    name: "skew 3 ms, fast retries: the last delivery pairs without waiting",
    env: { GIVE_UP_AFTER_ATTEMPTS: "3" },
    events: { L: L(T), P: P(T + 3) },
    steps: [post("L", 200), post("P", 409), post("P", 409), post("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "shuffled close completions: an early retry does not take a neighbour's lesson",
    events: {
      La: L(T, { lesson: 1 }),
      Pa: P(T, { percentage: "10" }),
      Lb: L(T + 100, { lesson: 2 }),
      Pb: P(T + 100, { percentage: "20" }),
    },
    steps: [
      post("Pa", 409),
      post("Lb", 200, "stored"),
      post("Pa", 409, "pending"),
      post("La", 200, "collated"),
      post("Pb", 200, "collated"),
      post("Pa", 200, "collated"),
    ],
    records: ["Pa+La", "Pb+Lb"],
  },
  {
    name: "skew 0 ms pairs at once from either side",
    events: { L: L(T), P: P(T), L2: L(T + 1000), P2: P(T + 1000) },
    steps: [
      post("P", 409),
      post("L", 200, "collated"),
      post("L2", 200),
      post("P2", 200, "collated"),
    ],
    records: ["P+L", "P2+L2"],
  },
  {
    name: "two lessons in one window: exact beats near",
    events: { L1: L(T, { lesson: 1 }), L2: L(T + 100, { lesson: 2 }), P: P(T + 100) },
    steps: [post("L1", 200), post("L2", 200), post("P", 200, "collated")],
    records: ["P+L2"],
  },
  {
    name: "two lessons in one window: exact beats near even when near arrives later",
    events: { L1: L(T, { lesson: 1 }), L2: L(T + 3, { lesson: 2 }), P: P(T) },
    steps: [post("P", 409), post("L2", 200, "stored"), post("L1", 200, "collated")],
    records: ["P+L1"],
  },
  {
    name: "two lessons in one window: closest wins on retry",
    events: { L1: L(T, { lesson: 1 }), L2: L(T + 300, { lesson: 2 }), P: P(T + 260) },
    steps: [post("L1", 200), post("L2", 200), post("P", 409), wait, post("P", 200, "collated")],
    records: ["P+L2"],
  },
  {
    name: "near-near resolved one-to-one (rival retries first)",
    events: {
      L0: L(T + 955, { lesson: 1 }),
      L1: L(T + 1040, { lesson: 2 }),
      P1: P(T + 1000, { percentage: "10" }),
      P2: P(T + 1045, { percentage: "20" }),
    },
    steps: [
      post("L0", 200),
      post("L1", 200),
      post("P1", 409),
      post("P2", 409),
      wait,
      post("P2", 200, "collated"),
      post("P1", 200, "collated"),
    ],
    records: ["P1+L0", "P2+L1"],
  },
  {
    name: "near-near resolved one-to-one (the farther one retries first)",
    events: {
      L0: L(T + 955, { lesson: 1 }),
      L1: L(T + 1040, { lesson: 2 }),
      P1: P(T + 1000, { percentage: "10" }),
      P2: P(T + 1045, { percentage: "20" }),
    },
    steps: [
      post("L0", 200),
      post("L1", 200),
      post("P1", 409),
      post("P2", 409),
      wait,
      post("P1", 200, "collated"),
      post("P2", 200, "collated"),
    ],
    records: ["P1+L0", "P2+L1"],
  },
  {
    name: "one lesson, two progress events: the closer pairs, the other gives up",
    events: { L: L(T), P1: P(T + 30), P2: P(T + 200) },
    steps: [
      post("L", 200),
      post("P2", 409),
      post("P1", 409),
      post("P2", 409, "pending"),
      wait,
      post("P1", 200, "collated"),
      deliver("P2", 200, "unmatched"),
    ],
    records: ["P1+L"],
    unmatched: ["P2"],
  },
  {
    name: "lone progress: 409s, then unmatched, then a late lesson resolves it",
    events: { P: P(T), L: L(T + 20) },
    steps: [
      ...Array(9).fill(post("P", 409, "pending")),
      post("P", 200, "unmatched"),
      post("P", 200, "unmatched"),
      post("L", 200, "collated"),
      post("P", 200, "collated"),
    ],
    records: ["P+L"],
    unmatched: [],
  },
  {
    name: "lone progress stays unmatched",
    events: { P: P(T) },
    steps: [deliver("P", 200, "unmatched", 10)],
    records: [],
    unmatched: ["P"],
  },
  {
    name: "GIVE_UP_AFTER_ATTEMPTS=3",
    env: { GIVE_UP_AFTER_ATTEMPTS: "3" },
    events: { P: P(T) },
    steps: [post("P", 409), post("P", 409), post("P", 200, "unmatched")],
    records: [],
    unmatched: ["P"],
  },
  {
    name: "lone lesson is stored, never recorded",
    events: { L: L(T) },
    steps: [post("L", 200, "stored"), post("L", 200, "stored")],
    records: [],
  },
  {
    name: "another user at the same instant",
    events: { L: L(T, { user: 2 }), P: P(T) },
    steps: [post("L", 200), deliver("P", 200, "unmatched")],
    records: [],
    unmatched: ["P"],
  },
  {
    name: "another course at the same instant",
    events: { L: L(T, { course: 77 }), P: P(T) },
    steps: [post("L", 200), deliver("P", 200, "unmatched")],
    records: [],
    unmatched: ["P"],
  },
  {
    name: "another school at the same instant",
    events: { L: L(T, { tenant: "999" }), P: P(T) },
    steps: [post("L", 200), deliver("P", 200, "unmatched")],
    records: [],
    unmatched: ["P"],
  },
  {
    name: "two learners at the same instant each get their own",
    events: {
      La: L(T, { user: 1 }),
      Lb: L(T, { user: 2 }),
      Pa: P(T, { user: 1 }),
      Pb: P(T, { user: 2 }),
    },
    steps: [
      post("Lb", 200),
      post("La", 200),
      post("Pa", 200, "collated"),
      post("Pb", 200, "collated"),
    ],
    records: ["Pa+La", "Pb+Lb"],
  },
  {
    name: "many parallel deliveries of the same pair make one record",
    events: { L: L(T), P: P(T) },
    steps: [{ parallel: ["L", "P"], times: 15 }, deliver("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "LOGIC_TOPIC=lesson.completed swaps the channels",
    env: { LOGIC_TOPIC: "lesson.completed" },
    events: { L: L(T), P: P(T + 7) },
    steps: [post("P", 200, "stored"), post("L", 409, "pending"), wait, post("L", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "PENDING_STATUS=425",
    env: { PENDING_STATUS: "425" },
    events: { L: L(T), P: P(T) },
    steps: [post("P", 425, "pending"), post("L", 200), post("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    name: "a progress arriving after its lesson was paired does not take it again",
    events: { L: L(T), P1: P(T), P2: P(T) },
    steps: [
      post("L", 200, "stored"),
      post("P1", 200, "collated"),
      post("P2", 409, "pending"),
      deliver("P2", 200, "unmatched"),
    ],
    records: ["P1+L"],
    unmatched: ["P2"],
  },
  {
    name: "the same id under another topic is refused, never paired with itself",
    events: { L: L(T, { id: "77001" }), X: P(T, { id: "77001" }), P: P(T) },
    steps: [post("L", 200, "stored"), post("X", 422), post("P", 200, "collated")],
    records: ["P+L"],
  },
  {
    // P@0 and R@600 are more than one window apart: P sees R only by reading its cluster.
    name: "a rival beyond one window still keeps the lesson closer to it",
    events: { L2: L(T - 450, { lesson: 2 }), L: L(T + 400), P: P(T), R: P(T + 600) },
    steps: [
      post("L2", 200),
      post("L", 200),
      post("P", 409),
      post("R", 409),
      wait,
      post("P", 200, "collated"),
      post("R", 200, "collated"),
    ],
    records: ["P+L2", "R+L"],
  },
  ...(["P", "R"] as const).map((first): Row => ({
    // Issue 11: P@1000 and R@1500; lessons C2@600, C@1300, C'@1550. The chain decides: R-C' (50),
    // then P-C (300); C2 stays alone, whichever progress settles first.
    name: `the whole chain of windows decides, ${first} settling first`,
    events: {
      C2: L(T + 600, { lesson: 2 }),
      C: L(T + 1300, { lesson: 3 }),
      "C'": L(T + 1550, { lesson: 4 }),
      P: P(T + 1000),
      R: P(T + 1500),
    },
    steps: [
      post("C2", 200),
      post("C", 200),
      post("C'", 200),
      post("P", 409),
      post("R", 409),
      wait,
      post(first, 200, "collated"),
      post(first === "P" ? "R" : "P", 200, "collated"),
    ],
    records: ["P+C", "R+C'"],
  })),
  {
    name: "a lone lesson is listed as unmatched after the horizon, and leaves when it pairs",
    env: { UNMATCHED_AFTER_HOURS: "1" },
    events: { L: L(T), P: P(T + 3) },
    steps: [post("L", 200, "stored"), { advance: 3_600_000 }],
    records: [],
    unmatched: ["L"],
  },
  {
    name: "MATCH_WINDOW_MS=50",
    env: { MATCH_WINDOW_MS: "50" },
    events: {
      L1: L(T, { lesson: 1 }),
      P1: P(T + 50),
      L2: L(T + 1000, { lesson: 2 }),
      P2: P(T + 1051),
    },
    steps: [
      post("L1", 200),
      post("L2", 200),
      deliver("P1", 200, "collated"),
      deliver("P2", 200, "unmatched"),
    ],
    records: ["P1+L1"],
    unmatched: ["P2"],
  },
];

for (const row of rows) {
  Deno.test(`matrix: ${row.name}`, async () => {
    const h = await harness(row.env);
    try {
      // The first event named with an id names it (one row reuses an id under another topic).
      const nameOf = new Map(Object.entries(row.events).reverse().map(([n, e]) => [e.id, n]));
      for (const [i, step] of row.steps.entries()) {
        const where = `step ${i + 1} of "${row.name}"`;
        if ("advance" in step) {
          h.clock.now += step.advance;
        } else if ("parallel" in step) {
          const bodies = Array.from({ length: step.times ?? 1 }, () => step.parallel).flat();
          const answers = await Promise.all(bodies.map((n) => h.post(row.events[n])));
          for (const a of answers) assert(a.status < 500, `${where}: ${a.status}`);
        } else if ("deliver" in step) {
          const r = await h.deliver(row.events[step.deliver]);
          assertEquals([r.status, r.json.status], [step.status, step.outcome], where);
          if (step.attempts) assertEquals(r.attempts, step.attempts, where);
        } else {
          const r = await h.post(row.events[step.post]);
          assertEquals(r.status, step.status, `${where}: ${JSON.stringify(r.json)}`);
          if (step.outcome) assertEquals(r.json.status, step.outcome, where);
        }
      }
      const records = (await h.get("/api/records")).json.records as Record<string, string>[];
      const pairs = records.map((r) =>
        `${nameOf.get(r.progress_event_id)}+${nameOf.get(r.lesson_event_id)}`
      );
      assertEquals(pairs.sort(), [...row.records].sort());
      if (row.unmatched) {
        const unmatched = (await h.get("/api/unmatched")).json.events as { event_id: string }[];
        assertEquals(
          unmatched.map((u) => nameOf.get(u.event_id)).sort(),
          [...row.unmatched].sort(),
        );
      }
      // Every event stored once, every event in at most one record.
      const stored = (await dump(h.kv)).filter((e) => e.key[0] === "events");
      const ids = stored.map((e) => e.key.at(-1));
      assertEquals(ids.length, new Set(ids).size);
      const inRecords = records.flatMap((r) => [r.progress_event_id, r.lesson_event_id]);
      assertEquals(inRecords.length, new Set(inRecords).size);
    } finally {
      h.close();
    }
  });
}

Deno.test("matrix: the record carries every field, from the right event", async () => {
  const h = await harness();
  try {
    await h.post(P(T - 86_400_000, { percentage: "12.5" })); // an earlier progress of the enrollment
    const lesson = L(T, { lesson: 24017, lessonName: "Wet on wet" });
    const progress = P(T + 2, { percentage: "17.5" });
    await h.post(lesson);
    await h.post(progress);
    h.clock.now += 60_000;
    const r = await h.post(progress);
    assertEquals(r.json.status, "collated");
    assertEquals(r.json.record, {
      tenant_id: "48213",
      user_id: 5000049,
      user_email: "ada@example.com",
      course_id: 2100013,
      course_name: "Watercolor for beginners",
      enrollment_id: 90000042,
      lesson_id: 24017,
      lesson_name: "Wet on wet",
      lesson_type: "Video",
      chapter_id: 7013,
      chapter_name: "Mixing colours",
      completed_at: "2026-11-02T14:15:12.334Z",
      percentage_completed: 17.5,
      previous_percentage_completed: 12.5,
      first_completion: true,
      progress_event_id: progress.id,
      lesson_event_id: lesson.id,
      skew_ms: 2,
      collated_at: new Date(h.clock.now).toISOString(),
    });
  } finally {
    h.close();
  }
});

Deno.test("matrix: a re-completion that does not raise the percentage is not a first completion", async () => {
  const h = await harness();
  try {
    await h.post(L(T, { lesson: 1 }));
    await h.post(P(T, { percentage: "50" }));
    await h.post(L(T + 60_000, { lesson: 1 }));
    const r = await h.post(P(T + 60_000, { percentage: "50" }));
    const record = r.json.record as Record<string, unknown>;
    assertEquals([record.previous_percentage_completed, record.first_completion], [50, false]);
  } finally {
    h.close();
  }
});

Deno.test("matrix: one log line per webhook, without secrets, signatures or emails", async () => {
  const h = await harness();
  try {
    const p = P(T);
    const lesson = L(T);
    const order = { ...p, resource: "order", action: "created" };
    await h.post(p);
    await h.post(lesson);
    await h.post(order);
    await h.post(p, { secret: false });
    await h.post(p, { headers: { "x-thinkific-hmac-sha256": "ab".repeat(32) } });
    const lines = h.logs.filter((l) => l.msg === "webhook");
    assertEquals(lines.map((l) => l.outcome), [
      "pending",
      "collated",
      "ignored",
      "bad_signature",
      "bad_signature",
    ]);
    const signatures = await Promise.all(
      [p, lesson, order].map(async (body) =>
        ((await signedInit(body)).headers as Record<string, string>)["x-thinkific-hmac-sha256"]
      ),
    );
    signatures.push("ab".repeat(32));
    const forbidden = ["ada@example.com", "test-webhook-secret", ...signatures];
    for (const line of lines) {
      assert(typeof line.ms === "number");
      const text = JSON.stringify(line).toLowerCase();
      for (const secret of forbidden) assert(!text.includes(secret.toLowerCase()), text);
    }
    assertEquals(lines[0].event_id, p.id);
    assertEquals(lines[0].topic, "enrollment.progress");
  } finally {
    h.close();
  }
});
