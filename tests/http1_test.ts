/**
 * The forwarder's HTTP/1.1 client (lib/forward/_http1.ts), against a TCP server that answers what
 * each test scripts: bodies framed by length, by chunks or by the end of the connection, interim
 * answers, kept and closed connections, malformed answers, deadlines; and `webhookDestination` on
 * it (a redirect through `fetch`, and `fetch` alone when asked).
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import {
  createHttp1Client,
  type Http1Client,
  MAX_HEAD_BYTES,
  parseHead,
  targetOf,
} from "../lib/forward/_http1.ts";
import { webhookDestination } from "../lib/forward/forwarder.ts";
import { createSigner } from "../lib/forward/standard_webhooks.ts";
import { parseConfig } from "../lib/config.ts";
import type { OutboxEntry } from "../lib/store/keys.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const never = new AbortController().signal;
const body = encoder.encode('{"type":"lesson.progress"}');
const json = { "content-type": "application/json" };

/** One request as the server read it. */
interface Seen {
  connection: number;
  head: string;
  body: string;
}

/**
 * A TCP server answering each request with the next of `answers` (a string, or a function given the
 * connection); `close` after an answer ends that connection.
 */
function scripted(
  answers: (string | { text: string; parts?: string[]; close?: boolean; hang?: boolean })[],
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: Seen[] = [];
  let connections = 0;
  const open = new Set<Deno.Conn>();
  let closedByClient = 0;
  const handlers: Promise<void>[] = [];
  const served = (async () => {
    for await (const conn of listener) {
      const n = ++connections;
      open.add(conn);
      handlers.push((async () => {
        let pending = "";
        const buf = new Uint8Array(64 * 1024);
        try {
          for (;;) {
            while (!pending.includes("\r\n\r\n")) {
              const r = await conn.read(buf);
              if (r === null) {
                closedByClient++;
                return;
              }
              pending += decoder.decode(buf.subarray(0, r));
            }
            const end = pending.indexOf("\r\n\r\n");
            const head = pending.slice(0, end);
            const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
            while (pending.length < end + 4 + length) {
              const r = await conn.read(buf);
              if (r === null) return;
              pending += decoder.decode(buf.subarray(0, r));
            }
            seen.push({ connection: n, head, body: pending.slice(end + 4, end + 4 + length) });
            pending = pending.slice(end + 4 + length);
            const next = answers.shift() ?? "HTTP/1.1 204 No Content\r\n\r\n";
            const answer = typeof next === "string" ? { text: next } : next;
            if (answer.hang) continue;
            await conn.write(encoder.encode(answer.text));
            for (const part of answer.parts ?? []) {
              await new Promise((r) => setTimeout(r, 15));
              await conn.write(encoder.encode(part));
            }
            if (answer.close) return;
          }
        } catch {
          closedByClient++;
        } finally {
          open.delete(conn);
          try {
            conn.close();
          } catch { /* closed here already */ }
        }
      })());
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    url: new URL(`http://127.0.0.1:${port}/hook?x=1`),
    seen,
    connections: () => connections,
    closedByClient: () => closedByClient,
    async close() {
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await served;
      await Promise.all(handlers);
    },
  };
}

/** Runs `test` with a client and a server scripted with `answers`; both are closed after it. */
async function withClient(
  answers: Parameters<typeof scripted>[0],
  test: (server: ReturnType<typeof scripted>, client: Http1Client) => Promise<void>,
) {
  const server = scripted(answers);
  const client = createHttp1Client();
  try {
    await test(server, client);
  } finally {
    client.close();
    await server.close();
  }
}

Deno.test("http1: a request as sent, and its connection kept for the next ones", async () => {
  await withClient([], async (server, client) => {
    for (let i = 0; i < 5; i++) {
      assertEquals(
        await client.post(server.url, { ...json, "webhook-id": `m${i}` }, body, never),
        204,
      );
    }
    assertEquals(server.connections(), 1);
    const first = server.seen[0];
    assertEquals(first.head.split("\r\n"), [
      "POST /hook?x=1 HTTP/1.1",
      `host: ${server.url.host}`,
      "content-type: application/json",
      "webhook-id: m0",
      `content-length: ${body.byteLength}`,
    ]);
    assertEquals(first.body, decoder.decode(body));
  });
});

Deno.test("http1: answers framed by length, chunks, interim answers; the connection kept", async () => {
  const chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n" +
    "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
  const answers = [
    "HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: text/plain\r\n\r\nhello world",
    chunked,
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok",
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\ntry later",
    "HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n",
    "HTTP/1.1 201\r\ncontent-length: 0\r\n\r\n",
  ];
  await withClient([...answers], async (server, client) => {
    const statuses = [];
    for (let i = 0; i < answers.length; i++) {
      statuses.push(await client.post(server.url, json, body, never));
    }
    assertEquals(statuses, [200, 200, 202, 503, 304, 201]);
    assertEquals(server.connections(), 1);
  });
});

Deno.test("http1: an answer that ends its connection, and one that says so, are read through", async () => {
  await withClient([
    { text: "HTTP/1.0 200 OK\r\n\r\nthe body runs to the end", close: true },
    "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
    "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
  ], async (server, client) => {
    for (let i = 0; i < 4; i++) assertEquals(await client.post(server.url, json, body, never), 200);
    // The first two ended their connections; the third (keep-alive) carried the fourth.
    assertEquals(server.seen.map((s) => s.connection), [1, 2, 3, 3]);
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(server.closedByClient(), 1, "the client closed the second (connection: close)");
  });
});

Deno.test("http1: a connection with bytes left after its answer is not used again", async () => {
  await withClient([
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nokEXTRA",
    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
  ], async (server, client) => {
    for (let i = 0; i < 3; i++) assertEquals(await client.post(server.url, json, body, never), 200);
    assertEquals(server.seen.map((s) => s.connection), [1, 2, 2]);
  });
});

Deno.test("http1: answers read across several reads: a long head, a split end, late bodies", async () => {
  const big = `x-big: ${"b".repeat(40_000)}\r\n`;
  const chunkSize = `1a;${"e".repeat(1024 - 3)}`; // exactly 1,024 bytes before its CRLF
  await withClient([
    `HTTP/1.1 200 OK\r\n${big}content-length: 2\r\n\r\nok`,
    {
      text: "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r",
      parts: ["\n", "he", "llo"],
    },
    {
      text: `HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n${chunkSize}\r\n`,
      parts: ["abcdefghijklm", "nopqrstuvwxyz\r\n", "0\r\n\r\n"],
    },
    "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
  ], async (server, client) => {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push(await client.post(server.url, json, body, never));
    assertEquals(statuses, [200, 200, 201, 202]);
    assertEquals(server.connections(), 1);
  });
});

Deno.test("http1: a head that never ends is an error once over its limit", async () => {
  await withClient(
    [{ text: `HTTP/1.1 200 OK\r\nx-big: ${"c".repeat(70_000)}` }],
    async (server, client) => {
      const err = await client.post(server.url, json, body, never).then(() => null, (e) => e);
      assertMatch(String(err), /over 65536 bytes/);
    },
  );
});

Deno.test("http1: a kept connection that closes mid-answer is an error, not tried again", async () => {
  await withClient([
    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    { text: "HTTP/1.1 200 OK\r\ncontent-le", close: true },
  ], async (server, client) => {
    assertEquals(await client.post(server.url, json, body, never), 200);
    const err = await client.post(server.url, json, body, never).then(() => null, (e) => e);
    assertMatch(String(err), /closed mid-answer/);
    assertEquals(server.seen.length, 2);
  });
});

Deno.test("http1: a signal aborted after its request ended leaves the kept connection alone", async () => {
  await withClient([], async (server, client) => {
    const first = new AbortController();
    assertEquals(await client.post(server.url, json, body, first.signal), 204);
    first.abort(new Error("late"));
    assertEquals(await client.post(server.url, json, body, never), 204);
    assertEquals(server.connections(), 1);
  });
});

Deno.test("http1: a kept connection closed by the other end is replaced once, at once", async () => {
  await withClient(
    [{ text: "HTTP/1.1 204 No Content\r\n\r\n", close: true }],
    async (server, client) => {
      assertEquals(await client.post(server.url, json, body, never), 204);
      await new Promise((r) => setTimeout(r, 20));
      assertEquals(await client.post(server.url, json, body, never), 204);
      assertEquals(server.seen.map((s) => s.connection), [1, 2]);
    },
  );
});

Deno.test("http1: a new connection that closes before answering is an error, not tried again", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const served = (async () => {
    for await (const conn of listener) {
      accepted++;
      await conn.read(new Uint8Array(1024));
      conn.close();
    }
  })().catch(() => {});
  const client = createHttp1Client();
  const url = new URL(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`);
  try {
    const err = await client.post(url, json, body, never).then(() => null, (e: Error) => e);
    assertMatch(String(err?.message), /closed mid-answer/);
    assertEquals(accepted, 1);
  } finally {
    client.close();
    listener.close();
    await served;
  }
});

Deno.test("http1: malformed answers are errors naming what is wrong", async () => {
  const cases: [string, RegExp][] = [
    ["SMTP ready\r\n\r\n", /not an HTTP\/1\.x answer/],
    [`XHTTP/1.1 200 OK ${"x".repeat(500)}\r\n\r\n`, /not an HTTP\/1\.x answer/],
    [`HTTP/1.1 200 OK\r\n${"y".repeat(500)}\r\n\r\n`, /malformed header line/],
    ["HTTP/1.1 200 OK\r\ncontent-length: 5x\r\n\r\n", /bad content-length/],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nx5\r\n", /bad chunk size/],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5x\r\n", /bad chunk size/],
    ["HTTP/2 200\r\n\r\n", /not an HTTP\/1\.x answer/],
    ["HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", /malformed header line/],
    ["HTTP/1.1 200 OK\r\n: no name\r\n\r\n", /malformed header line/],
    ["HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", /bad content-length/],
    ["HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc", /bad content-length/],
    ["HTTP/1.1 101 Switching Protocols\r\n\r\n", /upgrade/],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", /bad chunk size/],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", /longer than/],
    ["HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", /closed mid-answer/],
    [
      `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;${
        "x".repeat(1100)
      }\r\na\r\n0\r\n\r\n`,
      /over 1024 bytes/,
    ],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na", /closed mid-answer/],
    [`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(MAX_HEAD_BYTES)}\r\n\r\n`, /over 65536 bytes/],
  ];
  for (const [answer, message] of cases) {
    await withClient([{ text: answer, close: true }], async (server, client) => {
      const err = await client.post(server.url, json, body, never).then(() => null, (e) => e);
      assert(err instanceof Error, `${JSON.stringify(answer.slice(0, 30))}: no error`);
      assertMatch(err.message, message, JSON.stringify(answer.slice(0, 30)));
      assert(err.message.length < 200, "the answer is quoted short");
    });
  }
});

Deno.test("http1: a header with a line break is refused before anything is sent", async () => {
  await withClient([], async (server, client) => {
    const bad: Record<string, string>[] = [{ "x-a": "1\r\nx-b: 2" }, { "x-a\n": "1" }];
    for (const headers of bad) {
      const err = await client.post(server.url, headers, body, never).then(() => null, (e) => e);
      assert(err instanceof TypeError);
      assertMatch(err.message, /^header x-a\n?: a line break$/);
    }
    assertEquals(server.connections(), 0);
  });
});

Deno.test("http1: an abort ends the wait for an answer, and its connection", async () => {
  await withClient([{ text: "", hang: true }], async (server, client) => {
    const deadline = new AbortController();
    const reason = new Error("deadline");
    const posting = client.post(server.url, json, body, deadline.signal);
    await new Promise((r) => setTimeout(r, 30));
    deadline.abort(reason);
    assertEquals(await posting.then(() => null, (e) => e), reason);
    await new Promise((r) => setTimeout(r, 30));
    assertEquals(server.closedByClient(), 1);
    // Aborted before it starts: refused at once.
    const err = await client.post(server.url, json, body, deadline.signal).then(() => 0, (e) => e);
    assertEquals(err, reason);
    assertEquals(server.connections(), 1);
  });
});

Deno.test("http1: an abort while connecting gives its reason, and the late connection is closed", async () => {
  let resolve!: (c: Deno.Conn) => void;
  let closed = 0;
  const fake = { close: () => void closed++ } as unknown as Deno.Conn;
  const client = createHttp1Client(() => new Promise((r) => (resolve = r)));
  const deadline = new AbortController();
  const posting = client.post(new URL("http://crm.example/hook"), json, body, deadline.signal);
  deadline.abort(new Error("deadline"));
  assertMatch(String(await posting.catch((e) => e)), /deadline/);
  resolve(fake);
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(closed, 1);
  // A connection that cannot be made: its error.
  const failing = createHttp1Client(() => Promise.reject(new Error("refused")));
  const err = await failing.post(new URL("http://crm.example/"), json, body, never).catch((e) => e);
  assertMatch(String(err), /refused/);
});

Deno.test("http1: idle connections are kept per origin, up to 64, and closed with the client", async () => {
  const a = scripted([]);
  const b = scripted([]);
  const client = createHttp1Client();
  try {
    // 70 at once on one origin: 70 connections, 64 kept.
    await Promise.all(Array.from({ length: 70 }, () => client.post(a.url, json, body, never)));
    assertEquals(a.connections(), 70);
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(a.closedByClient(), 6);
    await Promise.all(Array.from({ length: 64 }, () => client.post(a.url, json, body, never)));
    assertEquals(a.connections(), 70);
    await client.post(b.url, json, body, never);
    assertEquals(b.connections(), 1);
    client.close();
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(a.closedByClient(), 70);
    assertEquals(b.closedByClient(), 1);
  } finally {
    client.close();
    await a.close();
    await b.close();
  }
});

Deno.test("http1: parseHead and targetOf, as tables", () => {
  const heads: [string, ReturnType<typeof parseHead>][] = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 5", {
      status: 200,
      keepAlive: true,
      chunked: false,
      length: 5,
    }],
    ["HTTP/1.1 200 OK", { status: 200, keepAlive: false, chunked: false, length: null }],
    ["HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\ncontent-length: 1", {
      status: 200,
      keepAlive: false,
      chunked: false,
      length: 1,
    }],
    ["HTTP/1.0 200 OK\r\ncontent-length: 1", {
      status: 200,
      keepAlive: false,
      chunked: false,
      length: 1,
    }],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length: 3", {
      status: 200,
      keepAlive: true,
      chunked: true,
      length: null,
    }],
    ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip", {
      status: 200,
      keepAlive: false,
      chunked: false,
      length: null,
    }],
    ["HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked", {
      status: 204,
      keepAlive: true,
      chunked: false,
      length: 0,
    }],
    ["HTTP/1.1 199 Early", { status: 199, keepAlive: true, chunked: false, length: 0 }],
    ["HTTP/1.1 304", { status: 304, keepAlive: true, chunked: false, length: 0 }],
    ["HTTP/1.1 205 Reset\r\ncontent-length: 0", {
      status: 205,
      keepAlive: true,
      chunked: false,
      length: 0,
    }],
  ];
  for (const [text, expected] of heads) assertEquals(parseHead(text), expected, text);
  for (const bad of ["HTTP/1.1 099 x", "HTTP/1.1 20 x", "HTTP/1.1 2000", "http/1.1 200 OK"]) {
    let threw = false;
    try {
      parseHead(bad);
    } catch {
      threw = true;
    }
    assert(threw, bad);
  }
  const targets: [string, ReturnType<typeof targetOf>][] = [
    ["https://crm.example/hook", { tls: true, hostname: "crm.example", port: 443 }],
    ["http://crm.example/hook", { tls: false, hostname: "crm.example", port: 80 }],
    ["https://crm.example:8443/", { tls: true, hostname: "crm.example", port: 8443 }],
    ["http://[::1]:8080/", { tls: false, hostname: "::1", port: 8080 }],
  ];
  for (const [url, expected] of targets) assertEquals(targetOf(new URL(url)), expected, url);
});

const entry = (): OutboxEntry =>
  ({
    id: "webhook:msg_1",
    destination: "webhook",
    messageId: "msg_1",
    attempts: 0,
    record: { collated_at: "2026-11-02T14:15:12.334Z" },
  }) as unknown as OutboxEntry;

Deno.test("webhook destination: over its own connection, a redirect through fetch, fetch when asked", async () => {
  const sign = createSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const target = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    await req.text();
    return new Response(null, { status: req.headers.get("webhook-id") ? 204 : 400 });
  });
  const moved =
    `HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:${target.addr.port}/` +
    "\r\ncontent-length: 0\r\n\r\n";
  const redirect = scripted([
    moved,
    moved,
    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n",
    "HTTP/1.1 204 No Content\r\n\r\n",
  ]);
  const fetched: string[] = [];
  const counting: typeof fetch = (input, init) => {
    fetched.push(String(input));
    return fetch(input, init);
  };
  const direct = webhookDestination(redirect.url.href, sign, {});
  try {
    // 307: fetch sends it again (its own connection), and follows the redirect to the target.
    await direct.deliver(entry(), never);
    assertEquals(redirect.seen.map((s) => s.connection), [1, 2]);
    // 500: a failure, over the kept connection.
    const err = await direct.deliver(entry(), never).then(() => null, (e) => e);
    assertMatch(String(err), /HTTP 500/);
    await direct.deliver(entry(), never);
    assertEquals(redirect.seen.slice(2).map((s) => s.connection), [1, 1]);
    // Not direct: fetch only, nothing over a connection of its own.
    const connects: URL[] = [];
    const viaFetch = webhookDestination(`http://127.0.0.1:${target.addr.port}/`, sign, {
      direct: false,
      fetch: undefined,
      connect: (url) => {
        connects.push(url);
        return Promise.reject(new Error("not here"));
      },
    });
    await viaFetch.deliver(entry(), never);
    assertEquals(connects, []);
    viaFetch.close?.();
    const injected = webhookDestination(redirect.url.href, sign, { fetch: counting });
    await injected.deliver(entry(), never);
    assertEquals(fetched, [redirect.url.href]);
  } finally {
    direct.close?.();
    await redirect.close();
    await target.shutdown();
  }
});

