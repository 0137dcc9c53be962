/**
 * `GET /courses/:courseId/learners`: where each learner of a course stands (last lesson completed,
 * percentage, lessons completed, last activity), newest activity first, and who stalled.
 * @module
 */
import type { CourseInfo, LearnerEntry } from "../store/keys.ts";
import { Header, Layout, LearnerCell, TwoLines, when } from "./pages.tsx";

const DAY_MS = 86_400_000;

/** "today", "1 day ago", "12 days ago". */
function ago(iso: string, now: number): string {
  const days = Math.floor((now - Date.parse(iso)) / DAY_MS);
  return days <= 0 ? "today" : days === 1 ? "1 day ago" : `${days} days ago`;
}

/** The learners page. */
export function LearnersPage(props: {
  course: CourseInfo;
  learners: LearnerEntry[];
  inactiveDays?: number;
  /** The next page's link, when there is one. */
  next: string | null;
  now: number;
}) {
  const { course, learners, inactiveDays, next, now } = props;
  const base = `/courses/${course.course_id}/learners`;
  return (
    <Layout title={`Learners · ${course.course_name}`}>
      <h1>{inactiveDays ? `Stalled learners` : `Learners`}</h1>
      <p class="muted">
        <a href={`/courses/${course.course_id}`}>{course.course_name}</a>
        {inactiveDays
          ? ` · no activity for ${inactiveDays} days or more, and where they stopped`
          : " · every learner with a completed lesson, newest activity first"}
      </p>
      <form method="get" action={base} class="filter">
        <label>
          No activity for{" "}
          <input
            name="inactive_days"
            type="number"
            min="1"
            max="3650"
            value={inactiveDays ? String(inactiveDays) : ""}
          />{" "}
          days
        </label>{" "}
        <button type="submit">Show who stalled</button> <a href={base}>All learners</a>
      </form>
      {learners.length === 0
        ? (
          <p class="muted">
            {inactiveDays ? "Nobody has stalled that long." : "No learner has completed a lesson."}
          </p>
        )
        : (
          <div class="table-wrap">
            <table class="learners">
              <Header
                cols={["Learner", "Last lesson completed", ["Reached", "num"], [
                  "Lessons completed",
                  "num",
                ], "Last activity"]}
              />
              <tbody>
                {learners.map((l) => (
                  <tr>
                    <LearnerCell email={l.user_email} userId={l.user_id} />
                    <TwoLines main={l.last_lesson_name} sub={l.last_chapter_name} />
                    <td class="num">{`${l.percentage_completed}%`}</td>
                    <td class="num">{String(l.lessons_completed)}</td>
                    <TwoLines main={ago(l.last_activity_at, now)} sub={when(l.last_activity_at)} />
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      {next
        ? (
          <p>
            <a href={next} rel="next">Next page</a>
          </p>
        )
        : ""}
    </Layout>
  );
}
