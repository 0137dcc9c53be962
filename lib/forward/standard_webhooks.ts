/**
 * Standard Webhooks signing: `webhook-signature` is `v1,` + base64 HMAC-SHA256 of
 * `${webhook-id}.${webhook-timestamp}.${body}`, keyed with the bytes of the `whsec_` secret.
 *
 * @example
 * ```ts
 * const key = await importStandardKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
 * const headers = await signMessage(key, "msg_1", 1700000000, body);
 * ```
 * @module
 */

const encoder = new TextEncoder();

function base64ToBytes(b64: string): Uint8Array {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** The key bytes of a `whsec_…` secret, or `null` when it is not one. */
export function decodeStandardSecret(secret: string): Uint8Array | null {
  const match = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(secret);
  if (!match) return null;
  try {
    const bytes = base64ToBytes(match[1]);
    return bytes.length >= 16 && bytes.length <= 128 ? bytes : null;
  } catch {
    return null;
  }
}

/** Imports a `whsec_…` secret for signing and verifying. */
export function importStandardKey(secret: string): Promise<CryptoKey> {
  const bytes = decodeStandardSecret(secret);
  if (!bytes) throw new Error("not a Standard Webhooks secret (whsec_ + base64)");
  return crypto.subtle.importKey(
    "raw",
    bytes as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** The three Standard Webhooks headers for one attempt. */
export async function signMessage(
  key: CryptoKey,
  id: string,
  timestampSeconds: number,
  body: string,
): Promise<Record<string, string>> {
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    encoder.encode(`${id}.${timestampSeconds}.${body}`),
  );
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": `v1,${bytesToBase64(new Uint8Array(mac))}`,
  };
}

/** Checks a `webhook-signature` header (any of its space-separated `v1,` signatures). */
export async function verifyMessage(
  key: CryptoKey,
  headers: { id: string; timestamp: string; signature: string },
  body: string,
): Promise<boolean> {
  const signed = encoder.encode(`${headers.id}.${headers.timestamp}.${body}`);
  for (const part of headers.signature.split(" ")) {
    const [version, b64] = part.split(",", 2);
    if (version !== "v1" || !b64) continue;
    let mac: Uint8Array;
    try {
      mac = base64ToBytes(b64);
    } catch {
      continue;
    }
    if (await crypto.subtle.verify("HMAC", key, mac as BufferSource, signed)) return true;
  }
  return false;
}
