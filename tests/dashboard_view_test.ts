/**
 * The dashboard's views as a reader sees them, rendered straight from their components: the
 * numbers and words in each table cell and card, the links, the empty-state sentences, dates in
 * UTC, relative "days ago", learner and course names escaped, and the drop-off chart's bars.
 * (The routes that feed them are in `tests/dashboard_test.ts` and `tests/dashboard_pages_test.ts`.)
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import {
  CoursePage,
  ErrorPage,
  Header,
  LearnerCell,
  NotFoundPage,
  OverviewPage,
  UnmatchedPage,
  when,
} from "../lib/dashboard/pages.tsx";
import { LearnersPage } from "../lib/dashboard/learners.tsx";
import { LessonChart } from "../lib/dashboard/chart.tsx";
import { STYLE } from "../lib/dashboard/style.ts";
import type { CourseSummary, LessonSummary } from "../lib/store/stats.ts";
import type { LearnerEntry, UnmatchedEntry } from "../lib/store/keys.ts";
import type { LessonProgressRecord } from "../lib/matching/record.ts";

const html = (node: unknown) => String(node);

/** The page's `<main>`, where each view draws. */
const mainOf = (page: string) => page.slice(page.indexOf("<main>"), page.indexOf("</main>"));

/** Each table row's cells, as the text a reader sees (a cell's lines joined by " / "). */
function rows(page: string): string[][] {
  return [...page.matchAll(/<tr>(.*?)<\/tr>/g)].map((tr) =>
    [...tr[1].matchAll(/<t[hd][^>]*>(.*?)<\/t[hd]>/g)].map((cell) =>
      cell[1].replace(/<div[^>]*>/g, " / ").replace(/<[^>]+>/g, "").trim()
    )
  );
}

/** The headers of the right-aligned (number) columns. */
const numberColumns = (page: string) =>
  [...page.matchAll(/<th class="num">([^<]*)<\/th>/g)].map((m) => m[1]);

const COURSE: CourseSummary = {
  tenant_id: "48213",
  course_id: 77,
  course_name: "Pottery <at> home & more",
  learners: 3,
  completions: 12,
  unmatched: 2,
  last7Days: 4,
  last30Days: 9,
  lastActivity: "2026-11-02T14:15:12.334Z",
};

Deno.test("dashboard view: times read as UTC minutes, a missing one as a dash", () => {
  assertEquals(when("2026-11-02T14:15:12.334Z"), "2026-11-02 14:15 UTC");
  assertEquals(when("2026-11-02T09:05:59Z"), "2026-11-02 09:05 UTC");
  assertEquals(when(null), "—");
  assertEquals(when(""), "—");
});

Deno.test("dashboard view: headers right-align number columns; a learner is their email, or their id", () => {
  assertEquals(
    html(Header({ cols: ["Learner", ["Reached", "num"]] })),
    '<thead><tr><th >Learner</th><th class="num">Reached</th></tr></thead>',
  );
  assertEquals(
    html(LearnerCell({ email: "ada@example.com", userId: 5 })),
    '<td>ada@example.com<div class="muted">user 5</div></td>',
  );
  assertEquals(
    html(LearnerCell({ email: "", userId: 5 })),
    '<td>user 5<div class="muted">user 5</div></td>',
  );
  assertEquals(
    html(LearnerCell({ email: "<b>eve</b>@example.com", userId: 6 })),
    '<td>&lt;b&gt;eve&lt;/b&gt;@example.com<div class="muted">user 6</div></td>',
  );
});

