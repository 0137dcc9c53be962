/**
 * Forwarding's own cost, in-process: `--pairs` records (2,000) are made with their projections
 * left pending, then one forwarder sweep projects and forwards them all. Prints the sweep's CPU
 * per record (the process's user + system time, from `/proc/self/stat`) and the Deno Deploy write
 * units of its successful commits per record (projection, leases and settlements; counted as
 * section 3 counts them), for
 *
 * - a handler destination that does nothing (the outbox's machinery: projection, leases, settles);
 * - the webhook destination (signed POSTs to a receiver in a child process, so its CPU is not
 *   counted).
 *
 * ```sh
 * deno run -A bench/_forward_cpu.ts [--pairs 2000] [--rounds 3]
 * ```
 * @module
 */
import { harness } from "../tests/_helpers.ts";
import { pairsLeftPending } from "../tests/_projection.ts";
import {
  createForwarder,
  type Destination,
  handlerDestination,
  webhookDestination,
} from "../lib/forward/forwarder.ts";
import { createSigner } from "../lib/forward/standard_webhooks.ts";
import { FORWARD_SECRET } from "./_forward.ts";
import { noneTracked, trackWaits } from "./_roundtrips.ts";
import { median } from "./_stats.ts";

const HOUR = 3_600_000;

/** CPU time this process has used, in ms (Linux). */
function cpuMs(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return ticks * 10;
}

/** A receiver answering 204 in a child process: its URL and how to stop it. */
async function childReceiver() {
  const probe = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const code =
    `Deno.serve({ port: ${port}, hostname: "127.0.0.1", onListen() { console.log("up"); } },
    async (req) => { await req.arrayBuffer(); return new Response(null, { status: 204 }); });`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  await reader.read(); // "up"
  return {
    url: `http://127.0.0.1:${port}/hook`,
    async stop() {
      child.kill();
      await reader.cancel().catch(() => {});
      await child.status;
    },
  };
}

/** One sweep over `pairs` fresh records: CPU ms and Deno Deploy write units per record. */
async function sweepOnce(
  pairs: number,
  destination: Destination,
): Promise<{ cpuMs: number; writeUnits: number }> {
  const dir = await Deno.makeTempDir({ prefix: "bench-forward-cpu-" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
  try {
    const h = await harness({}, kv);
    await pairsLeftPending(h, pairs, (i) => ({
      user: 1 + (i % 50),
      course: 10,
      lesson: i + 1,
      at: Date.parse("2026-11-01T00:00:00Z") + i * HOUR,
    }));
    const counted = noneTracked();
    const forwarder = createForwarder({
      kv: trackWaits(kv, counted),
      destinations: [destination],
      log: () => {},
    });
    const before = cpuMs();
    const attempts = await forwarder.sweep();
    const used = cpuMs() - before;
    await forwarder.close();
    if (attempts !== pairs) throw new Error(`${attempts} attempts for ${pairs} records`);
    return { cpuMs: used / pairs, writeUnits: counted.writeUnits / pairs };
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const arg = (name: string, fallback: number) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
  };
  const pairs = arg("pairs", 2_000);
  const rounds = arg("rounds", 3);
  const rx = await childReceiver();
  const webhook = webhookDestination(rx.url, createSigner(FORWARD_SECRET));
  const noop = handlerDestination("noop", () => Promise.resolve());
  const got: Record<string, { cpuMs: number; writeUnits: number }[]> = {
    "handler (does nothing)": [],
    "webhook": [],
  };
  try {
    for (let r = 0; r < rounds; r++) {
      got["handler (does nothing)"].push(await sweepOnce(pairs, noop));
      got["webhook"].push(await sweepOnce(pairs, webhook));
    }
  } finally {
    await rx.stop();
  }
  console.log(`forwarding per record, ${pairs} records per sweep, median of ${rounds} rounds`);
  for (const [name, runs] of Object.entries(got)) {
    const cpu = runs.map((x) => x.cpuMs);
    console.log(
      `${name.padEnd(24)} CPU ${median(cpu).toFixed(3)} ms (${
        cpu.map((x) => x.toFixed(3)).join(", ")
      }), write units ${median(runs.map((x) => x.writeUnits)).toFixed(2)}`,
    );
  }
}
