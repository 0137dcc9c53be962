/**
 * `GET /courses/:courseId/learners`: where each learner of a course stands (last lesson completed,
 * percentage, lessons completed, last activity), newest activity first, and who stalled.
 * @module
 */
import type { CourseInfo, LearnerEntry } from "../store/keys.ts";
import { Layout, when } from "./pages.tsx";

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
              <thead>
                <tr>
                  <th>Learner</th>
                  <th>Last lesson completed</th>
                  <th class="num">Reached</th>
                  <th class="num">Lessons completed</th>
                  <th>Last activity</th>
                </tr>
              </thead>
              <tbody>
                {learners.map((l) => (
                  <tr>
                    <td>
                      {l.user_email || `user ${l.user_id}`}
                      <div class="muted">user {String(l.user_id)}</div>
                    </td>
                    <td>
                      {l.last_lesson_name}
                      <div class="muted">{l.last_chapter_name}</div>
                    </td>
                    <td class="num">{`${l.percentage_completed}%`}</td>
                    <td class="num">{String(l.lessons_completed)}</td>
                    <td>
                      {ago(l.last_activity_at, now)}
                      <div class="muted">{when(l.last_activity_at)}</div>
                    </td>
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
