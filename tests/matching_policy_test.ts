import { assertEquals } from "./_assert.ts";
import {
  type Candidate,
  choosePartner,
  clusterSpan,
  INEXACT_SETTLE_MS,
  needsRivals,
  type Self,
} from "../lib/matching/policy.ts";

const W = 500;
const c = (id: string, at: number, gaveUp = false): Candidate => ({ id, at, gaveUp });
/** A logic-channel event; redeliveries come after the settle time unless told otherwise. */
const logic = (
  at: number,
  deliveries = 1,
  id = "P",
  waitedMs = deliveries > 1 ? INEXACT_SETTLE_MS : 0,
  lastChance = false,
): Self => ({ id, at, deliveries, isLogic: true, waitedMs, lastChance });
const companion = (at: number, id = "L"): Self => ({
  id,
  at,
  deliveries: 1,
  isLogic: false,
  waitedMs: 0,
  lastChance: false,
});

interface Row {
  name: string;
  self: Self;
  counterparts: Candidate[];
  rivals?: Candidate[];
  window?: number;
  want: string | null;
  exact?: boolean;
  needsRivals?: boolean;
}

const table: Row[] = [
  { name: "no counterpart", self: logic(1000), counterparts: [], want: null },
  {
    name: "exact, first delivery",
    self: logic(1000),
    counterparts: [c("L1", 1000)],
    want: "L1",
    exact: true,
  },
  {
    name: "exact from the companion side",
    self: companion(1000),
    counterparts: [c("P1", 1000)],
    want: "P1",
    exact: true,
  },
  {
    name: "inexact waits on first delivery",
    self: logic(1000),
    counterparts: [c("L1", 1001)],
    want: null,
    needsRivals: false,
  },
  {
    name: "inexact on second delivery",
    self: logic(1000, 2),
    counterparts: [c("L1", 1001)],
    rivals: [],
    want: "L1",
    exact: false,
    needsRivals: true,
  },
  {
    name: "companion never takes a live inexact",
    self: companion(1000),
    counterparts: [c("P1", 1003)],
    want: null,
    needsRivals: false,
  },
  {
    name: "companion takes a gave-up inexact",
    self: companion(1000),
    counterparts: [c("P1", 1003, true)],
    rivals: [],
    want: "P1",
    needsRivals: true,
  },
  {
    name: "+499 inside",
    self: logic(1000, 2),
    counterparts: [c("L1", 1499)],
    rivals: [],
    want: "L1",
  },
  {
    name: "-499 inside",
    self: logic(1000, 2),
    counterparts: [c("L1", 501)],
    rivals: [],
    want: "L1",
  },
  {
    name: "+500 inside (inclusive)",
    self: logic(1000, 2),
    counterparts: [c("L1", 1500)],
    rivals: [],
    want: "L1",
  },
  {
    name: "-500 inside (inclusive)",
    self: logic(1000, 2),
    counterparts: [c("L1", 500)],
    rivals: [],
    want: "L1",
  },
  {
    name: "+501 outside",
    self: logic(1000, 2),
    counterparts: [c("L1", 1501)],
    want: null,
    needsRivals: false,
  },
  { name: "-501 outside", self: logic(1000, 2), counterparts: [c("L1", 499)], want: null },
  {
    name: "exact beats near",
    self: logic(1000),
    counterparts: [c("L1", 1002), c("L2", 1000)],
    want: "L2",
    exact: true,
  },
  {
    name: "exact beats near on later delivery",
    self: logic(1000, 5),
    counterparts: [c("L1", 999), c("L2", 1000)],
    want: "L2",
    exact: true,
    needsRivals: false,
  },
  {
    name: "closest wins",
    self: logic(1000, 2),
    counterparts: [c("L1", 1200), c("L2", 950), c("L3", 1400)],
    rivals: [],
    want: "L2",
  },
  {
    name: "equal distance: earlier pair wins",
    self: logic(1000, 2),
    counterparts: [c("L1", 1010), c("L2", 990)],
    rivals: [],
    want: "L2",
  },
  {
    name: "two exact: lower id wins",
    self: logic(1000),
    counterparts: [c("22", 1000), c("11", 1000)],
    want: "11",
  },
  {
    name: "ids compare as numbers",
    self: logic(1000),
    counterparts: [c("100", 1000), c("99", 1000)],
    want: "99",
  },
  {
    name: "near-near: a closer rival keeps its lesson, self takes the next",
    self: logic(1000, 2, "P1"),
    counterparts: [c("L1", 1040), c("L0", 955)],
    rivals: [c("P2", 1045)],
    want: "L0",
  },
  {
    name: "near-near: a closer rival and nothing else, self waits",
    self: logic(1000, 2, "P1"),
    counterparts: [c("L1", 1040)],
    rivals: [c("P2", 1045)],
    want: null,
  },
  {
    name: "near-near: self is closer than the rival",
    self: logic(1000, 2, "P1"),
    counterparts: [c("L1", 1010)],
    rivals: [c("P2", 1045)],
    want: "L1",
  },
  {
    name: "claimed-elsewhere rival is not listed, so self takes it",
    self: logic(1000, 2, "P1"),
    counterparts: [c("L1", 1040)],
    rivals: [],
    want: "L1",
  },
  {
    name: "exact tie with a rival at the same instant: lower pair ids win",
    self: logic(1000, 1, "P2"),
    counterparts: [c("L1", 1000)],
    rivals: [c("P1", 1000)],
    want: null,
  },
  {
    name: "exact with two rivals and two lessons at one instant: one each",
    self: logic(1000, 1, "P2"),
    counterparts: [c("L1", 1000), c("L2", 1000)],
    rivals: [c("P1", 1000)],
    want: "L2",
  },
  {
    name: "companion: gave-up progress taken unless a live one is closer",
    self: companion(1000, "L1"),
    counterparts: [c("P1", 1100, true), c("P2", 1010)],
    rivals: [],
    want: null,
  },
  {
    name: "a fast redelivery waits for the settle time",
    self: logic(1000, 2, "P", INEXACT_SETTLE_MS - 1),
    counterparts: [c("L1", 1001)],
    want: null,
    needsRivals: false,
  },
  {
    name: "the last delivery pairs inexactly whatever the time",
    self: logic(1000, 3, "P", 5, true),
    counterparts: [c("L1", 1001)],
    rivals: [],
    want: "L1",
    needsRivals: true,
  },
  {
    name: "a first delivery never pairs inexactly, even as the last chance",
    self: logic(1000, 1, "P", 0, true),
    counterparts: [c("L1", 1001)],
    want: null,
  },
  {
    // Issue 11: R takes C' (50 ms), so C (300 ms) is P's, and C2 stays alone.
    name: "the whole chain decides: a rival's closer partner outside self's window counts",
    self: logic(1000, 2, "P"),
    counterparts: [c("C2", 600), c("C", 1300), c("C'", 1550)],
    rivals: [c("R", 1500)],
    want: "C",
  },
  {
    name: "the chain, seen from the rival",
    self: logic(1500, 2, "R"),
    counterparts: [c("C2", 600), c("C", 1300), c("C'", 1550)],
    rivals: [c("P", 1000)],
    want: "C'",
  },
  {
    name: "window 0: only exact",
    self: logic(1000, 3),
    counterparts: [c("L1", 1001)],
    window: 0,
    want: null,
  },
];

