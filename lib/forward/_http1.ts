/**
 * A small HTTP/1.1 client for the forwarder's POSTs: one request at a time per connection, kept
 * alive and reused per origin, over TCP or TLS. `fetch` costs about 55 µs of CPU per POST in Deno
 * (its `Request`, `Headers`, signals and streams); a POST here costs about 12, and forwarding makes
 * one per record (`bench/RESULTS.md`). It only POSTs and only reads the answer's status: the body
 * is read through (by its length, its chunks, or up to the end of the connection) and dropped. It
 * follows no redirect and knows no proxy: `webhookDestination` uses `fetch` for those.
 *
 * @example
 * ```ts
 * const client = createHttp1Client();
 * const status = await client.post(new URL("https://crm.example/hook"), headers, body, signal);
 * client.close(); // its idle connections
 * ```
 * @module
 */

/** Opens a connection to `url`'s origin. */
export type Connect = (url: URL) => Promise<Deno.Conn>;

/** The client of one destination. */
export interface Http1Client {
  /**
   * POSTs `body` with `headers` (lower-case names, no `content-length` or `host`) and resolves with
   * the answer's status once its body is read. Rejects on a network error or an answer that is not
   * HTTP/1.x, and with `signal`'s reason when it aborts (the connection is then closed).
   */
  post(
    url: URL,
    headers: Record<string, string>,
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<number>;
  /** Closes the idle connections. */
  close(): void;
}

/** An answer's head may take this many bytes at most. */
export const MAX_HEAD_BYTES = 64 * 1024;

/** Idle connections kept per origin. */
const MAX_IDLE = 64;

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Where a connection to `url`'s origin goes: TLS for `https:`, the scheme's port by default. */
export function targetOf(url: URL): { tls: boolean; hostname: string; port: number } {
  const tls = url.protocol === "https:";
  const port = Number(url.port) || (tls ? 443 : 80);
  return { tls, hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), port }; // IPv6 unbracketed
}

/** Opens TCP for `http:`, TLS for `https:` (offering HTTP/1.1 only). */
export const connectTo: Connect = (url) => {
  const { tls, hostname, port } = targetOf(url);
  return tls
    ? Deno.connectTls({ hostname, port, alpnProtocols: ["http/1.1"] })
    : Deno.connect({ hostname, port });
};

/** A connection and what was read from it and not used yet. */
class Connection {
  #buf = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  /** Whether a byte of the current answer came (set to `false` as each request starts). */
  answered!: boolean;
  constructor(readonly conn: Deno.Conn) {}

  /** Bytes read and not used yet. */
  get pending(): number {
    return this.#end - this.#start;
  }

