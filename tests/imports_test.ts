/**
 * What the service loads: no `node:` module. Importing one (even `node:path`) makes Deno load its
 * Node.js compatibility layer, about 7 MiB of resident memory that the service's memory target
 * (under 100 MB with forwarding on, `deno task bench --soak`) cannot spare. Nor does it load
 * `@opentelemetry/api` (2–3 MiB) unless Deno registered its OpenTelemetry providers.
 */
import { assertEquals } from "./_assert.ts";
import { evalChild, libImport, tempDir } from "./_helpers.ts";

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

Deno.test("imports: @opentelemetry/api is loaded only when a provider is registered (OTEL_DENO=true)", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  await using dir = await tempDir();
  // The API, mapped to a module that fails as it loads.
  const importMap = `${dir.path}/map.json`;
  const imports = {
    ...config.imports,
    "@opentelemetry/api": "data:text/javascript,throw new Error('@opentelemetry/api loaded')",
  };
  await Deno.writeTextFile(importMap, JSON.stringify({ imports }));
  const probe = (otel: boolean) =>
    evalChild(
      [
        `import { Hono } from "hono";`,
        `import * as t from ${libImport("telemetry.ts")};`,
        `await t.telemetryReady();`,
        `const app = new Hono().use(t.webhookTelemetry(() => ({}))).get("/", (c) => c.text("ok"));`,
        `t.observeOutcome({ status: "stored" });`,
        `t.observeBacklog(await Deno.openKv(":memory:"));`,
        `console.log(await (await app.request("/")).text());`,
      ].join("\n"),
      {
        importMap,
        env: { OTEL_DENO: String(otel), OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" },
      },
    );
  const off = await probe(false);
  assertEquals([off.code, off.stdout], [0, "ok"], off.stderr);
  const on = await probe(true); // the control: Deno's provider is registered, so the API loads
  assertEquals(on.code, 1);
  assertEquals(on.stderr.includes("@opentelemetry/api loaded"), true, on.stderr);
});
