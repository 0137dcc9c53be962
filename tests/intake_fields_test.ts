/**
 * Webhook fields as users rely on them: a 422 names the field and says what is wrong with it, the
 * edge values are accepted ("0" and "100" percent, times with a UTC offset, a padded school id or
 * topic header), and what was accepted is what the record says.
 */
import { assertEquals } from "./_assert.ts";
import { allRecords, BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";

const p = progressWebhook();
const withPayload = (extra: Record<string, unknown>) => ({
  ...p,
  payload: { ...p.payload, ...extra },
});

const invalid: { name: string; body: unknown; path: (string | number)[]; message: string }[] = [
  {
    name: "school id with a space",
    body: { ...p, tenant_id: "a b" },
    path: ["tenant_id"],
    message: "must contain only letters, digits, _ . -",
  },
  {
    name: "event id with a space",
    body: { ...p, id: "a b" },
    path: ["id"],
    message: "must contain only letters, digits, _ . -",
  },
  {
    name: "percentage not a decimal string",
    body: withPayload({ percentage_completed: "1e2" }),
    path: ["payload", "percentage_completed"],
    message: 'must be a decimal string such as "17.5"',
  },
  {
    name: "percentage over 100",
    body: withPayload({ percentage_completed: "100.5" }),
    path: ["payload", "percentage_completed"],
    message: "must be between 0 and 100",
  },
  {
    name: "course_id other than course.id",
    body: withPayload({ course_id: 5 }),
    path: ["payload", "course_id"],
    message: "course_id must equal course.id",
  },
];

invalid.push({
  name: "lesson that is not an object",
  body: { ...lessonWebhook(), payload: { ...lessonWebhook().payload, lesson: 5 } },
  path: ["payload", "lesson"],
  message: "Invalid input: expected object, received number",
});

for (const row of invalid) {
  Deno.test(`intake fields: ${row.name} → 422 naming ${row.path.join(".")}`, async () => {
    const h = await harness();
    try {
      const r = await h.post(row.body);
      assertEquals(r.status, 422);
      assertEquals(r.json.issues, [{ path: row.path, message: row.message }]);
    } finally {
      h.close();
    }
  });
}

Deno.test("intake fields: a school id of spaces is blank once trimmed: both reasons", async () => {
  const h = await harness();
  try {
    const r = await h.post({ ...p, tenant_id: "   " });
    assertEquals(r.status, 422);
    assertEquals((r.json.issues as { message: string }[]).map((i) => i.message), [
      "must not be empty",
      "must contain only letters, digits, _ . -",
    ]);
  } finally {
    h.close();
  }
});

/** Delivers a lesson and a progress of one learner; returns the record. */
async function collate(
  lessonOpts: Record<string, unknown>,
  progressOpts: Record<string, unknown>,
  env: Record<string, string> = {},
) {
  const h = await harness(env);
  try {
    const l = await h.post(lessonOpts);
    assertEquals(l.status, 200, JSON.stringify(l.json));
    const r = await h.deliver(progressOpts);
    assertEquals(r.status, 200, JSON.stringify(r.json));
    const records = await allRecords(h);
    assertEquals(records.length, 1);
    return records[0];
  } finally {
    h.close();
  }
}

Deno.test('intake fields: "100" and "0" percent are accepted and recorded', async () => {
  for (const percentage of ["100", "0", "100.0"]) {
    const rec = await collate(lessonWebhook(), progressWebhook({ percentage }));
    assertEquals(rec.percentage_completed, Number(percentage));
  }
});

Deno.test("intake fields: created_at with a UTC offset is the same instant", async () => {
  const at = Date.parse("2026-11-02T14:15:12.334Z");
  const local = "2026-11-02T09:15:12.334-05:00";
  const rec = await collate({ ...lessonWebhook({ at }), created_at: local }, {
    ...progressWebhook({ at }),
    created_at: "2026-11-02T15:15:12.334+01:00",
  });
  assertEquals(rec.completed_at, new Date(at).toISOString());
});

Deno.test("intake fields: the school id is trimmed, and the topic header too", async () => {
  const h = await harness();
  try {
    const lesson = { ...lessonWebhook(), tenant_id: " 48213 " };
    const l = await h.post(lesson, { headers: { "x-thinkific-topic": " lesson.completed " } });
    assertEquals(l.status, 200, JSON.stringify(l.json));
    const r = await h.deliver({ ...progressWebhook(), tenant_id: "48213" });
    assertEquals(r.status, 200);
    const records = await allRecords(h, "tenant_id=48213");
    assertEquals(records.map((x) => x.tenant_id), ["48213"]);
  } finally {
    h.close();
  }
});

Deno.test("intake fields: a topic header that disagrees names both topics, trimmed", async () => {
  const h = await harness();
  try {
    const r = await h.post(lessonWebhook(), {
      headers: { "x-thinkific-topic": " enrollment.progress " },
    });
    assertEquals(r.status, 400);
    assertEquals(
      r.json.error,
      'X-Thinkific-Topic "enrollment.progress" disagrees with the body\'s topic "lesson.completed"',
    );
  } finally {
    h.close();
  }
});

Deno.test("intake fields: a progress without course_id is accepted", async () => {
  const body = progressWebhook();
  const { course_id: _, ...payload } = body.payload;
  const rec = await collate(lessonWebhook(), { ...body, payload });
  assertEquals(rec.course_id, body.payload.course.id);
});

Deno.test("intake fields: lessons are listed in the order of their position in the course", async () => {
  const h = await harness();
  try {
    // Lesson 102 is at position 2, lesson 201 at position 1; 102 is completed first.
    for (const [i, lesson] of [[0, 102], [1, 201]]) {
      const at = BASE_TIME + i * 60_000;
      assertEquals((await h.post(lessonWebhook({ at, lesson }))).status, 200);
      assertEquals((await h.deliver(progressWebhook({ at }))).status, 200);
    }
    const r = await h.get("/api/courses/2100013/lessons");
    assertEquals((r.json.lessons as { lesson_id: number }[]).map((l) => l.lesson_id), [201, 102]);
  } finally {
    h.close();
  }
});

Deno.test("intake fields: a learner's first record is a first completion only above 0 percent", async () => {
  for (const [percentage, first] of [["0", false], ["0.5", true]] as const) {
    const rec = await collate(lessonWebhook(), progressWebhook({ percentage }));
    assertEquals([rec.previous_percentage_completed, rec.first_completion], [null, first]);
  }
});

Deno.test("intake fields: an email or course name missing from the progress is taken from the lesson", async () => {
  const progress = progressWebhook();
  const rec = await collate(lessonWebhook(), {
    ...progress,
    payload: {
      ...progress.payload,
      user: { ...progress.payload.user, email: "" },
      course: { ...progress.payload.course, name: "" },
    },
  });
  assertEquals([rec.user_email, rec.course_name], ["ada@example.com", "Watercolor for beginners"]);
});
