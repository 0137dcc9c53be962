import { assertEquals } from "./_assert.ts";
import { goalOf, MUTATION_MAP } from "./mutation_map.ts";

async function modulesOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await modulesOf(path));
    else if (/\.tsx?$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

Deno.test("mutation map: every module of lib/ has tests, and only lib/ modules are named", async () => {
  assertEquals(Object.keys(MUTATION_MAP).sort(), await modulesOf("lib"));
});

Deno.test("mutation map: every test file named exists and is a test file", async () => {
  const missing: string[] = [];
  for (const tests of Object.values(MUTATION_MAP)) {
    for (const t of tests) {
      const ok = t.endsWith("_test.ts") && await Deno.stat(t).then((s) => s.isFile, () => false);
      if (!ok) missing.push(t);
    }
  }
  assertEquals(missing, []);
});

Deno.test("mutation map: goals are 90% for the core modules and 80% elsewhere", () => {
  assertEquals(goalOf("lib/matching/policy.ts"), 90);
  assertEquals(goalOf("lib/store/plan.ts"), 90);
  assertEquals(goalOf("lib/http/_body.ts"), 90);
  assertEquals(goalOf("lib/csv.ts"), 90);
  assertEquals(goalOf("lib/config.ts"), 80);
  assertEquals(goalOf("lib/dashboard/chart.tsx"), 80);
});
