/**
 * Thinkific's webhook signature: `X-Thinkific-Hmac-Sha256` is the lower-case hex HMAC-SHA256 of the
 * raw body, keyed with the school's API key (or the app's client secret).
 *
 * @example
 * ```ts
 * const key = await importSigningKey("my-api-key");
 * const header = await signBody(key, body);
 * console.log(await verifySignature(key, header, body)); // true
 * ```
 * @module
 */

const encoder = new TextEncoder();

/** Imports a secret as an HMAC-SHA256 key usable for signing and constant-time verification. */
export function importSigningKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** Returns the hex signature Thinkific would send for `body`. */
export async function signBody(key: CryptoKey, body: Uint8Array | string): Promise<string> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, bytes as BufferSource));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

function hexToBytes(hex: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Checks a hex signature against the raw body in constant time (`crypto.subtle.verify`).
 * A missing or malformed header is simply not valid.
 */
export async function verifySignature(
  key: CryptoKey,
  header: string | null,
  body: Uint8Array,
): Promise<boolean> {
  const mac = header === null ? null : hexToBytes(header.trim());
  if (mac === null) return false;
  return await crypto.subtle.verify("HMAC", key, mac as BufferSource, body as BufferSource);
}
