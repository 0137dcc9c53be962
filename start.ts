/**
 * `deno task start`: serves `main.ts` on `PORT` (default 8000). A port that cannot be listened on
 * (in use, not allowed) stops it with one line on stderr naming `PORT`, exit 1.
 * @module
 */
import { app, config, logReady } from "./main.ts";

try {
  Deno.serve({
    port: config.port,
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
