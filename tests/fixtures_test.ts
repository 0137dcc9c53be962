/**
 * The fixture story: realistic, valid Thinkific webhooks telling the story `fixtures/README.md`
 * tells (pairs, a reversed pair, a redelivery, a skewed pair, a lone progress, an unrelated topic).
 */
import assert from "node:assert/strict";
import { type Fixture, loadFixtures } from "../fixtures/mod.ts";
import { HANDLED_TOPICS } from "../lib/config.ts";
import { parseWebhook, type ThinkificEvent } from "../lib/thinkific/schemas.ts";

const WINDOW_MS = 500;
const fixtures = await loadFixtures();

interface Envelope {
  id: string;
  resource: string;
  action: string;
  tenant_id: string;
  created_at: string;
  payload: Record<string, unknown>;
}

const envelope = (f: Fixture) => JSON.parse(f.body) as Envelope;

function events(): { fixture: Fixture; index: number; event: ThinkificEvent }[] {
  const out = [];
  for (const [index, fixture] of fixtures.entries()) {
    const parsed = parseWebhook(JSON.parse(fixture.body), fixture.topic);
    if (parsed.kind === "event") out.push({ fixture, index, event: parsed.event });
  }
  return out;
}

Deno.test("fixtures are numbered JSON webhooks, loaded in file order", () => {
  assert.ok(fixtures.length >= 10);
  const names = fixtures.map((f) => f.name);
  assert.deepEqual(names, [...names].sort());
  for (const f of fixtures) {
    assert.match(f.name, /^\d{2}-[\w.-]+\.json$/);
    const e = envelope(f);
    assert.equal(f.topic, `${e.resource}.${e.action}`);
    assert.ok(f.name.includes(f.topic), `${f.name} should name its topic ${f.topic}`);
    assert.match(e.id, /^\d{23}$/, `${f.name}: event id`);
    assert.equal(e.tenant_id, "48213");
    assert.match(e.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
});

Deno.test("event ids are unique, except the one intended redelivery (identical body)", () => {
  const byId = Map.groupBy(fixtures, (f) => envelope(f).id);
  const repeated = [...byId.values()].filter((group) => group.length > 1);
  assert.equal(repeated.length, 1);
  const [original, copy] = repeated[0];
  assert.equal(repeated[0].length, 2);
  assert.match(copy.name, /redelivery/);
  assert.doesNotMatch(original.name, /redelivery/);
  assert.equal(copy.body, original.body);
});

Deno.test("every handled fixture passes parseWebhook as an event; the rest are ignored", () => {
  for (const f of fixtures) {
    const parsed = parseWebhook(JSON.parse(f.body), f.topic);
    if ((HANDLED_TOPICS as readonly string[]).includes(f.topic)) {
      assert.equal(parsed.kind, "event", `${f.name}: ${JSON.stringify(parsed)}`);
    } else {
      assert.equal(parsed.kind, "ignored", f.name);
    }
  }
  assert.deepEqual(
    fixtures.filter((f) => !(HANDLED_TOPICS as readonly string[]).includes(f.topic))
      .map((f) => f.topic),
    ["order.created"],
  );
});

Deno.test("the story: pairs, one reversed, one skewed, one lone progress, rising percentages", () => {
  const all = events();
  const seen = new Set<string>();
  const unique = all.filter(({ event }) => !seen.has(event.id) && seen.add(event.id));
  const lessons = unique.filter((e) => e.event.facts.kind === "lesson");
  const progress = unique.filter((e) => e.event.facts.kind === "progress");
  const sameEnrollment = (a: ThinkificEvent, b: ThinkificEvent) =>
    a.tenantId === b.tenantId && a.userId === b.userId && a.courseId === b.courseId;

  let reversed = 0;
  let skewed = 0;
  let lone = 0;
  for (const p of progress) {
    const partners = lessons.filter((l) =>
      sameEnrollment(l.event, p.event) && Math.abs(l.event.at - p.event.at) <= WINDOW_MS
    );
    assert.ok(partners.length <= 1, `${p.fixture.name} has several lessons in its window`);
    if (partners.length === 0) {
      lone++;
      const nearest = Math.min(
        ...lessons.filter((l) => sameEnrollment(l.event, p.event))
          .map((l) => Math.abs(l.event.at - p.event.at)),
      );
      assert.ok(nearest > 3_600_000, `${p.fixture.name}: the lone progress is far from any lesson`);
      continue;
    }
    const l = partners[0];
    if (p.index < l.index) reversed++;
    const skew = Math.abs(l.event.at - p.event.at);
    if (skew !== 0) {
      skewed++;
      assert.ok(skew < 50, `${p.fixture.name}: a small skew of a few ms`);
    }
    const lf = l.event.facts, pf = p.event.facts;
    assert.ok(lf.kind === "lesson" && pf.kind === "progress");
    assert.equal(lf.enrollmentId, pf.enrollmentId, `${p.fixture.name}: enrollment ids agree`);
  }
  assert.equal(lone, 1);
  assert.equal(reversed, 1);
  assert.equal(skewed, 1);
  assert.equal(lessons.length, progress.length - 1);
  assert.equal(new Set(unique.map((e) => e.event.userId)).size, 2);
  assert.equal(new Set(unique.map((e) => e.event.courseId)).size, 2);

  // Paired progress rises per enrollment, in time order.
  const paired = progress.filter((p) =>
    lessons.some((l) =>
      sameEnrollment(l.event, p.event) && Math.abs(l.event.at - p.event.at) <= WINDOW_MS
    )
  );
  const byEnrollment = Map.groupBy(paired, (p) => `${p.event.userId}/${p.event.courseId}`);
  for (const [key, list] of byEnrollment) {
    const pct = list.toSorted((a, b) => a.event.at - b.event.at)
      .map((p) => p.event.facts.kind === "progress" ? p.event.facts.percentage : NaN);
    for (let i = 1; i < pct.length; i++) assert.ok(pct[i] > pct[i - 1], `${key}: ${pct}`);
  }
});

Deno.test("percentages are decimal strings, as Thinkific sends them", () => {
  for (const f of fixtures.filter((f) => f.topic === "enrollment.progress")) {
    const pct = envelope(f).payload.percentage_completed;
    assert.equal(typeof pct, "string", f.name);
    assert.match(pct as string, /^\d{1,3}(\.\d+)?$/);
  }
});
