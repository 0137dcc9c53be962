/**
 * `lib/_hmac.ts` (plain TypeScript): the same HMAC-SHA256 as node:crypto's `createHmac`, for any key
 * length and data, including lengths at the edges of SHA-256's padding.
 */
import { createHmac } from "node:crypto";
import { assertEquals } from "./_assert.ts";
import { createHmacSha256 } from "../lib/_hmac.ts";

Deno.test("hmac: equals createHmac for keys around the 64-byte block, text and bytes, hex and base64", () => {
  const encoder = new TextEncoder();
  // Lengths around SHA-256's padding: a message's last block takes 55 bytes and its length, or
  // spills into one more block.
  const edges = [55, 56, 57, 63, 64, 65, 119, 120].map((n) => "y".repeat(n));
  const data = ["", "a", 'msg_1.1700000000.{"é":1}', "x".repeat(10_000), ...edges];
  for (const length of [0, 1, 32, 63, 64, 65, 200]) {
    const key = Uint8Array.from({ length }, (_, i) => (i * 37 + 11) % 256);
    const mac = createHmacSha256(key);
    for (const d of data) {
      for (const input of [d, encoder.encode(d)]) {
        for (const encoding of ["hex", "base64"] as const) {
          const want = createHmac("sha256", key).update(input).digest(encoding);
          assertEquals(mac(input, encoding), want, `key of ${length} bytes, ${encoding}`);
        }
      }
    }
  }
});

Deno.test("hmac: a body that is a view into a larger buffer is hashed from its own first byte", () => {
  const key = new TextEncoder().encode("bench-webhook-secret");
  const mac = createHmacSha256(key);
  const buffer = Uint8Array.from({ length: 300 }, (_, i) => i % 251);
  for (const [start, end] of [[1, 300], [7, 70], [64, 128], [3, 3]]) {
    const view = buffer.subarray(start, end);
    const want = createHmac("sha256", key).update(view.slice()).digest("hex");
    assertEquals(mac(view, "hex"), want, `bytes ${start}–${end}`);
  }
});

Deno.test("hmac: the HMACs of two keys, used in turn, share no state (the hashing buffers are reused)", () => {
  const a = createHmacSha256(new TextEncoder().encode("key a"));
  const b = createHmacSha256(new TextEncoder().encode("key b"));
  const first = a("same message", "base64");
  assertEquals(
    b("same message", "base64"),
    createHmac("sha256", "key b").update("same message").digest("base64"),
  );
  assertEquals(a("same message", "base64"), first);
});
