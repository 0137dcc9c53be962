/**
 * What the service loads: no `node:` module. Importing one (even `node:path`) makes Deno load its
 * Node.js compatibility layer, about 7 MiB of resident memory that the service's memory target
 * (under 100 MB with forwarding on, `deno task bench --soak`) cannot spare.
 */
import { assertEquals } from "./_assert.ts";

Deno.test("imports: the service's module graph (start.ts) has no node: module", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "start.ts"],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { kind?: string; specifier: string }[];
  };
  const files = graph.modules.filter((m) => m.specifier.startsWith("file:"));
  assertEquals(files.some((m) => m.specifier.endsWith("/lib/_hmac.ts")), true, "the graph is read");
  const node = graph.modules.filter((m) => m.kind === "node" || m.specifier.startsWith("node:"));
  assertEquals(node.map((m) => m.specifier), []);
});
