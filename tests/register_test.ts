/**
 * `scripts/register.ts` against a local fake of Thinkific's Webhooks API v2, of its published shape
 * (OAuth `Authorization: Bearer`; `next` + `limit`, default 25; `meta.page.has_next` and an opaque
 * `next_page`). Without an OAuth token it calls nothing: Thinkific documents no API-key access to
 * webhooks, so it prints the steps in Thinkific's admin.
 */
import assert from "node:assert/strict";
import { main, rateLimitWaitMs } from "../scripts/register.ts";

const TOKEN = "test-oauth-token";
const API_KEY = "test-api-key";
const SUBDOMAIN = "acme-school";
const TARGET = "https://collator.example.com/webhooks/thinkific";
const OTHER = "https://other.example.com/hooks";

interface Hook {
  id: string;
  topic: string;
  target_url: string;
  created_at: string;
}

interface Call {
  method: string;
  path: string;
  headers: Headers;
  body: unknown;
}

interface FakeOptions {
  /** Answer this many requests with 429 first, with this `RateLimit-Reset`. */
  rateLimited?: { times: number; reset: string | null };
}

/**
 * A fake Thinkific Webhooks API v2 at `/api/v2`. Webhook ids are strings, as v2 publishes them.
 * `next_page` is an opaque token (not a number).
 */
