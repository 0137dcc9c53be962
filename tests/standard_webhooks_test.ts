/**
 * Standard Webhooks signing (lib/forward/standard_webhooks.ts): which `whsec_` secrets are keys,
 * the error for one that is not, a key that cannot be exported, the signer's headers, and which
 * signature headers verify.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  createSigner,
  decodeStandardSecret,
  importStandardKey,
  verifyMessage,
} from "../lib/forward/standard_webhooks.ts";

const b64 = (n: number) => btoa(String.fromCharCode(...new Uint8Array(n).fill(7)));

Deno.test("standard webhooks: a secret is whsec_ and base64 of 16 to 128 bytes, nothing around it", () => {
  assertEquals(decodeStandardSecret(`whsec_${b64(16)}`)?.length, 16);
  assertEquals(decodeStandardSecret(`whsec_${b64(128)}`)?.length, 128);
  for (
    const bad of [
      `whsec_${b64(15)}`,
      `whsec_${b64(129)}`,
      `xwhsec_${b64(32)}`,
      `whsec_${b64(32)} `,
      `whsec_${b64(32)}!`,
      `whsec_`,
      `whsec_a`, // not base64: atob throws
      b64(32),
    ]
  ) {
    assertEquals(decodeStandardSecret(bad), null, bad);
  }
});

Deno.test("standard webhooks: a bad secret is refused with what it must be; a key cannot be exported", async () => {
  let message = "";
  try {
    await importStandardKey("whsec_short");
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(message, "not a Standard Webhooks secret (whsec_ + base64)");
  let signerMessage = "";
  try {
    createSigner("whsec_short");
  } catch (e) {
    signerMessage = (e as Error).message;
  }
  assertEquals(signerMessage, message, "the signer refuses it alike");
  const key = await importStandardKey(`whsec_${b64(32)}`);
  assertEquals(key.extractable, false);
});

Deno.test("standard webhooks: any v1 signature of the header verifies; other versions and junk do not", async () => {
  const secret = `whsec_${b64(32)}`;
  const key = await importStandardKey(secret);
  const headers = createSigner(secret)("msg_1", 1_700_000_000, "{}");
  assertEquals([headers["webhook-id"], headers["webhook-timestamp"]], ["msg_1", "1700000000"]);
  const good = headers["webhook-signature"];
  assert(good.startsWith("v1,"));
  const mac = good.slice(3);
  const check = (signature: string, body = "{}") =>
    verifyMessage(key, { id: "msg_1", timestamp: "1700000000", signature }, body);
  assertEquals(await check(good), true);
  assertEquals(await check(`v1,${b64(32)} ${good}`), true, "the second of two");
  assertEquals(await check(`v2,${mac}`), false, "another version");
  assertEquals(await check(`v1,`), false, "empty");
  assertEquals(await check(`v1,!!!! ${`v2,${mac}`}`), false, "junk, then another version");
  assertEquals(await check(good, "{ }"), false, "another body");
});
