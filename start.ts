/**
 * `deno task start`: serves `main.ts` on `PORT` (default 8000).
 * @module
 */
import { app, config } from "./main.ts";

Deno.serve({
  port: config.port,
  onListen: ({ hostname, port }) =>
    console.log(JSON.stringify({ msg: "listening", url: `http://${hostname}:${port}/` })),
}, app.fetch);
