/**
 * `deno run -A bench/_hmac.ts`: the cost of one webhook signature check on a 700-byte body, as the
 * baselines do it (`crypto.subtle.verify`, awaited one at a time, then 20,000 in flight) and as
 * the service does it (`createVerifier`: two SHA-256 hashes over the key's padded blocks, computed
 * once, `lib/_hmac.ts`, plain TypeScript).
 *
 * @module
 */
import { createVerifier, importSigningKey, signBody } from "../lib/thinkific/signature.ts";
import { verifySignature } from "./_webcrypto_verify.ts";

const N = 20_000;
const secret = "bench-webhook-secret";
const body = new TextEncoder().encode(JSON.stringify({ pad: "x".repeat(680) }));
const key = await importSigningKey(secret);
const header = await signBody(key, body);
const verify = createVerifier(secret);

async function time(name: string, run: () => Promise<unknown>) {
  const t = performance.now();
  await run();
  console.log(`${name}: ${((performance.now() - t) * 1000 / N).toFixed(1)} µs per check`);
}
await time("crypto.subtle.verify, one at a time", async () => {
  for (let i = 0; i < N; i++) if (!await verifySignature(key, header, body)) throw new Error("bad");
});
await time("crypto.subtle.verify, all in flight", async () => {
  const ok = await Promise.all(Array.from({ length: N }, () => verifySignature(key, header, body)));
  if (!ok.every(Boolean)) throw new Error("bad");
});
await time("createVerifier (lib/_hmac.ts)", () => {
  for (let i = 0; i < N; i++) if (!verify(header, body)) throw new Error("bad");
  return Promise.resolve();
});
