/**
 * Reads a request body, enforcing a byte limit while reading (a missing or false Content-Length
 * cannot get more than `max` bytes into memory).
 * @module
 */
import { HttpError } from "./errors.ts";

const tooLarge = (max: number) => new HttpError(413, `body is larger than ${max} bytes`);

/** Returns the raw body, or throws 413 as soon as it exceeds `max` bytes. */
export async function readBody(req: Request, max: number): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared) > max) {
    throw tooLarge(max);
  }
  if (req.body === null) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw tooLarge(max);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, "the request body could not be read");
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) (out.set(chunk, offset), offset += chunk.byteLength);
  return out;
}