Deno.test("dashboard view: every page is an HTML document titled, styled and with the navigation", () => {
  const page = html(NotFoundPage({ message: "No completions are known for course <9>." }));
  assertMatch(page, /^<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">/);
  assert(page.includes('<meta name="viewport" content="width=device-width, initial-scale=1">'));
  assert(page.includes("<title>Not found · Lesson progress</title>"), page);
  assert(page.includes(`<style>${STYLE}</style>`), "the stylesheet, as written");
  assert(
    page.includes(
      '<nav><strong>Lesson progress</strong><a href="/">Courses</a><a href="/unmatched">Unmatched</a></nav>',
    ),
    page,
  );
  assertEquals(
    mainOf(page),
    "<main><h1>Not found</h1><p>No completions are known for course &lt;9&gt;.</p>" +
      '<p><a href="/">All courses</a></p>',
  );
  const titled = html(CoursePage({ course: COURSE, lessons: [], recent: [] }));
  assert(titled.includes("<title>Pottery &lt;at&gt; home &amp; more · Lesson progress</title>"));
});

Deno.test("dashboard view: the stylesheet has a rule for every class the pages use", () => {
  const pages = [
    html(OverviewPage({ courses: [COURSE] })),
    html(CoursePage({ course: COURSE, lessons: [lesson(1, 1, 2)], recent: [record({})] })),
    html(UnmatchedPage({ events: [unmatched({})], courses: new Map() })),
    html(LearnersPage({ course: COURSE, learners: [learner({})], next: null, now: NOW })),
  ];
  const classes = new Set(
    pages.flatMap((p) => [...p.matchAll(/class="([^"]+)"/g)].flatMap((m) => m[1].split(" "))),
  );
  assert(classes.size >= 10, [...classes].join(" "));
  for (const name of classes) {
    // Names for the browser tests and scripts, not styled.
    if (["learners", "unmatched", "count"].includes(name)) continue;
    assertMatch(STYLE, new RegExp(`\\.${name}\\b`), `.${name} has no rule`);
  }
  assertMatch(STYLE, /@media \(prefers-color-scheme: dark\)/);
  assertMatch(STYLE, /@media \(max-width: 40rem\)/);
});

Deno.test("dashboard view: the overview lists each course with its link, school, counts and last activity", () => {
  const quiet: CourseSummary = {
    ...COURSE,
    course_id: 78,
    course_name: "Glazing",
    tenant_id: "9",
    learners: 0,
    completions: 0,
    unmatched: 7,
    last7Days: 0,
    last30Days: 1,
    lastActivity: null,
  };
  const page = html(OverviewPage({ courses: [COURSE, quiet] }));
  assert(page.includes("<title>Courses · Lesson progress</title>"));
  assert(page.includes("<h1>Courses</h1>"));
  assertEquals(rows(page), [
    [
      "Course",
      "Learners seen",
      "Lessons completed, 7 days",
      "30 days",
      "Unmatched",
      "Last activity",
    ],
    [
      "Pottery &lt;at&gt; home &amp; more / school 48213",
      "3",
      "4",
      "9",
      "2",
      "2026-11-02 14:15 UTC",
    ],
    ["Glazing / school 9", "0", "0", "1", "7", "—"],
  ]);
  assert(page.includes('<a href="/courses/77">Pottery &lt;at&gt; home &amp; more</a>'), page);
  assert(page.includes('<a href="/courses/78">Glazing</a>'));
  assertEquals((page.match(/<td class="num">/g) ?? []).length, 8, "four number cells a course");
  assertEquals(numberColumns(page), [
    "Learners seen",
    "Lessons completed, 7 days",
    "30 days",
    "Unmatched",
  ]);
});

Deno.test("dashboard view: with no course yet, the overview says where to point the webhooks", () => {
  const page = mainOf(html(OverviewPage({ courses: [] })));
  assertEquals(
    page,
    '<main><h1>Courses</h1><p class="muted">No lesson completions yet. Point Thinkific&#39;s ' +
      "<code>lesson.completed</code> and <code>enrollment.progress</code> webhooks at " +
      "<code>/webhooks/thinkific</code>.</p>",
  );
});

function lesson(
  id: number,
  chapter: number,
  learners: number,
  name = `Lesson ${id}`,
): LessonSummary {
  return {
    lesson_id: id,
    lesson_name: name,
    lesson_type: "Video",
    position: id,
    chapter_id: chapter,
    chapter_name: `Chapter ${chapter}`,
    learners,
  };
}

function record(over: Partial<LessonProgressRecord>): LessonProgressRecord {
  return {
    tenant_id: "48213",
    user_id: 5,
    user_email: "ada@example.com",
    course_id: 77,
    course_name: COURSE.course_name,
    enrollment_id: 1,
    lesson_id: 1,
    lesson_name: "Centering",
    lesson_type: "Video",
    chapter_id: 1,
    chapter_name: "The wheel",
    completed_at: "2026-11-02T14:15:12.334Z",
    percentage_completed: 40,
    previous_percentage_completed: null,
    first_completion: true,
    progress_event_id: "p",
    lesson_event_id: "l",
    skew_ms: 0,
    collated_at: "2026-11-02T14:15:13.000Z",
    ...over,
  };
}

Deno.test("dashboard view: a course page shows its cards, links, chart and recent completions", () => {
  const page = html(
    CoursePage({
      course: COURSE,
      lessons: [lesson(1, 1, 2)],
      recent: [
        record({ previous_percentage_completed: 20 }),
        record({
          user_id: 6,
          user_email: "",
          lesson_name: "Trimming <feet>",
          chapter_name: "Finishing & glaze",
          completed_at: "2026-11-01T08:00:00.000Z",
          percentage_completed: 100,
        }),
      ],
    }),
  );
  const main = mainOf(page);
  assert(main.startsWith("<main><h1>Pottery &lt;at&gt; home &amp; more</h1>"), main);
  assert(main.includes('<p class="muted">Course 77 · school 48213</p>'), main);
  assert(main.includes('<a href="/courses/77/learners">Where each learner stands</a>'), main);
  assert(main.includes('<a href="/courses/77/records.csv" download="">Download CSV</a>'), main);
  const cards = [...main.matchAll(/<div class="card"><b>(\d+)<\/b> ([^<]+)<\/div>/g)].map((m) =>
    `${m[1]} ${m[2]}`
  );
  assertEquals(cards, [
    "3 learners seen",
    "12 lessons completed",
    "4 in the last 7 days",
    "2 unmatched",
  ]);
  assert(main.includes("<h2>Learners who completed each lesson</h2><svg"), main);
  assert(main.includes("<h2>Recent completions</h2>"));
  assertEquals(rows(page), [
    ["Learner", "Lesson", "Completed", "Reached"],
    ["ada@example.com / user 5", "Centering / The wheel", "2026-11-02 14:15 UTC", "40% / from 20%"],
    [
      "user 6 / user 6",
      "Trimming &lt;feet&gt; / Finishing &amp; glaze",
      "2026-11-01 08:00 UTC",
      "100%",
    ],
  ]);
  assert(main.includes('<td class="num">40%<div class="muted">from 20%</div></td>'), main);
  assertEquals(numberColumns(main), ["Reached"]);
});

Deno.test("dashboard view: a course with no completed lesson says so instead of a chart", () => {
  const main = mainOf(html(CoursePage({ course: COURSE, lessons: [], recent: [] })));
  assert(
    main.includes(
      '<h2>Learners who completed each lesson</h2><p class="muted">No lesson of this course has been completed yet.</p>',
    ),
    main,
  );
  assert(!main.includes("<svg"));
  assertEquals(rows(main), [["Learner", "Lesson", "Completed", "Reached"]]);
});

/** The chart's drawn parts in order: tag, its words, and the attributes that place it. */
function chartParts(svg: string): string[] {
  return [...svg.matchAll(/<(text|rect|title|g)([^>]*)>([^<]*)/g)].map(([, tag, attrs, text]) => {
    const a = Object.fromEntries(
      [...attrs.matchAll(/([\w-]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    const place = tag === "rect"
      ? `${a.class} y=${a.y} x=${a.x} w=${a.width} h=${a.height}`
      : tag === "g"
      ? `lesson ${a["data-lesson-id"]}`
      : tag === "title"
      ? ""
      : `${a.class ?? ""} x=${a.x}${a.dx ? `${a.dx}` : ""} y=${a.y}${
        a["text-anchor"] ? " end" : ""
      }`;
    return `${tag} ${place.trim()} ${text}`.replace(/ +/g, " ").trim();
  });
}

Deno.test("dashboard view: the chart has a bar per lesson, as long as its share of the most learners, under chapter headings", () => {
  const long = "A lesson name far longer than forty characters, cut";
  const svg = html(
    LessonChart({
      lessons: [
        lesson(11, 1, 8),
        lesson(12, 1, 1, long),
        lesson(21, 2, 0),
        lesson(13, 1, 2), // chapter 1 again after chapter 2: headed again
      ],
    }),
  );
  assertMatch(
    svg,
    /^<svg class="chart" width="100%" height="(\d+)" role="img" aria-label="Distinct learners who completed each lesson, in course order"><text class="chapter"/,
  );
  // 6 px top, a 26 px heading per chapter run, 40 px per lesson, 6 px bottom.
  assertEquals(svg.match(/height="(\d+)"/)![1], String(6 + 3 * 26 + 4 * 40 + 6));
  assertEquals(chartParts(svg), [
    "text chapter x=8 y=24 Chapter 1",
    "g lesson 11",
    "title Lesson 11: 8 learners",
    "text x=16 y=47 Lesson 11",
    "text count x=100%-8 y=47 end 8",
    "rect bg y=53 x=2% w=96% h=12",
    "rect bar y=53 x=2% w=96% h=12",
    "g lesson 12",
    `title ${long}: 1 learner`,
    `text x=16 y=87 ${long.slice(0, 39)}…`,
    "text count x=100%-8 y=87 end 1",
    "rect bg y=93 x=2% w=96% h=12",
    "rect bar y=93 x=2% w=12% h=12",
    "text chapter x=8 y=130 Chapter 2",
    "g lesson 21",
    "title Lesson 21: 0 learners",
    "text x=16 y=153 Lesson 21",
    "text count x=100%-8 y=153 end 0",
    "rect bg y=159 x=2% w=96% h=12",
    "rect bar y=159 x=2% w=0.5% h=12", // a sliver, so the bar is seen to be empty
    "text chapter x=8 y=196 Chapter 1",
    "g lesson 13",
    "title Lesson 13: 2 learners",
    "text x=16 y=219 Lesson 13",
    "text count x=100%-8 y=219 end 2",
    "rect bg y=225 x=2% w=96% h=12",
    "rect bar y=225 x=2% w=24% h=12",
  ]);
  assertEquals((svg.match(/ rx="3"/g) ?? []).length, 8, "rounded bars");
});

Deno.test("dashboard view: chart names are escaped and cut to fit; a chart of nobody has empty bars", () => {
  const chapter = "A chapter name that is longer than forty-four characters";
  const svg = html(
    LessonChart({
      lessons: [
        { ...lesson(1, 1, 0, "Wet on wet & <tools>"), chapter_name: chapter },
        { ...lesson(2, 1, 0, "x".repeat(40)), chapter_name: chapter },
      ],
    }),
  );
  const parts = chartParts(svg);
  assertEquals(parts[0], `text chapter x=8 y=24 ${chapter.slice(0, 43)}…`);
  assert(parts.includes("title Wet on wet &amp; &lt;tools&gt;: 0 learners"), parts.join("\n"));
  assert(parts.includes("text x=16 y=47 Wet on wet &amp; &lt;tools&gt;"));
  assert(parts.includes(`text x=16 y=87 ${"x".repeat(40)}`), "40 characters fit");
  assertEquals(parts.filter((p) => p.startsWith("rect bar")).map((p) => p.split(" w=")[1]), [
    "0.5% h=12",
    "0.5% h=12",
  ]);
  assertEquals(html(LessonChart({ lessons: [] })).match(/height="(\d+)"/)![1], "12");
});

function unmatched(over: Partial<UnmatchedEntry>): UnmatchedEntry {
  return {
    event_id: "e1",
    topic: "enrollment.progress",
    tenant_id: "48213",
    user_id: 5,
    course_id: 77,
    created_at: "2026-11-02T14:15:12.334Z",
    attempts: 10,
    gave_up_at: "2026-11-02T15:00:00.000Z",
    percentage_completed: 40,
    ...over,
  };
}

Deno.test("dashboard view: the unmatched page says in words why each event waits", () => {
  const page = html(
    UnmatchedPage({
      events: [
        unmatched({}),
        unmatched({
          topic: "lesson.completed",
          user_id: 6,
          course_id: 78,
          attempts: 1,
          percentage_completed: null,
          gave_up_at: "2026-11-05T14:15:00.000Z",
        }),
        unmatched({ user_id: 7, course_id: 79, percentage_completed: undefined, attempts: 3 }),
      ],
      courses: new Map([[77, "Pottery <at> home"], [78, "Glazing"]]),
    }),
  );
  assert(page.includes("<title>Unmatched · Lesson progress</title>"));
  assert(page.includes("<h1>Unmatched events</h1>"));
  assertMatch(page, /Progress events that found no lesson completion within the match window/);
  assertEquals(rows(page), [
    ["Learner", "Course", "Reached", "When", "Gave up"],
    [
      "user 5",
      "Pottery &lt;at&gt; home",
      "40%",
      "2026-11-02 14:15 UTC",
      "after 10 deliveries, 2026-11-02 15:00 UTC",
    ],
    [
      "user 6",
      "Glazing",
      "—",
      "2026-11-02 14:15 UTC",
      "a lesson alone, listed 2026-11-05 14:15 UTC",
    ],
    [
      "user 7",
      "course 79",
      "—",
      "2026-11-02 14:15 UTC",
      "after 3 deliveries, 2026-11-02 15:00 UTC",
    ],
  ]);
  assert(page.includes('<a href="/courses/77">Pottery &lt;at&gt; home</a>'), page);
  assert(page.includes('<a href="/courses/78">Glazing</a>'));
  assert(!page.includes('href="/courses/79"'), "no page for a course without a name");
  assert(page.includes('<table class="unmatched">'));
  assertEquals(numberColumns(page), ["Reached"]);
});

Deno.test("dashboard view: an empty unmatched queue says nothing is waiting", () => {
  const main = mainOf(html(UnmatchedPage({ events: [], courses: new Map() })));
  assert(main.endsWith("<p>Nothing is waiting. Every event found its counterpart.</p>"), main);
  assert(!main.includes("<table"));
});

Deno.test("dashboard view: a bad parameter's page says what is wrong and links back", () => {
  const page = html(
    ErrorPage({
      status: 400,
      message: "inactive_days must be <= 3650",
      back: "/courses/77/learners",
    }),
  );
  assert(page.includes("<title>Bad request · Lesson progress</title>"));
  assertEquals(
    mainOf(page),
    "<main><h1>This page cannot be shown</h1><p>inactive_days must be &lt;= 3650.</p>" +
      '<p><a href="/courses/77/learners">Start again</a> · <a href="/">All courses</a></p>',
  );
});

const NOW = Date.parse("2026-11-20T12:00:00.000Z");
const DAY = 86_400_000;

function learner(over: Partial<LearnerEntry>): LearnerEntry {
  return {
    tenant_id: "48213",
    user_id: 5,
    user_email: "ada@example.com",
    course_id: 77,
    last_lesson_id: 3,
    last_lesson_name: "Centering",
    last_chapter_name: "The wheel",
    percentage_completed: 40,
    lessons_completed: 4,
    last_activity_at: new Date(NOW - 2 * 3_600_000).toISOString(),
    ...over,
  };
}

Deno.test("dashboard view: the learners page lists where each learner stands and how long ago", () => {
  const at = (ms: number) => new Date(ms).toISOString();
  const page = html(
    LearnersPage({
      course: COURSE,
      learners: [
        learner({}),
        learner({
          user_id: 6,
          user_email: "<eve>@example.com",
          last_lesson_name: "Trimming & feet",
          last_chapter_name: "Finishing",
          percentage_completed: 100,
          lessons_completed: 12,
          last_activity_at: at(NOW - DAY - 1),
        }),
        learner({ user_id: 7, user_email: "", last_activity_at: at(NOW - 2 * DAY + 1) }),
        learner({ user_id: 8, last_activity_at: at(NOW - 12 * DAY) }),
        learner({ user_id: 9, last_activity_at: at(NOW + 3 * DAY) }), // a clock ahead: today
      ],
      next: null,
      now: NOW,
    }),
  );
  assert(
    page.includes("<title>Learners · Pottery &lt;at&gt; home &amp; more · Lesson progress</title>"),
  );
  const main = mainOf(page);
  assert(main.startsWith("<main><h1>Learners</h1>"), main);
  assert(
    main.includes(
      '<p class="muted"><a href="/courses/77">Pottery &lt;at&gt; home &amp; more</a> · every learner with a completed lesson, newest activity first</p>',
    ),
    main,
  );
  assert(main.includes('<form method="get" action="/courses/77/learners" class="filter">'), main);
  assert(
    main.includes(
      '<label>No activity for <input name="inactive_days" type="number" min="1" max="3650" value=""> days</label> <button',
    ),
    main,
  );
  assert(
    main.includes(
      '<button type="submit">Show who stalled</button> <a href="/courses/77/learners">All learners</a>',
    ),
  );
  assertEquals(rows(page), [
    ["Learner", "Last lesson completed", "Reached", "Lessons completed", "Last activity"],
    [
      "ada@example.com / user 5",
      "Centering / The wheel",
      "40%",
      "4",
      "today / 2026-11-20 10:00 UTC",
    ],
    [
      "&lt;eve&gt;@example.com / user 6",
      "Trimming &amp; feet / Finishing",
      "100%",
      "12",
      "1 day ago / 2026-11-19 11:59 UTC",
    ],
    ["user 7 / user 7", "Centering / The wheel", "40%", "4", "1 day ago / 2026-11-18 12:00 UTC"],
    [
      "ada@example.com / user 8",
      "Centering / The wheel",
      "40%",
      "4",
      "12 days ago / 2026-11-08 12:00 UTC",
    ],
    [
      "ada@example.com / user 9",
      "Centering / The wheel",
      "40%",
      "4",
      "today / 2026-11-23 12:00 UTC",
    ],
  ]);
  assertEquals((main.match(/<td class="num">/g) ?? []).length, 10, "two number cells a learner");
  assert(page.includes('<table class="learners">'));
  assertEquals(numberColumns(page), ["Reached", "Lessons completed"]);
  assert(!main.includes('rel="next"'), "no next page");
});

Deno.test("dashboard view: the stalled learners page keeps its filter and links the next page", () => {
  const stalled = html(
    LearnersPage({
      course: COURSE,
      learners: [learner({ last_activity_at: new Date(NOW - 30 * DAY).toISOString() })],
      inactiveDays: 14,
      next: "?inactive_days=14&cursor=abc",
      now: NOW,
    }),
  );
  const main = mainOf(stalled);
  assert(main.startsWith("<main><h1>Stalled learners</h1>"), main);
  assert(main.includes(" · no activity for 14 days or more, and where they stopped</p>"), main);
  assert(main.includes('value="14">'), main);
  assert(
    main.endsWith('<p><a href="?inactive_days=14&amp;cursor=abc" rel="next">Next page</a></p>'),
    main,
  );
  assertEquals(rows(main)[1][4], "30 days ago / 2026-10-21 12:00 UTC");

  const nobody = mainOf(
    html(LearnersPage({ course: COURSE, learners: [], inactiveDays: 14, next: null, now: NOW })),
  );
  assert(nobody.endsWith('</form><p class="muted">Nobody has stalled that long.</p>'), nobody);
  const none = mainOf(html(LearnersPage({ course: COURSE, learners: [], next: null, now: NOW })));
  assert(none.endsWith('</form><p class="muted">No learner has completed a lesson.</p>'), none);
  assert(!none.includes("<table"));
});
