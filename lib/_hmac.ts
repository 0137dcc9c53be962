/**
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) in plain TypeScript, synchronous, with the key's two padded
 * blocks hashed once: each message then costs its own blocks and one more. Used by the intake's
 * signature check and the forwarder's signer.
 *
 * Why not `node:crypto`: importing it (or `node:path`) makes Deno load its Node.js compatibility
 * layer, about 7 MiB of resident memory in a process that otherwise needs none of it. Why not
 * `crypto.subtle`: it is asynchronous, a hand-off to another thread and back for every message,
 * several times the cost of hashing a webhook body here (`bench/_hmac.ts`).
 *
 * @example
 * ```ts
 * const mac = createHmacSha256(new TextEncoder().encode("secret"));
 * mac("body", "hex"); // the same as createHmac("sha256", "secret").update("body").digest("hex")
 * ```
 * @module
 */

/** SHA-256's block size, bytes: the length of HMAC's padded key. */
const BLOCK = 64;

/** The HMAC-SHA256 of `data` under one key, as hex or base64. */
export type HmacSha256 = (data: string | Uint8Array, encoding: "hex" | "base64") => string;

/** SHA-256's round constants. */
const K = Int32Array.from([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/** SHA-256's initial state. */
const INITIAL = Int32Array.from([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** The message schedule, reused by every block (hashing is synchronous). */
const W = new Int32Array(64);

/** Hashes the 64-byte blocks of `bytes` from `offset` into `state`, up to `end`. */
function blocks(state: Int32Array, bytes: Uint8Array, offset: number, end: number): void {
  let a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number;
  for (let p = offset; p + BLOCK <= end; p += BLOCK) {
    for (let i = 0; i < 16; i++) {
      const j = p + i * 4;
      W[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const x = W[i - 15];
      const y = W[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    a = state[0], b = state[1], c = state[2], d = state[3];
    e = state[4], f = state[5], g = state[6], h = state[7];
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g, g = f, f = e, e = (d + t1) | 0;
      d = c, c = b, b = a, a = (t1 + t2) | 0;
    }
    state[0] = (state[0] + a) | 0, state[1] = (state[1] + b) | 0;
    state[2] = (state[2] + c) | 0, state[3] = (state[3] + d) | 0;
    state[4] = (state[4] + e) | 0, state[5] = (state[5] + f) | 0;
    state[6] = (state[6] + g) | 0, state[7] = (state[7] + h) | 0;
  }
}

/** The last block or two: the bytes left, `0x80`, zeros, then the length in bits. */
const tail = new Uint8Array(2 * BLOCK);
const tailView = new DataView(tail.buffer);

/** A digest, written where the caller says (hashing is synchronous, so buffers are reused). */
interface Digest {
  bytes: Uint8Array;
  view: DataView;
}

function digestBuffer(): Digest {
  const bytes = new Uint8Array(32);
  return { bytes, view: new DataView(bytes.buffer) };
}

/**
 * Hashes `bytes` (after `before` bytes already in `state`) to the end, and writes the digest to
 * `out`. `state` is overwritten: pass a copy (the HMAC passes its working state).
 */
function finish(state: Int32Array, bytes: Uint8Array, before: number, out: Digest): Uint8Array {
  const whole = bytes.length - (bytes.length % BLOCK);
  blocks(state, bytes, 0, whole);
  const left = bytes.length - whole;
  tail.set(bytes.subarray(whole), 0);
  tail.fill(0, left);
  tail[left] = 0x80;
  const end = left < BLOCK - 8 ? BLOCK : 2 * BLOCK;
  const bits = (before + bytes.length) * 8;
  tailView.setUint32(end - 8, Math.floor(bits / 0x100000000));
  tailView.setUint32(end - 4, bits >>> 0);
  blocks(state, tail, 0, end);
  for (let i = 0; i < 8; i++) out.view.setInt32(i * 4, state[i]);
  return out.bytes;
}

/** SHA-256 of `bytes` (for a key longer than a block). */
function sha256(bytes: Uint8Array): Uint8Array {
  return finish(INITIAL.slice(), bytes, 0, digestBuffer());
}

/** The state after one padded key block. */
function keyed(pad: Uint8Array): Int32Array {
  const state = INITIAL.slice();
  blocks(state, pad, 0, BLOCK);
  return state;
}

/** The state being hashed, and the two digests of an HMAC. */
const work = new Int32Array(8);
const innerDigest = digestBuffer();
const outerDigest = digestBuffer();

const encoder = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function encode(digest: Uint8Array, encoding: "hex" | "base64"): string {
  if (encoding === "base64") return btoa(String.fromCharCode(...digest));
  let hex = "";
  for (let i = 0; i < digest.length; i++) hex += HEX[digest[i]];
  return hex;
}

/** An HMAC-SHA256 of `key` (a key over 64 bytes is hashed first, as the RFC says). */
export function createHmacSha256(key: Uint8Array): HmacSha256 {
  const k = key.byteLength > BLOCK ? sha256(key) : key;
  const inner = new Uint8Array(BLOCK);
  const outer = new Uint8Array(BLOCK);
  for (let i = 0; i < BLOCK; i++) {
    inner[i] = (k[i] ?? 0) ^ 0x36;
    outer[i] = (k[i] ?? 0) ^ 0x5c;
  }
  const innerState = keyed(inner);
  const outerState = keyed(outer);
  return (data, encoding) => {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    work.set(innerState);
    const digest = finish(work, bytes, BLOCK, innerDigest);
    work.set(outerState);
    return encode(finish(work, digest, BLOCK, outerDigest), encoding);
  };
}
