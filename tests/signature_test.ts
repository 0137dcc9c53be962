/**
 * Thinkific signatures (lib/thinkific/signature.ts): exactly the 64 hex digits of the HMAC verify,
 * with nothing before or after them (but white space); the signing key cannot be exported.
 */
import { assertEquals } from "./_assert.ts";
import { createVerifier, importSigningKey, signBody } from "../lib/thinkific/signature.ts";

const body = new TextEncoder().encode('{"id":"1"}');

Deno.test("signature: the exact hex signature verifies; with anything around it, it does not", async () => {
  const key = await importSigningKey("secret");
  const good = await signBody(key, body);
  const verify = createVerifier("secret");
  assertEquals(verify(good, body), true);
  assertEquals(verify(` ${good.toUpperCase()}\t`, body), true);
  for (const bad of [`${good}00`, `00${good}`, `x${good}`, good.slice(2), "", null]) {
    assertEquals(verify(bad, body), false, String(bad));
  }
  // Another secret, another body, one flipped digit: not valid.
  assertEquals(createVerifier("secret2")(good, body), false);
  assertEquals(verify(good, new TextEncoder().encode('{"id":"2"}')), false);
  const flipped = (good[0] === "0" ? "1" : "0") + good.slice(1);
  assertEquals(verify(flipped, body), false);
});

Deno.test("signature: the signing key cannot be exported", async () => {
  assertEquals((await importSigningKey("secret")).extractable, false);
});

Deno.test("signature: the check agrees with WebCrypto's HMAC for keys around SHA-256's 64-byte block, any digit flipped fails", async () => {
  const bodies = ["", "{}", "é".repeat(300), "x".repeat(5_000)].map((s) =>
    new TextEncoder().encode(s)
  );
  for (
    const secret of [
      "k",
      "a".repeat(63),
      "b".repeat(64),
      "c".repeat(65),
      "ü".repeat(40),
      "d".repeat(200),
    ]
  ) {
    const key = await importSigningKey(secret);
    const verify = createVerifier(secret);
    for (const b of bodies) {
      const good = await signBody(key, b);
      assertEquals(verify(good, b), true, `secret of ${secret.length} characters`);
      for (const i of [0, 31, 63]) {
        const flipped = good.slice(0, i) + (good[i] === "f" ? "e" : "f") + good.slice(i + 1);
        assertEquals(verify(flipped, b), false, `digit ${i} flipped`);
      }
    }
  }
});
