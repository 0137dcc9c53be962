/**
 * The drop-off chart: one horizontal bar per lesson, in course order and grouped by chapter, its
 * length the number of distinct learners who completed the lesson. Plain SVG, no script.
 * @module
 */
import type { LessonSummary } from "../store/stats.ts";

const ROW = 26;
const CHAPTER = 30;
const LABEL = 260;
const WIDTH = 720;
const BAR = WIDTH - LABEL - 60;

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The chart of a course's lessons (already in course order). */
export function LessonChart(props: { lessons: LessonSummary[] }) {
  const { lessons } = props;
  const most = Math.max(1, ...lessons.map((l) => l.learners));
  const rows: unknown[] = [];
  let y = 10;
  let chapter: number | null = null;
  for (const l of lessons) {
    if (l.chapter_id !== chapter) {
      chapter = l.chapter_id;
      y += 8;
      rows.push(
        <text class="chapter" x={8} y={y + 14}>{truncate(l.chapter_name, 60)}</text>,
      );
      y += CHAPTER - 8;
    }
    const width = Math.round((l.learners / most) * BAR);
    rows.push(
      <g data-lesson-id={String(l.lesson_id)}>
        <title>{`${l.lesson_name}: ${l.learners} learner${l.learners === 1 ? "" : "s"}`}</title>
        <text x={16} y={y + 16}>{truncate(l.lesson_name, 34)}</text>
        <rect class="bg" x={LABEL} y={y + 4} width={BAR} height={ROW - 8} rx={3} />
        <rect class="bar" x={LABEL} y={y + 4} width={Math.max(width, 2)} height={ROW - 8} rx={3} />
        <text x={LABEL + Math.max(width, 2) + 6} y={y + 17}>{String(l.learners)}</text>
      </g>,
    );
    y += ROW;
  }
  const height = y + 10;
  return (
    <svg
      class="chart"
      viewBox={`0 0 ${WIDTH} ${height}`}
      role="img"
      aria-label="Distinct learners who completed each lesson, in course order"
    >
      {rows}
    </svg>
  );
}
