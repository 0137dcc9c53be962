/**
 * The drop-off chart: one horizontal bar per lesson, in course order and grouped by chapter, its
 * length the number of distinct learners who completed the lesson. Plain SVG, no script.
 * @module
 */
import type { LessonSummary } from "../store/stats.ts";

/** A lesson: its name (and count) on one line, its bar under it. */
const ROW = 40;
const CHAPTER = 26;
/** Bars span this share of the chart's width (in %), from {@linkcode BAR_LEFT}%. */
const BAR_LEFT = 2;
const BAR_SPAN = 96;

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * The chart of a course's lessons (already in course order). It has no `viewBox`: it is as wide as
 * the page and its text is drawn at its CSS size (13 px) on a phone as on a laptop; bar lengths are
 * percentages of the width.
 */
export function LessonChart(props: { lessons: LessonSummary[] }) {
  const { lessons } = props;
  const most = Math.max(1, ...lessons.map((l) => l.learners));
  const rows: unknown[] = [];
  let y = 6;
  let chapter: number | null = null;
  for (const l of lessons) {
    if (l.chapter_id !== chapter) {
      chapter = l.chapter_id;
      rows.push(<text class="chapter" x={8} y={y + 18}>{truncate(l.chapter_name, 44)}</text>);
      y += CHAPTER;
    }
    const share = Math.max((l.learners / most) * BAR_SPAN, 0.5);
    rows.push(
      <g data-lesson-id={String(l.lesson_id)}>
        <title>{`${l.lesson_name}: ${l.learners} learner${l.learners === 1 ? "" : "s"}`}</title>
        <text x={16} y={y + 15}>{truncate(l.lesson_name, 40)}</text>
        <text class="count" x="100%" dx={-8} y={y + 15} text-anchor="end">
          {String(l.learners)}
        </text>
        <rect class="bg" x={`${BAR_LEFT}%`} y={y + 21} width={`${BAR_SPAN}%`} height={12} rx={3} />
        <rect class="bar" x={`${BAR_LEFT}%`} y={y + 21} width={`${share}%`} height={12} rx={3} />
      </g>,
    );
    y += ROW;
  }
  const height = y + 6;
  return (
    <svg
      class="chart"
      width="100%"
      height={height}
      role="img"
      aria-label="Distinct learners who completed each lesson, in course order"
    >
      {rows}
    </svg>
  );
}
