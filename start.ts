/**
 * `deno task start`: serves `main.ts` on `PORT` (default 8000). A port that cannot be listened on
 * (in use, not allowed) stops it with one line on stderr naming `PORT`, exit 1.
 *
 * On SIGTERM or SIGINT: held deliveries answer the pending status at once, the port stops
 * accepting, requests in flight finish, then it exits: within 1.5 s in any case. It exits when
 * `server.shutdown()` resolves or, at the latest, 50 ms after the last response in flight was
 * handed over: Deno 2.5 (Deno Deploy's runtime) waits in `server.shutdown()` for connections that
 * never sent a request, such as the spare connections `fetch` clients open and keep in their
 * pools, so the process would otherwise outlive the signal by minutes (fixed in later Deno
 * versions by denoland/deno#31959).
 * @module
 */
import { app, config, holds, logReady, stopBackground } from "./main.ts";

/** The longest a stop takes: requests still running then are cut (their senders retry). */
const STOP_DEADLINE_MS = 1_500;

/** After the last response is handed over: time for its bytes to be written. */
const FLUSH_MS = 50;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Requests whose response has not been sent completely yet. */
let inFlight = 0;
let onIdle: (() => void) | undefined;

let server: Deno.HttpServer | undefined;
try {
  server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ hostname, port }) => {
      logReady();
      console.log(JSON.stringify({ msg: "listening", url: `http://${hostname}:${port}/` }));
    },
  }, (request, info) => {
    inFlight++;
    const done = () => {
      if (--inFlight === 0) onIdle?.();
    };
    info.completed.then(done, done);
    return app.fetch(request);
  });
} catch (err) {
  const reason = err instanceof Deno.errors.AddrInUse
    ? "is already in use: stop what runs there or choose another PORT"
    : `cannot be listened on (${(err as Error).message.split("\n")[0]})`;
  console.error(`PORT ${config.port} ${reason}`);
  Deno.exit(1);
}

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(JSON.stringify({ msg: "shutting down", signal, held: holds.waiting }));
  stopBackground();
  const idle = new Promise<void>((resolve) => {
    onIdle = resolve;
    if (inFlight === 0) resolve();
  });
  const drained = server?.shutdown();
  const deadline = sleep(STOP_DEADLINE_MS);
  // Once no response is left to hand over, its last bytes are written within a turn or two of
  // the event loop: give them `FLUSH_MS` unless `shutdown()` resolves first.
  await Promise.race([
    drained,
    deadline,
    idle.then(() => Promise.race([drained, sleep(FLUSH_MS)])),
  ]);
  Deno.exit(0);
}
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => void shutdown(signal));
}