Deno.test("webhook destination: 2xx delivers, another answer but a redirect fails as it is", async () => {
  const sign = createSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const answer = (status: number) => `HTTP/1.1 ${status} X\r\ncontent-length: 0\r\n\r\n`;
  const interim = "HTTP/1.1 199 Early\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
  const server = scripted([answer(200), answer(299), answer(400), interim]);
  const destination = webhookDestination(server.url.href, sign, {});
  const outcome = () => destination.deliver(entry(), never).then(() => "ok", (e) => String(e));
  try {
    assertEquals(await outcome(), "ok");
    assertEquals(await outcome(), "ok");
    assertMatch(await outcome(), /HTTP 400/);
    // 199 is interim: the answer that follows it counts.
    assertEquals(await outcome(), "ok");
    assertEquals(server.seen.length, 4, "none sent again through fetch");
    // Its connection is closed with it.
    destination.close?.();
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(server.closedByClient(), 1);
  } finally {
    destination.close?.();
    await server.close();
  }
});

Deno.test("webhook destination: a 300 is sent again through fetch, as any redirect", async () => {
  const sign = createSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const server = scripted(["HTTP/1.1 300 Multiple Choices\r\ncontent-length: 0\r\n\r\n"]);
  const destination = webhookDestination(server.url.href, sign, {});
  try {
    await destination.deliver(entry(), never); // fetch's request gets the server's next: a 204
    assertEquals(server.seen.length, 2);
  } finally {
    destination.close?.();
    await server.close();
  }
});