function fakeThinkific(initial: Omit<Hook, "id" | "created_at">[], opts: FakeOptions = {}) {
  let nextId = 100;
  const hooks: Hook[] = initial.map((h) => ({
    ...h,
    id: String(nextId++),
    created_at: "2026-11-01T10:00:00.000Z",
  }));
  const calls: Call[] = [];
  const tokens = new Map<string, number>();
  let limited = opts.rateLimited?.times ?? 0;
  const root = "/api/v2";
  const authorized = (h: Headers) =>
    h.get("authorization") === `Bearer ${TOKEN}` && !h.has("x-auth-api-key");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const text = await req.text();
    calls.push({
      method: req.method,
      path: url.pathname + url.search,
      headers: req.headers,
      body: text ? JSON.parse(text) : null,
    });
    if (limited > 0) {
      limited--;
      const headers = new Headers();
      if (opts.rateLimited?.reset != null) headers.set("RateLimit-Reset", opts.rateLimited.reset);
      return Response.json({ error: "Rate Limit Exceeded" }, { status: 429, headers });
    }
    if (!authorized(req.headers)) {
      return Response.json({ error: "Authentication Error" }, { status: 401 });
    }
    if (url.pathname === `${root}/webhooks` && req.method === "GET") {
      const limit = Number(url.searchParams.get("limit") ?? "25");
      {
        if (url.searchParams.has("page")) {
          return Response.json({ error: "unknown parameter page" }, { status: 400 });
        }
        const next = url.searchParams.get("next");
        const from = next === null ? 0 : tokens.get(next);
        if (from === undefined) return Response.json({ error: "bad next" }, { status: 400 });
        const items = hooks.slice(from, from + limit);
        const hasNext = from + limit < hooks.length;
        const token = hasNext ? crypto.randomUUID().replaceAll("-", "") : "";
        if (hasNext) tokens.set(token, from + limit);
        return Response.json({
          items,
          meta: {
            page: {
              has_next: hasNext,
              next_page: token,
              page_items: items.length,
              total_items: hooks.length,
            },
          },
        });
      }
    }
    if (url.pathname === `${root}/webhooks` && req.method === "POST") {
      const body = JSON.parse(text) as { topic: string; target_url: string };
      const hook = { id: String(nextId++), ...body, created_at: "2026-11-02T10:00:00.000Z" };
      hooks.push(hook);
      return Response.json(hook, { status: 201 });
    }
    const m = new RegExp(`^${root}/webhooks/(\\w+)$`).exec(url.pathname);
    if (m && req.method === "DELETE") {
      const i = hooks.findIndex((h) => h.id === m[1]);
      if (i < 0) return Response.json({ error: "Not found" }, { status: 404 });
      hooks.splice(i, 1);
      return new Response(null, { status: 204 });
    }
    return Response.json({ error: "Not found" }, { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}${root}`;
  const env: Record<string, string> = { THINKIFIC_OAUTH_TOKEN: TOKEN, THINKIFIC_API_URL: base };
  return { server, hooks, calls, env, base, [Symbol.asyncDispose]: () => server.shutdown() };
}

async function run(
  args: string[],
  env: Record<string, string | undefined>,
  clock: { now?: number; waits?: number[] } = {},
) {
  const out: string[] = [];
  const err: string[] = [];
  const waits = clock.waits ?? [];
  const code = await main(args, {
    env,
    stdout: (l) => out.push(l),
    stderr: (l) => err.push(l),
    sleep: (ms) => (waits.push(ms), Promise.resolve()),
    now: () => clock.now ?? Date.parse("2026-11-29T12:00:00.000Z"),
  });
  return { code, out, err, waits };
}

const unrelated = [
  { topic: "order.created", target_url: OTHER },
  { topic: "lesson.completed", target_url: OTHER },
  { topic: "enrollment.progress", target_url: OTHER },
];

/** 120 other webhooks, then ours at positions 121 and 122. */
const crowded = [
  ...Array.from({ length: 120 }, (_, i) => ({
    topic: ["order.created", "lesson.completed", "enrollment.progress"][i % 3],
    target_url: `${OTHER}/${i}`,
  })),
  { topic: "lesson.completed", target_url: TARGET },
  { topic: "enrollment.progress", target_url: TARGET },
];

{
  const what = "OAuth, Webhooks API v2";

  Deno.test(`register (${what}): 122 webhooks, ours at 121-122: list, skip, remove see them all`, async () => {
    await using api = fakeThinkific(crowded);
    const all = await run(["--list"], api.env);
    assert.equal(all.code, 0, all.err.join("\n"));
    assert.match(all.out[0], /^122 webhook\(s\) registered:/);
    assert.equal(all.out.length, 123);

    const mine = await run(["--list", "--url", TARGET], api.env);
    assert.match(mine.out[0], /^2 webhook\(s\) registered for /);

    const again = await run(["--url", TARGET], api.env);
    assert.equal(again.code, 0, again.err.join("\n"));
    assert.equal(api.calls.filter((c) => c.method === "POST").length, 0, "no duplicate");
    assert.equal(again.out.filter((l) => l.startsWith("already registered")).length, 2);

    const gets = api.calls.filter((c) => c.method === "GET").slice(0, 5).map((c) => c.path);
    assert.equal(gets[0], "/api/v2/webhooks?limit=25");
    for (const path of gets.slice(1)) {
      assert.match(path, /^\/api\/v2\/webhooks\?limit=25&next=\w+$/);
    }

    const removed = await run(["--remove", "--url", TARGET], api.env);
    assert.equal(removed.code, 0, removed.err.join("\n"));
    assert.equal(removed.out.filter((l) => l.startsWith("removed")).length, 2);
    assert.equal(api.hooks.length, 120);
    assert.ok(api.hooks.every((h) => h.target_url !== TARGET));
  });

  Deno.test(`register (${what}) creates both topics for the target URL, reading every page first`, async () => {
    await using api = fakeThinkific(crowded.slice(0, 30));
    const r = await run(["--url", "https://collator.example.com"], api.env);
    assert.equal(r.code, 0, r.err.join("\n"));
    const methods = api.calls.map((c) => c.method);
    assert.deepEqual(methods, ["GET", "GET", "POST", "POST"]);
    const posts = api.calls.filter((c) => c.method === "POST");
    assert.deepEqual(posts.map((c) => c.body), [
      { topic: "lesson.completed", target_url: TARGET },
      { topic: "enrollment.progress", target_url: TARGET },
    ]);
    for (const c of api.calls) {
      assert.equal(c.headers.get("authorization"), `Bearer ${TOKEN}`);
    }
    assert.equal(api.hooks.filter((h) => h.target_url === TARGET).length, 2);
    assert.match(r.out.join("\n"), /registered lesson\.completed → .* \(id \d+\)/);
  });
}

Deno.test("register with an API key only: no request (undocumented), the admin's steps, exit 2", async () => {
  const seen: string[] = [];
  const fetchStub: typeof fetch = (input) => {
    seen.push(String(input));
    return Promise.resolve(Response.json({}, { status: 500 }));
  };
  for (
    const [args, env, steps] of [
      [
        ["--url", TARGET],
        { THINKIFIC_API_KEY: API_KEY, THINKIFIC_SUBDOMAIN: SUBDOMAIN },
        /New webhook/,
      ],
      [["--url", TARGET], {}, /New webhook/],
      [["--list"], { THINKIFIC_API_KEY: API_KEY, THINKIFIC_SUBDOMAIN: SUBDOMAIN }, /listed/],
      [["--remove", "--url", TARGET], { THINKIFIC_API_KEY: API_KEY }, /Delete/],
    ] as [string[], Record<string, string>, RegExp][]
  ) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(args, {
      env,
      fetch: fetchStub,
      stdout: (l) => out.push(l),
      stderr: (l) => err.push(l),
    });
    const text = out.join("\n");
    assert.equal(code, 2, `${args.join(" ")}: ${err.join("\n")}`);
    assert.match(err.join("\n"), /Thinkific documents no API-key access to webhooks/);
    assert.match(err.join("\n"), /THINKIFIC_OAUTH_TOKEN/);
    assert.match(text, /Settings → Code & analytics → Webhooks/);
    assert.match(text, steps);
    if (!args.includes("--list")) {
      assert.ok(text.includes(TARGET), text);
      assert.match(text, /lesson\.completed/);
      assert.match(text, /enrollment\.progress/);
    }
    if (env.THINKIFIC_SUBDOMAIN) assert.match(text, /https:\/\/acme-school\.thinkific\.com/);
  }
  assert.deepEqual(seen, [], "no call to an undocumented endpoint");
});

Deno.test("register: the Webhooks API v2 is the default base URL", async () => {
  const seen: { url: string; headers: Headers }[] = [];
  const fetchStub: typeof fetch = (input, init) => {
    seen.push({ url: String(input), headers: new Headers(init?.headers) });
    return Promise.resolve(
      Response.json({ items: [], meta: { page: { has_next: false, next_page: "" } } }),
    );
  };
  const out = (env: Record<string, string>) =>
    main(["--list"], { env, fetch: fetchStub, stdout: () => {}, stderr: () => {} });
  assert.equal(await out({ THINKIFIC_OAUTH_TOKEN: TOKEN }), 0);
  assert.equal(seen[0].url, "https://api.thinkific.com/api/v2/webhooks?limit=25");
  // An API key beside the token is not sent: the Webhooks API takes the token.
  await out({ THINKIFIC_OAUTH_TOKEN: TOKEN, THINKIFIC_API_KEY: API_KEY });
  assert.equal(seen[1].headers.get("authorization"), `Bearer ${TOKEN}`);
  assert.equal(seen[1].headers.has("x-auth-api-key"), false);
});

Deno.test("register skips topics already registered for that URL (found on a later page)", async () => {
  await using api = fakeThinkific([
    ...crowded.slice(0, 27),
    { topic: "enrollment.progress", target_url: TARGET },
  ]);
  const r = await run(["--url", TARGET], api.env);
  assert.equal(r.code, 0, r.err.join("\n"));
  const posts = api.calls.filter((c) => c.method === "POST");
  assert.deepEqual(posts.map((c) => c.body), [{ topic: "lesson.completed", target_url: TARGET }]);
  assert.match(r.out.join("\n"), /already registered: enrollment\.progress .*\(id 127\)/);

  const again = await run(["--url", TARGET], api.env);
  assert.equal(again.code, 0);
  assert.equal(api.calls.filter((c) => c.method === "POST").length, 1);
  assert.equal(again.out.filter((l) => l.startsWith("already registered")).length, 2);
});

Deno.test("register --topics registers only the named topics", async () => {
  await using api = fakeThinkific([]);
  const r = await run(["--url", TARGET, "--topics", "lesson.completed"], api.env);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.deepEqual(api.hooks.map((h) => h.topic), ["lesson.completed"]);
});

Deno.test("register --list prints every webhook, or those of --url", async () => {
  await using api = fakeThinkific([...unrelated, {
    topic: "lesson.completed",
    target_url: TARGET,
  }]);
  const all = await run(["--list"], api.env);
  assert.equal(all.code, 0, all.err.join("\n"));
  assert.match(all.out[0], /^4 webhook\(s\) registered:/);
  for (const id of [100, 101, 102, 103]) assert.ok(all.out.some((l) => l.includes(` ${id} `)));

  const mine = await run(["--list", "--url", TARGET], api.env);
  assert.match(mine.out[0], /^1 webhook\(s\) registered for /);
  assert.equal(mine.out.length, 2);
  assert.match(mine.out[1], /103\s+lesson\.completed\s+https:\/\/collator/);
  assert.equal(api.calls.filter((c) => c.method !== "GET").length, 0);
});

Deno.test("register --remove deletes only the webhooks for that URL", async () => {
  await using api = fakeThinkific([
    ...unrelated,
    { topic: "lesson.completed", target_url: TARGET },
    { topic: "enrollment.progress", target_url: TARGET },
  ]);
  const r = await run(["--remove", "--url", TARGET], api.env);
  assert.equal(r.code, 0, r.err.join("\n"));
  const deletes = api.calls.filter((c) => c.method === "DELETE").map((c) => c.path);
  assert.deepEqual(deletes, ["/api/v2/webhooks/103", "/api/v2/webhooks/104"]);
  assert.deepEqual(api.hooks.map((h) => h.target_url), [OTHER, OTHER, OTHER]);
  assert.equal(r.out.filter((l) => l.startsWith("removed")).length, 2);

  const none = await run(["--remove", "--url", TARGET], api.env);
  assert.equal(none.code, 0);
  assert.match(none.out[0], /no webhooks registered for/);
});

Deno.test("register: a 429 is waited out (RateLimit-Reset, bounded) and said on stderr", async () => {
  const now = Date.parse("2026-11-29T12:00:00.000Z");
  await using api = fakeThinkific([], {
    rateLimited: { times: 2, reset: String((now + 12_000) / 1000) },
  });
  const r = await run(["--url", TARGET], api.env, { now });
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.deepEqual(r.waits, [12_000, 12_000]);
  assert.equal(r.err.length, 2);
  assert.match(r.err[0], /rate limited by Thinkific \(429 to GET \/webhooks.*\): waiting 12 s/);
  assert.equal(api.hooks.length, 2);

  await using stuck = fakeThinkific([], {
    rateLimited: { times: 99, reset: String(now / 1000 + 3600) },
  });
  const gave = await run(["--list"], stuck.env, { now });
  assert.equal(gave.code, 1);
  assert.deepEqual(gave.waits, [60_000, 60_000, 60_000], "each wait at most a minute");
  assert.match(gave.err.at(-1) ?? "", /still answers 429 .* after 3 waits/);
});

Deno.test("register: RateLimit-Reset as epoch seconds, epoch ms, seconds or ms to wait", () => {
  const now = 1_800_000_000_000;
  assert.equal(rateLimitWaitMs(String(now / 1000 + 30), now), 30_000);
  assert.equal(rateLimitWaitMs(String(now + 4_500), now), 4_500);
  assert.equal(rateLimitWaitMs("20", now), 20_000);
  assert.equal(rateLimitWaitMs("2500", now), 2_500);
  assert.equal(rateLimitWaitMs(String(now / 1000 - 5), now), 1_000, "a reset in the past");
  assert.equal(rateLimitWaitMs(null, now), 60_000);
  assert.equal(rateLimitWaitMs("soon", now), 60_000);
  assert.equal(rateLimitWaitMs(String(now + 3_600_000), now), 60_000);
});

Deno.test("register names the credentials it needs, and which one is which", async () => {
  await using api = fakeThinkific([]);
  const base = { THINKIFIC_API_URL: api.env.THINKIFIC_API_URL };
  for (
    const [env, pattern] of [
      [
        { THINKIFIC_API_KEY: API_KEY, THINKIFIC_SUBDOMAIN: "https://acme.thinkific.com" },
        /subdomain alone/,
      ],
      [{ THINKIFIC_API_TOKEN: TOKEN }, /THINKIFIC_API_TOKEN is no longer read/],
    ] as [Record<string, string>, RegExp][]
  ) {
    const r = await run(["--url", TARGET], { ...base, ...env });
    assert.equal(r.code, 1, JSON.stringify(env));
    assert.equal(r.err.length, 1);
    assert.match(r.err[0], pattern);
  }
  assert.equal(api.calls.length, 0);
});

Deno.test("register refuses a non-https target URL, except http://localhost", async () => {
  await using api = fakeThinkific([]);
  const r = await run(["--url", "http://collator.example.com/webhooks/thinkific"], api.env);
  assert.equal(r.code, 1);
  assert.match(r.err[0], /--url must be an https URL/);
  assert.equal(api.calls.length, 0);

  const local = await run(["--url", "http://localhost:8000"], api.env);
  assert.equal(local.code, 0, local.err.join("\n"));
  assert.ok(api.hooks.every((h) => h.target_url === "http://localhost:8000/webhooks/thinkific"));
});

Deno.test("register reports usage mistakes and API errors in one line", async () => {
  await using api = fakeThinkific([]);
  for (
    const [args, pattern] of [
      [[], /--url is required/],
      [["--list", "--remove"], /cannot be combined/],
      [["--url", TARGET, "--topics", "lesson"], /not a topic/],
      [["--url", "not a url"], /--url must be an https URL/],
      [["--url", TARGET, "--nope"], /nope/],
    ] as [string[], RegExp][]
  ) {
    const r = await run(args, api.env);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.err.length, 1);
    assert.match(r.err[0], pattern);
  }
  const denied = await run(["--url", TARGET], { ...api.env, THINKIFIC_OAUTH_TOKEN: "wrong" });
  assert.equal(denied.code, 1);
  assert.match(denied.err[0], /answered 401 to GET \/webhooks.*THINKIFIC_OAUTH_TOKEN/);
});