for (const row of table) {
  Deno.test(`policy: ${row.name}`, () => {
    const windowMs = row.window ?? W;
    const decision = choosePartner({
      self: row.self,
      counterparts: row.counterparts,
      rivals: row.rivals,
      windowMs,
    });
    assertEquals(decision?.partner.id ?? null, row.want);
    if (row.exact !== undefined && decision) assertEquals(decision.exact, row.exact);
    if (row.needsRivals !== undefined) {
      assertEquals(
        needsRivals({ self: row.self, counterparts: row.counterparts, windowMs }),
        row.needsRivals,
      );
    }
  });
}

Deno.test("policy: the decision does not depend on the order of candidates", () => {
  const counterparts = [c("L1", 1200), c("L2", 950), c("L3", 1040), c("L4", 1000 - 40)];
  const rivals = [c("P2", 1045), c("P3", 1210)];
  const first = choosePartner({ self: logic(1000, 2, "P1"), counterparts, rivals, windowMs: W });
  for (let i = 0; i < 20; i++) {
    const shuffled = [...counterparts].sort(() => Math.random() - 0.5);
    const r = [...rivals].sort(() => Math.random() - 0.5);
    const d = choosePartner({
      self: logic(1000, 2, "P1"),
      counterparts: shuffled,
      rivals: r,
      windowMs: W,
    });
    assertEquals(d?.partner.id, first?.partner.id);
  }
  assertEquals(first?.partner.id, "L4");
});

Deno.test("policy: the cluster is the run of events whose gaps are within one window", () => {
  assertEquals(clusterSpan([600, 1300, 1550, 1500], 1000, W), { from: 600, to: 1550 });
  assertEquals(clusterSpan([1600, 3000], 1000, W), { from: 1000, to: 1000 });
  assertEquals(clusterSpan([500, 0, 2100], 1000, W), { from: 0, to: 1000 });
  assertEquals(clusterSpan([], 1000, W), { from: 1000, to: 1000 });
});

Deno.test("policy: both sides of a neighbourhood agree on who pairs with whom", () => {
  // P1@1000, P2@1045, L0@955, L1@1040: the greedy matching is {P2-L1 (5), P1-L0 (45)}.
  const ps = [c("P1", 1000), c("P2", 1045)];
  const ls = [c("L0", 955), c("L1", 1040)];
  const partnerOf = (self: Candidate, others: Candidate[], rivals: Candidate[]) =>
    choosePartner({
      self: logic(self.at, 2, self.id),
      counterparts: others,
      rivals: rivals.filter((r) => r.id !== self.id),
      windowMs: W,
    })?.partner.id;
  assertEquals(partnerOf(ps[0], ls, ps), "L0");
  assertEquals(partnerOf(ps[1], ls, ps), "L1");
});

Deno.test("policy: a chain whose links are exactly one window is one cluster, one more ms breaks it", () => {
  // Gaps: 501 | 500 500 500 500 | 501, self at 1000.
  assertEquals(clusterSpan([-1, 500, 1500, 2000, 2501], 1000, W), { from: 500, to: 2000 });
});

Deno.test("policy: a counterpart outside the window is never taken, even when the near one is", () => {
  // R (a rival) takes L1 exactly; L2 is 600 ms away from P, beyond the window: P waits.
  const d = choosePartner({
    self: logic(1000, 2, "P"),
    counterparts: [c("L1", 1010), c("L2", 1600)],
    rivals: [c("R", 1010)],
    windowMs: W,
  });
  assertEquals(d, null);
});

Deno.test("policy: two events at one instant wanting one counterpart: the lower id gets it, either side", () => {
  const want = (self: string, rival: string) =>
    choosePartner({
      self: logic(1000, 1, self),
      counterparts: [c("L1", 1000)],
      rivals: [c(rival, 1000)],
      windowMs: W,
    })?.partner.id ?? null;
  assertEquals(want("P1", "P2"), "L1");
  assertEquals(want("P2", "P1"), null);
});
