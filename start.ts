/**
 * `deno task start`: serves `main.ts` on `PORT` (default 8000). A port that cannot be listened on
 * (in use, not allowed) stops it with one line on stderr naming `PORT`, exit 1. On SIGTERM or
 * SIGINT, held deliveries answer the pending status at once, requests in flight finish, then it
 * exits.
 * @module
 */
import { app, config, holds, logReady } from "./main.ts";

let server: Deno.HttpServer | undefined;
try {
  server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ hostname, port }) => {
      logReady();
      console.log(JSON.stringify({ msg: "listening", url: `http://${hostname}:${port}/` }));
    },
  }, app.fetch);
} catch (err) {
  const reason = err instanceof Deno.errors.AddrInUse
    ? "is already in use: stop what runs there or choose another PORT"
    : `cannot be listened on (${(err as Error).message.split("\n")[0]})`;
  console.error(`PORT ${config.port} ${reason}`);
  Deno.exit(1);
}

async function shutdown(signal: string) {
  console.log(JSON.stringify({ msg: "shutting down", signal, held: holds.waiting }));
  holds.close();
  await server?.shutdown();
  Deno.exit(0);
}
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => void shutdown(signal));
}
