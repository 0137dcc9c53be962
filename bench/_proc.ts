/**
 * Child processes for the benchmarks: the service (`start.ts`, as `deno task start` runs it) or
 * the baseline server, on a free port with their database in a given folder, with the resident
 * memory of the process polled from `/proc/<pid>/status`.
 * @module
 */
import { sleep } from "./_stats.ts";

export const ROOT = new URL("..", import.meta.url);
export const ROOT_PATH = decodeURIComponent(ROOT.pathname);
export const BENCH_SECRET = "bench-webhook-secret";

/** The flags of `deno task start`, read from deno.json so the bench runs the service as users do. */
export const START_FLAGS: string[] = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
).tasks.start.split(/\s+/).filter((arg: string) => arg.startsWith("--"));

/**
 * `project`: `start.ts`; `baseline`: the seed design on raw SQLite; `literal`: the design card taken
 * literally on Deno KV; `project-latency`: `start.ts` through `bench/latency_start.ts`, which adds
 * `KV_LATENCY_MS` to every KV call (the literal server reads `KV_LATENCY_MS` itself).
 */
export type ServerKind = "project" | "baseline" | "literal" | "project-latency";

const SCRIPTS: Record<ServerKind, string> = {
  project: "start.ts",
  baseline: "bench/baseline_server.ts",
  literal: "bench/literal_kv_server.ts",
  "project-latency": "bench/latency_start.ts",
};

export function freePort(): number {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Deno asks for `--allow-all` to read `/proc`, and `deno task bench` runs with `--allow-run`
 * instead: a small shell loop reads `/proc/<pid>/status` (builtins only, plus `sleep`) and
 * streams VmRSS and VmHWM, in kB, one sample a line.
 */
function procStatusLoop(pid: number, everyMs: number): Deno.ChildProcess {
  const script = `f=/proc/${pid}/status
while [ -r "$f" ]; do
  r=; h=
  while read -r k v u; do
    case "$k" in VmRSS:) r=$v;; VmHWM:) h=$v;; esac
  done < "$f"
  [ -n "$r" ] && echo "$r $h"
  sleep ${everyMs / 1000}
done`;
  return new Deno.Command("sh", {
    args: ["-c", script],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

/** Polls a process's VmRSS every `everyMs` (default 50) and keeps the peak and its VmHWM. */
export class RssMonitor {
  peakRss = 0;
  hwm = 0;
  samples = 0;
  #child: Deno.ChildProcess;
  #done: Promise<void>;
  constructor(readonly pid: number, everyMs = 50) {
    const child = procStatusLoop(pid, everyMs);
    this.#child = child;
    this.#done = (async () => {
      const lines = child.stdout.pipeThrough(new TextDecoderStream());
      let rest = "";
      for await (const chunk of lines) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop() ?? "";
        for (const line of parts) {
          const [rss, hwm] = line.split(" ").map((n) => Number(n) * 1024);
          this.samples++;
          if (rss > this.peakRss) this.peakRss = rss;
          if (hwm > this.hwm) this.hwm = hwm;
        }
      }
    })();
  }
  /** Takes a last sample, stops polling; returns the polled peak and VmHWM, bytes. */
  async stop(): Promise<{ peakRss: number; hwm: number }> {
    const last = await readMemory(this.pid);
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already gone */ }
    await this.#child.status;
    await this.#done;
    return {
      peakRss: Math.max(this.peakRss, last.rss),
      hwm: Math.max(this.hwm, last.hwm),
    };
  }
}

/** VmRSS and VmHWM of a process once, bytes (0 when it is gone). */
export async function readMemory(pid: number): Promise<{ rss: number; hwm: number }> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `grep -E '^Vm(RSS|HWM):' /proc/${pid}/status`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const kb = (name: string) => Number(text.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1]);
  return { rss: (kb("VmRSS") || 0) * 1024, hwm: (kb("VmHWM") || 0) * 1024 };
}

