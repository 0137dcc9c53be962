/** The dashboard's stylesheet: readable on a laptop and a phone, no framework. */
export const STYLE = `
:root { color-scheme: light dark; --fg: #1d232a; --muted: #5b6670; --bg: #fbfaf7; --card: #fff;
  --line: #e3e0d8; --bar: #3a7d6b; --bar-bg: #e8efe9; --accent: #b4541c; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e6e1; --muted: #a2aab2; --bg: #16191c;
  --card: #1e2226; --line: #2f353b; --bar: #5fb39b; --bar-bg: #253029; --accent: #f0a06c; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); }
header { border-bottom: 1px solid var(--line); background: var(--card); }
header nav, main { max-width: 60rem; margin: 0 auto; padding: 0.75rem 1rem; }
header nav { display: flex; gap: 1.25rem; align-items: baseline; flex-wrap: wrap; }
header strong { margin-right: auto; }
a { color: var(--accent); }
h1 { font-size: 1.5rem; margin: 1rem 0 0.25rem; }
h2 { font-size: 1.1rem; margin: 2rem 0 0.5rem; }
.muted { color: var(--muted); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { text-align: left; padding: 0.45rem 0.6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-size: 0.85rem; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: 0.75rem;
  margin: 1rem 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 0.5rem;
  padding: 0.6rem 0.8rem; }
.card b { display: block; font-size: 1.4rem; }
svg.chart { display: block; width: 100%; background: var(--card); border: 1px solid var(--line);
  border-radius: 0.5rem; }
svg.chart text { fill: var(--fg); font: 13px system-ui, sans-serif; }
svg.chart text.chapter { font-weight: 700; fill: var(--muted); }
svg.chart rect.bg { fill: var(--bar-bg); }
svg.chart rect.bar { fill: var(--bar); }
.actions { display: flex; gap: 1.25rem; flex-wrap: wrap; }
form.filter { margin: 0.75rem 0; }
form.filter input { width: 5rem; }
ul.plain { padding-left: 1.1rem; }
ul.plain li { margin: 0.35rem 0; }
@media (max-width: 40rem) {
  main { padding: 0.75rem 0.5rem; }
  th, td { padding: 0.4rem 0.3rem; }
  td { overflow-wrap: anywhere; }
}
`;
