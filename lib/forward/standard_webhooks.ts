/**
 * Standard Webhooks signing: `webhook-signature` is `v1,` + base64 HMAC-SHA256 of
 * `${webhook-id}.${webhook-timestamp}.${body}`, keyed with the bytes of the `whsec_` secret.
 *
 * @example
 * ```ts
 * const sign = createSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
 * const headers = sign("msg_1", 1700000000, body);
 * const key = await importStandardKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
 * await verifyMessage(key, { id: "msg_1", timestamp: "1700000000", signature: headers["webhook-signature"] }, body); // true
 * ```
 * @module
 */
import { createHmacSha256 } from "../_hmac.ts";

const encoder = new TextEncoder();

function base64ToBytes(b64: string): Uint8Array {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
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

const NOT_A_SECRET = "not a Standard Webhooks secret (whsec_ + base64)";

/** Imports a `whsec_…` secret for verifying ({@linkcode verifyMessage}). */
export function importStandardKey(secret: string): Promise<CryptoKey> {
  const bytes = decodeStandardSecret(secret);
  if (!bytes) throw new Error(NOT_A_SECRET);
  return crypto.subtle.importKey(
    "raw",
    bytes as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
}

/** Signs one attempt: the three Standard Webhooks headers of message `id` at `timestampSeconds`. */
export type MessageSigner = (
  id: string,
  timestampSeconds: number,
  body: string,
) => Record<"webhook-id" | "webhook-timestamp" | "webhook-signature", string>;

/**
 * The signer of a `whsec_…` secret. It signs synchronously (`lib/_hmac.ts`; a Web Crypto
 * `sign` costs a hand-off to another thread and back for each message).
 */
export function createSigner(secret: string): MessageSigner {
  const bytes = decodeStandardSecret(secret);
  if (!bytes) throw new Error(NOT_A_SECRET);
  const hmac = createHmacSha256(bytes);
  return (id, timestampSeconds, body) => ({
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": `v1,${hmac(`${id}.${timestampSeconds}.${body}`, "base64")}`,
  });
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