/** I/O counters of a process from `/proc/<pid>/io` (bytes written to storage, write calls). */
export async function readIo(pid: number): Promise<{ writeBytes: number; writeCalls: number }> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${pid}/io`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const field = (name: string) => Number(text.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1]);
  return { writeBytes: field("write_bytes") || 0, writeCalls: field("syscw") || 0 };
}

/** CPU time a process has used, ms, by thread: its main thread, KV's SQLite thread, the rest. */
export interface CpuTimes {
  main: number;
  kv: number;
  other: number;
}

/**
 * CPU time (user + system) of every thread of a process, from `/proc/<pid>/task/<tid>/stat` (read
 * through `sh`, as above), grouped: the main thread (tid = pid), Deno KV's SQLite thread (`sw-*`),
 * everything else (V8's GC and compiler workers, Tokio). Ticks of 10 ms (USER_HZ = 100).
 */
export async function readCpu(pid: number): Promise<CpuTimes> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `for f in /proc/${pid}/task/*/stat; do cat "$f" 2>/dev/null; echo; done`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const times: CpuTimes = { main: 0, kv: 0, other: 0 };
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = line.match(/^(\d+) \((.*)\) (.*)$/);
    if (!m) continue;
    const rest = m[3].split(" "); // from field 3 (state): utime is field 14, stime 15
    const ms = (Number(rest[11]) + Number(rest[12])) * 10;
    if (Number(m[1]) === pid) times.main += ms;
    else if (m[2].startsWith("sw-")) times.kv += ms;
    else times.other += ms;
  }
  return times;
}

/** The CPU model, from `/proc/cpuinfo` (read through `sh`, as above). */
export async function cpuModel(): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: ["-c", "grep -m1 '^model name' /proc/cpuinfo"],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => null);
  const line = out ? new TextDecoder().decode(out.stdout) : "";
  return line.replace(/^model name\s*:\s*/, "").trim() || "unknown";
}

/** A running server. */
export interface Server {
  url: string;
  pid: number;
  /** Milliseconds from spawn to the first 2xx on /healthz. */
  startMs: number;
  monitor: RssMonitor;
  /** stderr so far (capped). */
  stderr(): string;
  /** Stops the RSS monitor, then the process; returns its memory figures. */
  close(): Promise<{ peakRss: number; hwm: number }>;
}

/** Waits for the first 2xx on `/healthz`, polling every `everyMs`. */
export async function waitHealthy(
  url: string,
  child: Deno.ChildProcess,
  everyMs = 5,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let exited = false;
  child.status.then(() => (exited = true));
  while (true) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (exited) throw new Error("the server exited before answering /healthz");
    if (performance.now() > deadline) throw new Error(`no answer from ${url}/healthz`);
    await sleep(everyMs);
  }
}

/** Starts the service or a peer with its database under `dir`. */
export async function spawnServer(
  kind: ServerKind,
  dir: string,
  env: Record<string, string> = {},
): Promise<Server> {
  const port = freePort();
  const script = SCRIPTS[kind];
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...START_FLAGS, script],
    cwd: ROOT_PATH,
    env: {
      PORT: String(port),
      KV_PATH: `${dir}/kv.sqlite3`,
      DB_PATH: `${dir}/baseline.sqlite3`,
      THINKIFIC_WEBHOOK_SECRET: BENCH_SECRET,
      API_TOKEN: "",
      ...env,
    },
    stdin: "null",
    stdout: "null", // one JSON log line per webhook: written, then discarded
    stderr: "piped",
  }).spawn();
  let err = "";
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      if (err.length < 20_000) err += chunk;
    }
  })();
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(url, child);
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    throw new Error(`${kind} server did not start: ${(e as Error).message}\n${err}`);
  }
  const startMs = performance.now() - started;
  const monitor = new RssMonitor(child.pid);
  return {
    url,
    pid: child.pid,
    startMs,
    monitor,
    stderr: () => err,
    async close() {
      const mem = await monitor.stop();
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      return mem;
    },
  };
}
