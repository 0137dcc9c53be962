/**
 * Crons Deno Deploy can find: Deploy discovers `Deno.cron` calls by evaluating the entry module's
 * top level, so every cron of `main.ts` is registered there, unconditionally (forwarding off
 * too), before its first `await` (which waits for the configuration); with nothing to do, a
 * tick does nothing.
 */
import { assertEquals } from "./_assert.ts";

const ROOT = new URL("..", import.meta.url);

Deno.test("cron: main.ts registers the outbox sweep before its first await, with forwarding off, and its tick then does nothing", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "tests/_cron_probe.ts",
    ],
    cwd: ROOT,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", KV_PATH: ":memory:", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, stderr);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  const probe = JSON.parse(lines[lines.length - 1]);
  assertEquals(probe.calls, [{
    name: "forward due outbox entries",
    schedule: "* * * * *",
    envRead: false,
    kvOpened: false,
  }]);
  assertEquals(probe.handlerKvCalls, 0, "a tick with no destination touches nothing");
});
