/** `GET /api/records.csv` and the dashboard's "Download CSV": RFC 4180, streamed page by page. */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { allRecords, BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { csvField, csvStream, RECORD_FIELDS } from "../lib/csv.ts";
import { recordPages } from "../lib/store/records.ts";

const T = BASE_TIME;

/** A small RFC 4180 reader (quoted fields, doubled quotes, CRLF inside quotes). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"', i++);
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") (row.push(field), field = "");
    else if (ch === "\r" && text[i + 1] === "\n") {
      row.push(field), rows.push(row), row = [], field = "", i++;
    } else field += ch;
  }
  assertEquals([row, field], [[], ""], "the last line ends with CRLF");
  return rows;
}

Deno.test("csv: fields are quoted only when needed, quotes doubled, null empty", () => {
  assertEquals(csvField("plain"), "plain");
  assertEquals(csvField('say "hi", then\r\nleave'), '"say ""hi"", then\r\nleave"');
  assertEquals(csvField(null), "");
  assertEquals(csvField(undefined), "", 'a field a record lacks is empty, not "undefined"');
  assertEquals(csvField("a\rb"), '"a\rb"', "a bare CR is quoted");
  assertEquals(csvField("a\nb"), '"a\nb"', "a bare LF is quoted");
  assertEquals(csvField(-12.5), "-12.5");
  assertEquals(csvField(true), "true");
});

Deno.test("csv: the stream reads the next page only when the reader wants more", async () => {
  let pulled = 0;
  let closed = false;
  async function* pages() {
    try {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        await Promise.resolve();
        yield [{ a: i, b: `row ${i}` }];
      }
    } finally {
      closed = true;
    }
  }
  const reader = csvStream(["a", "b"] as const, pages()).getReader();
  const decoder = new TextDecoder();
  assertEquals(decoder.decode((await reader.read()).value), "a,b\r\n");
  assertEquals(decoder.decode((await reader.read()).value), "0,row 0\r\n");
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(pulled, 1, "no page is read ahead");
  await reader.cancel();
  assert(closed, "cancelling the download closes the listing");
});

Deno.test("csv: cancelling a stream over pages that cannot be closed is fine", async () => {
  const pages: AsyncIterable<{ a: number }[]> = {
    [Symbol.asyncIterator]: () => ({
      next: () => Promise.resolve({ done: false, value: [{ a: 1 }] }),
    }),
  };
  const reader = csvStream(["a"] as const, pages).getReader();
  await reader.read();
  await reader.cancel();
});

Deno.test("csv: /api/records.csv has every record of /api/records, with its filters", async () => {
  const h = await harness({ API_TOKEN: "csv-token" });
  try {
    const bearer = { authorization: "Bearer csv-token" };
    for (let i = 0; i < 12; i++) {
      const at = T + i * 60_000;
      const course = 10 + (i % 2);
      await h.post(lessonWebhook({
        user: 1 + (i % 3),
        course,
        at,
        lesson: 100 + i,
        lessonName: i === 3 ? 'Commas, "quotes"\nand lines' : `L${i}`,
      }));
      await h.post(progressWebhook({ user: 1 + (i % 3), course, at, percentage: String(i) }));
    }
    const get = (path: string) => h.app.request(path, { headers: bearer });
    const unauthorized = await h.app.request("/api/records.csv");
    assertEquals(unauthorized.status, 401);
    await unauthorized.body?.cancel();

    for (
      const query of [
        "",
        "course_id=11",
        "user_id=2&course_id=10",
        `since=${new Date(T + 300_000).toISOString()}`,
      ]
    ) {
      const res = await get(`/api/records.csv?${query}`);
      assertEquals(res.status, 200, query);
      assertMatch(res.headers.get("content-type") ?? "", /^text\/csv; charset=utf-8/);
      assertEquals(res.headers.get("content-disposition"), 'attachment; filename="records.csv"');
      const [header, ...rows] = parseCsv(await res.text());
      assertEquals(header, [...RECORD_FIELDS]);
      const want = await allRecords({ ...h, get: (p) => h.get(p, bearer) }, query);
      assert(want.length > 0, query);
      assertEquals(
        rows,
        want.map((r) => RECORD_FIELDS.map((f) => r[f] === null ? "" : String(r[f]))),
        query,
      );
    }
    for (const q of ["course_id=abc", "limit=5", "colour=red", "user_id=1&user_id=2"]) {
      const res = await get(`/api/records.csv?${q}`);
      assertEquals(res.status, 400, q);
      assertMatch((await res.json()).error, /query parameter/);
    }

    // Page after page (the CSV reads pages of 500: here of 5), every record once, in order.
    const paged = [];
    for await (const p of recordPages(h.kv, { filter: {}, limit: 5 })) paged.push(p.length);
    assertEquals(paged, [5, 5, 2]);

    // The dashboard's link: Basic auth, the course's records.
    const basic = { authorization: `Basic ${btoa("me:csv-token")}` };
    const page = await (await h.app.request("/courses/11", { headers: basic })).text();
    assertMatch(page, /href="\/courses\/11\/records.csv"[^>]*>Download CSV/);
    const none = await h.app.request("/courses/11/records.csv");
    assertEquals(none.status, 401);
    await none.body?.cancel();
    const dl = await h.app.request("/courses/11/records.csv", { headers: basic });
    assertEquals(
      dl.headers.get("content-disposition"),
      'attachment; filename="course-11-records.csv"',
    );
    const rows = parseCsv(await dl.text()).slice(1);
    assertEquals(rows.length, 6);
    assert(rows.every((r) => r[RECORD_FIELDS.indexOf("course_id")] === "11"));
    assert(rows.some((r) => r.includes('Commas, "quotes"\nand lines')));
  } finally {
    h.close();
  }
});

Deno.test("csv: text that a spreadsheet would run as a formula is neutralised; numbers stay numbers", () => {
  for (const text of ["=1+2", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]) {
    const field = csvField(text);
    const unquoted = field.startsWith('"') ? field.slice(1, -1) : field;
    assertEquals(unquoted, `'${text}`, JSON.stringify(text));
  }
  assertEquals(csvField("\r=1"), `"'\r=1"`);
  assertEquals(csvField('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  // Numbers are numbers, negative ones too; text that only contains the characters is left alone.
  assertEquals(csvField(-12.5), "-12.5");
  assertEquals(csvField(-7), "-7");
  assertEquals(csvField("a=b"), "a=b");
  assertEquals(csvField("a-b@c"), "a-b@c");
  // A bare CR is a line break to many readers: quoted.
  assertEquals(csvField("a\rb"), '"a\rb"');
  // The raw form, only when asked for.
  assertEquals(csvField("=1+2", { raw: true }), "=1+2");
  assertEquals(csvField("\r=1", { raw: true }), '"\r=1"');
});

Deno.test("csv: the downloads neutralise formulas by default, ?raw=true sends values as received", async () => {
  const h = await harness({ API_TOKEN: "csv-token" });
  try {
    const bearer = { authorization: "Bearer csv-token" };
    const basic = { authorization: `Basic ${btoa("me:csv-token")}` };
    // The lesson 7 ms after its progress: a negative skew.
    // No record yet: the header alone (an empty first page once left the download hanging).
    const empty = await h.app.request("/api/records.csv?course_id=12", { headers: bearer });
    assertEquals(parseCsv(await empty.text()), [[...RECORD_FIELDS]]);
    await h.post(lessonWebhook({ user: 1, course: 12, at: T + 7, lessonName: "=1+2" }));
    await h.deliver(progressWebhook({ user: 1, course: 12, at: T, percentage: "50" }));
    const column = (rows: string[][], name: (typeof RECORD_FIELDS)[number]) =>
      rows[1][RECORD_FIELDS.indexOf(name)];
    for (
      const [path, headers] of [
        ["/api/records.csv", bearer],
        ["/courses/12/records.csv", basic],
      ] as const
    ) {
      const safe = parseCsv(await (await h.app.request(path, { headers })).text());
      assertEquals(column(safe, "lesson_name"), "'=1+2", path);
      assertEquals(column(safe, "skew_ms"), "-7", path);
      assertEquals(column(safe, "percentage_completed"), "50", path);
      const raw = parseCsv(await (await h.app.request(`${path}?raw=true`, { headers })).text());
      assertEquals(column(raw, "lesson_name"), "=1+2", path);
      const off = parseCsv(await (await h.app.request(`${path}?raw=false`, { headers })).text());
      assertEquals(column(off, "lesson_name"), "'=1+2", path);
      const bad = await h.app.request(`${path}?raw=yes`, { headers });
      assertEquals(bad.status, 400, path);
      assertMatch(await bad.text(), /raw/);
    }
  } finally {
    h.close();
  }
});