Deno.test("http1: a connection that gave a malformed answer is closed", async () => {
  await withClient(["SMTP ready\r\n\r\n"], async (server, client) => {
    const err = await client.post(server.url, json, body, never).then(() => null, (e) => e);
    assertMatch(String(err), /not an HTTP\/1\.x answer/);
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(server.closedByClient(), 1);
  });
});

Deno.test("config: forwarding goes direct unless a proxy is set or OpenTelemetry is on", () => {
  const base = { KV_PATH: ":memory:" };
  assertEquals(parseConfig(base).forwardDirect, true);
  assertEquals(parseConfig({ ...base, OTEL_DENO: "false" }).forwardDirect, true);
  for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) {
    assertEquals(parseConfig({ ...base, [name]: "http://proxy:3128" }).forwardDirect, false, name);
    assertEquals(parseConfig({ ...base, [name]: "" }).forwardDirect, true, name);
  }
  assertEquals(parseConfig({ ...base, OTEL_DENO: "true" }).forwardDirect, false);
});

Deno.test("config: a FORWARD_URL with a user name or password is refused, naming it", () => {
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  for (const url of ["https://user:pass@crm.example/hook", "https://user@crm.example/hook"]) {
    let message = "";
    try {
      parseConfig({ KV_PATH: ":memory:", FORWARD_URL: url, FORWARD_SECRET: secret });
    } catch (err) {
      message = String(err);
    }
    assertMatch(message, /FORWARD_URL must not carry a user name or password/, url);
  }
  const ok = parseConfig({
    KV_PATH: ":memory:",
    FORWARD_URL: "https://crm.example/hook?token=x",
    FORWARD_SECRET: secret,
  });
  assertEquals(ok.forwardUrl, "https://crm.example/hook?token=x");
});
