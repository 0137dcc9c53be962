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
  assertEquals(csvField(-12.5), "-12.5");
  assertEquals(csvField(true), "true");
});

Deno.test("csv: the stream reads the next page only when the reader wants more", async () => {
  let pulled = 0;
  async function* pages() {
    for (let i = 0; i < 1000; i++) {
      pulled++;
      await Promise.resolve();
      yield [{ a: i, b: `row ${i}` }];
    }
  }
  const reader = csvStream(["a", "b"] as const, pages()).getReader();
  const decoder = new TextDecoder();
  assertEquals(decoder.decode((await reader.read()).value), "a,b\r\n");
  assertEquals(decoder.decode((await reader.read()).value), "0,row 0\r\n");
  assert(pulled <= 2, `pages read ahead: ${pulled}`);
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
