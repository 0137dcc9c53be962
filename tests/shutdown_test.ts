/**
 * Stopping the service: SIGTERM or SIGINT to `deno task start` answers held deliveries with the
 * pending status first, then the process exits, within 2 s, even with connections open that never
 * sent a request (the spare connections `fetch` clients keep in their pools: Deno 2.5's
 * `server.shutdown()` waits for those until the client drops them, minutes later) or that sent
 * half a request.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, progressWebhook, tempDir } from "./_helpers.ts";
import { postTo, startServer } from "./_server.ts";

const STOP_LIMIT_MS = 2_000;

/** Resolves with `p`'s value, or with `undefined` once `ms` have passed. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((
    resolve,
  ) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`shutdown: ${signal} to deno task start answers held deliveries, then exits within 2 s`, async () => {
    await using dir = await tempDir();
    const server = await startServer(
      { KV_PATH: `${dir.path}/kv.sqlite3`, HOLD_MS: "20000" },
      undefined,
      "task",
    );
    const port = Number(new URL(server.url).port);
    const silent = await Deno.connect({ hostname: "127.0.0.1", port });
    const half = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await half.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
      const held = postTo(server.url, progressWebhook({ at: BASE_TIME, user: 41 }));
      await new Promise((r) => setTimeout(r, 300));
      const signalled = performance.now();
      server.child.kill(signal);
      const status = await within(server.child.status, STOP_LIMIT_MS);
      const tookMs = Math.round(performance.now() - signalled);
      assert(status, `still running ${STOP_LIMIT_MS} ms after ${signal}`);
      assert(status.success, `exit code ${status.code}`);
      const answer = await held;
      assertEquals([answer.status, answer.json.status], [409, "pending"]);
      // `deno task` passed the signal on: start.ts itself is gone and its port is free.
      const relisten = Deno.listen({ hostname: "127.0.0.1", port });
      relisten.close();
      assert(
        server.output.join("").includes(`"msg":"shutting down","signal":"${signal}","held":1`),
        `the delivery was held when ${signal} came:\n${server.output.join("")}`,
      );
      assert(tookMs < STOP_LIMIT_MS, `${tookMs} ms`);
    } finally {
      silent.close();
      half.close();
      await server.close();
    }
  });
}
