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
