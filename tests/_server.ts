/** Starting the service in a child process, as `deno task start` does, for tests over real ports. */
import { SECRET, signedInit, type Webhook } from "./_helpers.ts";

const ROOT = new URL("..", import.meta.url);

export function freePort(): number {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Debian's libfaketime (package `faketime`), if installed: shifts one process's clock. */
export const FAKETIME_LIB: string | undefined = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

/**
 * The README's `deno serve --parallel …` command, as arguments of `deno`, on `port`: the test runs
 * exactly what the README tells operators to run.
 */
export async function readmeServeParallelArgs(port: number): Promise<string[]> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const line = /^(?:npx -y deno@[\d.]+|deno) (serve --parallel .*)$/m.exec(readme)?.[1];
  if (!line) throw new Error("README.md has no `deno serve --parallel …` command line");
  const args = line.trim().split(/\s+/);
  const at = args.indexOf("--port");
  if (at < 0) throw new Error(`the README's command gives no --port: ${line}`);
  args[at + 1] = String(port);
  return args;
}

/** Starts `start.ts` in a child process and waits until it answers. */
export async function startServer(
  env: Record<string, string>,
  port = freePort(),
  /**
   * `run` runs start.ts as `deno task start` does; `task` runs `deno task start` itself;
   * `serve-parallel` runs the README's command.
   */
  how: "run" | "task" | "serve-parallel" = "run",
  /** `faketime`: a `FAKETIME` spec (`"-180s"`) for a process whose clock is off ({@linkcode FAKETIME_LIB}). */
  opts: { faketime?: string } = {},
) {
  const perms = ["--allow-net", "--allow-env", "--allow-read", "--allow-write"];
  const args = how === "run"
    ? ["run", ...perms, "start.ts"]
    : how === "task"
    ? ["task", "start"]
    : await readmeServeParallelArgs(port);
  // libfaketime preloaded into Deno itself (the `faketime` command would stand between the test
  // and the process, and outlive a SIGTERM).
  const clock: Record<string, string> = opts.faketime
    ? { LD_PRELOAD: FAKETIME_LIB!, FAKETIME: opts.faketime, DONT_FAKE_MONOTONIC: "1" }
    : {};
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { PORT: String(port), THINKIFIC_WEBHOOK_SECRET: SECRET, HOLD_MS: "0", ...clock, ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) output.push(chunk);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0;; i++) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      if (i > 200) throw new Error(`server did not start:\n${output.join("")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    output,
    child,
    /** Kills the process at once, as a crash would (no graceful shutdown). */
    async crash() {
      child.kill("SIGKILL");
      await child.status;
      await drained;
    },
    async close() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      await child.status;
      await drained;
    },
  };
}

export async function postTo(url: string, body: Webhook) {
  const res = await fetch(`${url}/webhooks/thinkific`, await signedInit(body));
  return { status: res.status, json: await res.json() };
}
