/**
 * Thinkific signatures (lib/thinkific/signature.ts): exactly the 64 hex digits of the HMAC verify,
 * with nothing before or after them; the key cannot be exported.
 */
import { assertEquals } from "./_assert.ts";
import { importSigningKey, signBody, verifySignature } from "../lib/thinkific/signature.ts";

const body = new TextEncoder().encode('{"id":"1"}');

Deno.test("signature: the exact hex signature verifies; with anything around it, it does not", async () => {
  const key = await importSigningKey("secret");
  const good = await signBody(key, body);
  assertEquals(await verifySignature(key, good, body), true);
  assertEquals(await verifySignature(key, good.toUpperCase(), body), true);
  for (const bad of [`${good}00`, `00${good}`, `x${good}`, good.slice(2), "", null]) {
    assertEquals(await verifySignature(key, bad, body), false, String(bad));
  }
});

Deno.test("signature: the signing key cannot be exported", async () => {
  assertEquals((await importSigningKey("secret")).extractable, false);
});
