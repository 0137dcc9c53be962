/**
 * The server as `deno task dev` runs it: `start.ts` under `deno run --watch`, which stops with the
 * `dev.ts` that started it.
 *
 * `--watch` keeps its process alive after the script exits (it waits for a file change), and it
 * restarts the script with the same SIGTERM a user would send, so neither a signal nor the script's
 * exit can say "stop for good". This file's standard input can: `dev.ts` holds it open and closes it
 * to stop the server, and the system closes it when `dev.ts` dies in any way (even SIGKILL). At the
 * end of input the server shuts down as on SIGTERM (held deliveries answered, requests in flight
 * finished), then the whole process, watcher included, ends.
 * @module
 */
import "../start.ts";

let leaving = false;
globalThis.addEventListener("unload", () => {
  // start.ts exits after its graceful shutdown; under --watch only the script would end.
  if (leaving) Deno.kill(Deno.pid, "SIGKILL");
});
// SIGINT never comes from the watcher (it restarts with SIGTERM): it is Ctrl+C, stop for good.
Deno.addSignalListener("SIGINT", () => (leaving = true));

for await (const _ of Deno.stdin.readable) {
  // dev.ts never writes: only the end of input matters.
}
leaving = true;
Deno.kill(Deno.pid, "SIGTERM");
