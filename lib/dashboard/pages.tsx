/**
 * The dashboard's pages, rendered on the server with `hono/jsx`: the course overview, one course's
 * drop-off chart and recent completions, and the unmatched queue in plain words.
 * @module
 */
import { raw } from "hono/html";
import type { Child } from "hono/jsx";
import type { LessonProgressRecord } from "../matching/record.ts";
import type { UnmatchedEntry } from "../store/keys.ts";
import type { CourseSummary, LessonSummary } from "../store/stats.ts";
import { LessonChart } from "./chart.tsx";
import { STYLE } from "./style.ts";

/** An ISO time as "2026-11-02 14:15 UTC". */
export function when(iso: string | null): string {
  if (!iso) return "—";
  return iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
}

/** A table's header row; a column given as `[label, "num"]` is right-aligned. */
export function Header(props: { cols: (string | [string, "num"])[] }) {
  return (
    <thead>
      <tr>
        {props.cols.map((c) => (
          <th class={typeof c === "string" ? undefined : c[1]}>
            {typeof c === "string" ? c : c[0]}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/** A cell of two lines: the main one, and a muted one under it. */
export function TwoLines(props: { main: Child; sub: Child }) {
  return (
    <td>
      {props.main}
      <div class="muted">{props.sub}</div>
    </td>
  );
}

/** A learner's cell: their email (or id), and their user id. */
export function LearnerCell(props: { email: string; userId: number }) {
  return <TwoLines main={props.email || `user ${props.userId}`} sub={`user ${props.userId}`} />;
}

/** The page around every view. */
export function Layout(props: { title: string; children: Child }) {
  return (
    <>
      {raw("<!DOCTYPE html>")}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <title>{`${props.title} · Lesson progress`}</title>
          <style>{raw(STYLE)}</style>
        </head>
        <body>
          <header>
            <nav>
              <strong>Lesson progress</strong>
              <a href="/">Courses</a>
              <a href="/unmatched">Unmatched</a>
            </nav>
          </header>
          <main>{props.children}</main>
        </body>
      </html>
    </>
  );
}

/** `GET /`: every course, newest activity first. */
export function OverviewPage(props: { courses: CourseSummary[] }) {
  const { courses } = props;
  return (
    <Layout title="Courses">
      <h1>Courses</h1>
      {courses.length === 0
        ? (
          <p class="muted">
            No lesson completions yet. Point Thinkific's <code>lesson.completed</code> and{" "}
            <code>enrollment.progress</code> webhooks at <code>/webhooks/thinkific</code>.
          </p>
        )
        : (
          <div class="table-wrap">
            <table>
              <Header
                cols={[
                  "Course",
                  ["Learners seen", "num"],
                  ["Lessons completed, 7 days", "num"],
                  ["30 days", "num"],
                  ["Unmatched", "num"],
                  "Last activity",
                ]}
              />
              <tbody>
                {courses.map((c) => (
                  <tr>
                    <td>
                      <a href={`/courses/${c.course_id}`}>{c.course_name}</a>
                      <div class="muted">school {c.tenant_id}</div>
                    </td>
                    <td class="num">{String(c.learners)}</td>
                    <td class="num">{String(c.last7Days)}</td>
                    <td class="num">{String(c.last30Days)}</td>
                    <td class="num">{String(c.unmatched)}</td>
                    <td>{when(c.lastActivity)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
    </Layout>
  );
}

/** `GET /courses/:courseId`: where learners stop, and the latest completions. */
export function CoursePage(
  props: { course: CourseSummary; lessons: LessonSummary[]; recent: LessonProgressRecord[] },
) {
  const { course, lessons, recent } = props;
  return (
    <Layout title={course.course_name}>
      <h1>{course.course_name}</h1>
      <p class="muted">Course {String(course.course_id)} · school {course.tenant_id}</p>
      <p class="actions">
        <a href={`/courses/${course.course_id}/learners`}>Where each learner stands</a>
        <a href={`/courses/${course.course_id}/records.csv`} download>Download CSV</a>
      </p>
      <div class="cards">
        <div class="card">
          <b>{String(course.learners)}</b> learners seen
        </div>
        <div class="card">
          <b>{String(course.completions)}</b> lessons completed
        </div>
        <div class="card">
          <b>{String(course.last7Days)}</b> in the last 7 days
        </div>
        <div class="card">
          <b>{String(course.unmatched)}</b> unmatched
        </div>
      </div>
      <h2>Learners who completed each lesson</h2>
      {lessons.length === 0
        ? <p class="muted">No lesson of this course has been completed yet.</p>
        : <LessonChart lessons={lessons} />}
      <h2>Recent completions</h2>
      <div class="table-wrap">
        <table>
          <Header cols={["Learner", "Lesson", "Completed", ["Reached", "num"]]} />
          <tbody>
            {recent.map((r) => (
              <tr>
                <LearnerCell email={r.user_email} userId={r.user_id} />
                <TwoLines main={r.lesson_name} sub={r.chapter_name} />
                <td>{when(r.completed_at)}</td>
                <td class="num">
                  {`${r.percentage_completed}%`}
                  {r.previous_percentage_completed === null
                    ? ""
                    : <div class="muted">{`from ${r.previous_percentage_completed}%`}</div>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Layout>
  );
}

/** `GET /unmatched`: events that never found their counterpart, one line each. */
export function UnmatchedPage(props: { events: UnmatchedEntry[]; courses: Map<number, string> }) {
  const { events, courses } = props;
  return (
    <Layout title="Unmatched">
      <h1>Unmatched events</h1>
      <p class="muted">
        Progress events that found no lesson completion within the match window, and lesson
        completions still without their progress after a while. Usually an admin recalculated
        progress (after adding or removing lessons), which fires no lesson event, or a learner
        completed a lesson again without raising their percentage. An event that arrives later still
        pairs with them.
      </p>
      {events.length === 0
        ? <p>Nothing is waiting. Every event found its counterpart.</p>
        : (
          <div class="table-wrap">
            <table class="unmatched">
              <Header cols={["Learner", "Course", ["Reached", "num"], "When", "Gave up"]} />
              <tbody>
                {events.map((e) => (
                  <tr>
                    <td>{`user ${e.user_id}`}</td>
                    <td>
                      {
                        courses.has(e.course_id)
                          ? <a href={`/courses/${e.course_id}`}>{courses.get(e.course_id)}</a>
                          : `course ${e.course_id}` /* stored before its name was kept: no page */
                      }
                    </td>
                    <td class="num">
                      {e.percentage_completed == null ? "—" : `${e.percentage_completed}%`}
                    </td>
                    <td>{when(e.created_at)}</td>
                    <td>
                      {e.topic === "lesson.completed"
                        ? `a lesson alone, listed ${when(e.gave_up_at)}`
                        : `after ${e.attempts} deliveries, ${when(e.gave_up_at)}`}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
    </Layout>
  );
}

/** A page's answer to a bad parameter (a 400): what is wrong, and the way back. */
export function ErrorPage(props: { status: number; message: string; back: string }) {
  return (
    <Layout title="Bad request">
      <h1>This page cannot be shown</h1>
      <p>{`${props.message}.`}</p>
      <p>
        <a href={props.back}>Start again</a> · <a href="/">All courses</a>
      </p>
    </Layout>
  );
}

/** A plain page for a course the dashboard does not know. */
export function NotFoundPage(props: { message: string }) {
  return (
    <Layout title="Not found">
      <h1>Not found</h1>
      <p>{props.message}</p>
      <p>
        <a href="/">All courses</a>
      </p>
    </Layout>
  );
}