  /** Reads more; `false` at the end of the connection. */
  async #fill(): Promise<boolean> {
    if (this.#end === this.#buf.length) {
      // Full: what is pending moves to the front of a buffer with room (twice its size at least).
      const size = this.#end - this.#start;
      const next = new Uint8Array(Math.max(this.#buf.length, size * 2));
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
      this.#start = 0;
      this.#end = size;
    }
    const n = await this.conn.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.answered = true;
    this.#end += n;
    return true;
  }

  /** The text up to `delimiter` (consumed with it), read as Latin-1; at most `max` bytes. */
  async until(delimiter: string, max: number): Promise<string> {
    // How far into the bytes pending the delimiter cannot start (they move when more are read).
    for (let scanned = 0;;) {
      // A line within `max` ends within `max` bytes and its delimiter: no more is decoded (a chunk
      // size's line would otherwise decode the whole rest of the body read with it).
      const end = Math.min(this.#end, this.#start + max + delimiter.length);
      const text = latin1.decode(this.#buf.subarray(this.#start, end));
      const at = text.indexOf(delimiter, scanned);
      if ((at < 0 ? text.length : at) > max) throw new Error(`an answer's line over ${max} bytes`);
      if (at >= 0) {
        this.#start += at + delimiter.length;
        return text.slice(0, at);
      }
      scanned = Math.max(0, text.length - delimiter.length + 1);
      if (!await this.#fill()) throw new Error("the connection closed mid-answer");
    }
  }

  /** Drops `n` bytes; without `n`, every byte up to the end of the connection. */
  async skip(n = Infinity): Promise<void> {
    for (;;) {
      const take = Math.min(n, this.pending);
      this.#start += take;
      n -= take;
      if (n === 0) return;
      if (!await this.#fill()) {
        if (n === Infinity) return;
        throw new Error("the connection closed mid-answer");
      }
    }
  }
}

/** The request's bytes: its head, then its body. */
function requestBytes(url: URL, headers: Record<string, string>, body: Uint8Array): Uint8Array {
  let head = `POST ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name + value)) throw new TypeError(`header ${name}: a line break`);
    head += `${name}: ${value}\r\n`;
  }
  head += `content-length: ${body.byteLength}\r\n\r\n`;
  const bytes = encoder.encode(head);
  const out = new Uint8Array(bytes.byteLength + body.byteLength);
  out.set(bytes);
  out.set(body, bytes.byteLength);
  return out;
}

/** An answer's head: its status, and how its body ends. */
interface Head {
  status: number;
  /** Whether the connection can carry another request after this answer. */
  keepAlive: boolean;
  chunked: boolean;
  /** The body's length (`null`: chunked, or up to the end of the connection). */
  length: number | null;
}

/** Parses an answer's head (the text before its empty line). */
export function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const status = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/.exec(lines[0]);
  if (!status) throw new Error(`not an HTTP/1.x answer: ${JSON.stringify(lines[0].slice(0, 40))}`);
  let keepAlive = status[1] === "1";
  let chunked = false;
  let length: number | null = null;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw new Error(`a malformed header line: ${JSON.stringify(line.slice(0, 40))}`);
    }
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === "connection") keepAlive = !value.split(",").some((v) => v.trim() === "close");
    else if (name === "transfer-encoding") chunked = value.split(",").at(-1)!.trim() === "chunked";
    else if (name === "content-length") {
      if (!/^\d{1,15}$/.test(value) || (length !== null && length !== Number(value))) {
        throw new Error(`a bad content-length: ${JSON.stringify(value)}`);
      }
      length = Number(value);
    }
  }
  const code = Number(status[2]);
  // No body: 1xx, 204 and 304 (a POST's answer never carries one then).
  if (code < 200 || code === 204 || code === 304) {
    return { status: code, keepAlive, chunked: false, length: 0 };
  }
  if (chunked) return { status: code, keepAlive, chunked, length: null };
  // Neither length nor chunks: the body ends with the connection.
  return { status: code, keepAlive: keepAlive && length !== null, chunked, length };
}

/** Reads one answer through; its head. */
async function readAnswer(c: Connection): Promise<Head> {
  for (;;) {
    const head = parseHead(await c.until("\r\n\r\n", MAX_HEAD_BYTES));
    if (head.status === 101) throw new Error("an upgrade (101) that was not asked for");
    if (head.chunked) {
      for (;;) {
        const size = (await c.until("\r\n", 1024)).split(";")[0];
        if (!/^[0-9a-fA-F]{1,12}$/.test(size)) throw new Error(`a bad chunk size: ${size}`);
        const n = parseInt(size, 16);
        if (n === 0) {
          // Trailers, up to the empty line that ends the answer.
          while ((await c.until("\r\n", MAX_HEAD_BYTES)) !== "") continue;
          break;
        }
        await c.skip(n);
        if ((await c.until("\r\n", 2)) !== "") throw new Error("a chunk longer than its size");
      }
    } else await c.skip(head.length ?? Infinity);
    if (head.status >= 200) return head; // 1xx: interim, the answer follows
  }
}

/** Creates a client; `connect` opens connections (tests pass their own). */
export function createHttp1Client(connect: Connect = connectTo): Http1Client {
  /** Idle connections per origin, the last used last. */
  const idle = new Map<string, Connection[]>();
  const close = (c: Connection) => {
    try {
      c.conn.close();
    } catch { /* closed already */ }
  };

  /** Opens a connection, or gives `signal`'s reason once it aborts (the connection then closes). */
  async function open(url: URL, signal: AbortSignal): Promise<Connection> {
    let abort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      abort = () => reject(signal.reason);
      signal.addEventListener("abort", abort);
    });
    const opening = connect(url);
    try {
      return new Connection(await Promise.race([opening, aborted]));
    } catch (err) {
      opening.then((conn) => conn.close(), () => {});
      throw err;
    } finally {
      signal.removeEventListener("abort", abort);
    }
  }

  return {
    async post(url, headers, body, signal) {
      signal.throwIfAborted();
      const request = requestBytes(url, headers, body);
      const origin = url.origin;
      for (let fresh = false;; fresh = true) {
        const kept = fresh ? undefined : idle.get(origin)?.pop();
        const c = kept ?? await open(url, signal);
        c.answered = false;
        const stop = () => close(c);
        signal.addEventListener("abort", stop);
        try {
          for (let at = 0; at < request.byteLength;) {
            at += await c.conn.write(request.subarray(at));
          }
          const head = await readAnswer(c);
          if (head.keepAlive && c.pending === 0) {
            const list = idle.get(origin) ?? [];
            if (list.length < MAX_IDLE) {
              list.push(c);
              idle.set(origin, list);
            } else close(c);
          } else close(c);
          return head.status;
        } catch (err) {
          close(c);
          if (signal.aborted) throw signal.reason;
          // A kept connection the other end closed while idle: once more on a new one.
          if (kept && !c.answered) continue;
          throw err;
        } finally {
          signal.removeEventListener("abort", stop);
        }
      }
    },
    close() {
      for (const list of idle.values()) list.forEach(close);
      idle.clear();
    },
  };
}
