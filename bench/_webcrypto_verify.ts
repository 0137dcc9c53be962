/**
 * The baselines' signature check, frozen as issue 19 measured them: `crypto.subtle.verify`, as the
 * guide suggests and as a user would first write it. The service itself now checks with
 * `createVerifier` (`lib/_hmac.ts`, synchronous); the baselines keep this one so that their
 * figures stay the ones the issue set the goals against.
 *
 * @module
 */

/** Checks a hex signature against the raw body in constant time (`crypto.subtle.verify`). */
export async function verifySignature(
  key: CryptoKey,
  header: string | null,
  body: Uint8Array,
): Promise<boolean> {
  const hex = header?.trim() ?? "";
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return false;
  const mac = new Uint8Array(32);
  for (let i = 0; i < 32; i++) mac[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return await crypto.subtle.verify("HMAC", key, mac as BufferSource, body as BufferSource);
}
