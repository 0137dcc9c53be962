/**
 * `scripts/register.ts` against a local fake of Thinkific's webhooks API (paginated two per page).
 */
import assert from "node:assert/strict";
import { main } from "../scripts/register.ts";

const TOKEN = "test-api-token";
const TARGET = "https://collator.example.com/webhooks/thinkific";
const OTHER = "https://other.example.com/hooks";

interface Hook {
  id: number;
  topic: string;
  target_url: string;
  created_at: string;
}

interface Call {
  method: string;
  path: string;
  auth: string | null;
  body: unknown;
}

function fakeThinkific(initial: Omit<Hook, "id" | "created_at">[], opts: { bare?: boolean } = {}) {
  let nextId = 100;
  const hooks: Hook[] = initial.map((h) => ({
    ...h,
    id: nextId++,
    created_at: "2026-11-01T10:00:00.000Z",
  }));
  const calls: Call[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const text = await req.text();
    calls.push({
      method: req.method,
      path: url.pathname + url.search,
      auth: req.headers.get("authorization"),
      body: text ? JSON.parse(text) : null,
    });
    if (req.headers.get("authorization") !== `Bearer ${TOKEN}`) {
      return Response.json({ error: "Unauthorized" }, { status: 401 });
    }
    if (url.pathname === "/api/v2/webhooks" && req.method === "GET") {
      if (opts.bare) return Response.json(hooks);
      const page = Number(url.searchParams.get("page") ?? "1");
      const perPage = 2;
      const totalPages = Math.max(1, Math.ceil(hooks.length / perPage));
      return Response.json({
        items: hooks.slice((page - 1) * perPage, page * perPage),
        meta: {
          pagination: {
            current_page: page,
            next_page: page < totalPages ? page + 1 : null,
            prev_page: page > 1 ? page - 1 : null,
            total_pages: totalPages,
            total_items: hooks.length,
          },
        },
      });
    }
    if (url.pathname === "/api/v2/webhooks" && req.method === "POST") {
      const body = JSON.parse(text) as { topic: string; target_url: string };
      const hook = { id: nextId++, ...body, created_at: "2026-11-02T10:00:00.000Z" };
      hooks.push(hook);
      return Response.json(hook, { status: 201 });
    }
    const m = /^\/api\/v2\/webhooks\/(\d+)$/.exec(url.pathname);
    if (m && req.method === "DELETE") {
      const i = hooks.findIndex((h) => h.id === Number(m[1]));
      if (i < 0) return Response.json({ error: "Not found" }, { status: 404 });
      hooks.splice(i, 1);
      return new Response(null, { status: 204 });
    }
    return Response.json({ error: "Not found" }, { status: 404 });
  });
  const env = {
    THINKIFIC_API_TOKEN: TOKEN,
    THINKIFIC_API_URL: `http://127.0.0.1:${server.addr.port}/api/v2`,
  };
  return { server, hooks, calls, env };
}

async function run(args: string[], env: Record<string, string | undefined>) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, {
    env,
    stdout: (l) => out.push(l),
    stderr: (l) => err.push(l),
  });
  return { code, out, err };
}

const unrelated = [
  { topic: "order.created", target_url: OTHER },
  { topic: "lesson.completed", target_url: OTHER },
  { topic: "enrollment.progress", target_url: OTHER },
];

Deno.test("register creates both topics for the target URL, reading every page first", async () => {
  const api = fakeThinkific(unrelated);
  try {
    const r = await run(["--url", "https://collator.example.com"], api.env);
    assert.equal(r.code, 0, r.err.join("\n"));
    const gets = api.calls.filter((c) => c.method === "GET");
    assert.deepEqual(gets.map((c) => c.path), [
      "/api/v2/webhooks?page=1&limit=100",
      "/api/v2/webhooks?page=2&limit=100",
    ]);
    const posts = api.calls.filter((c) => c.method === "POST");
    assert.deepEqual(posts.map((c) => c.body), [
      { topic: "lesson.completed", target_url: TARGET },
      { topic: "enrollment.progress", target_url: TARGET },
    ]);
    assert.ok(api.calls.every((c) => c.auth === `Bearer ${TOKEN}`));
    assert.equal(api.hooks.filter((h) => h.target_url === TARGET).length, 2);
    assert.match(r.out.join("\n"), /registered lesson\.completed → .* \(id \d+\)/);
  } finally {
    await api.server.shutdown();
  }
});

Deno.test("register skips topics already registered for that URL (found on a later page)", async () => {
  const api = fakeThinkific([...unrelated, { topic: "enrollment.progress", target_url: TARGET }]);
  try {
    const r = await run(["--url", TARGET], api.env);
    assert.equal(r.code, 0, r.err.join("\n"));
    const posts = api.calls.filter((c) => c.method === "POST");
    assert.deepEqual(posts.map((c) => c.body), [{ topic: "lesson.completed", target_url: TARGET }]);
    assert.match(r.out.join("\n"), /already registered: enrollment\.progress .*\(id 103\)/);

    const again = await run(["--url", TARGET], api.env);
    assert.equal(again.code, 0);
    assert.equal(api.calls.filter((c) => c.method === "POST").length, 1);
    assert.equal(again.out.filter((l) => l.startsWith("already registered")).length, 2);
  } finally {
    await api.server.shutdown();
  }
});

Deno.test("register --topics registers only the named topics", async () => {
  const api = fakeThinkific([]);
  try {
    const r = await run(["--url", TARGET, "--topics", "lesson.completed"], api.env);
    assert.equal(r.code, 0, r.err.join("\n"));
    assert.deepEqual(api.hooks.map((h) => h.topic), ["lesson.completed"]);
  } finally {
    await api.server.shutdown();
  }
});

Deno.test("register --list prints every webhook, or those of --url; bare arrays are accepted", async () => {
  const api = fakeThinkific([...unrelated, { topic: "lesson.completed", target_url: TARGET }]);
  try {
    const all = await run(["--list"], api.env);
    assert.equal(all.code, 0, all.err.join("\n"));
    assert.match(all.out[0], /^4 webhook\(s\) registered:/);
    for (const id of [100, 101, 102, 103]) assert.ok(all.out.some((l) => l.includes(` ${id} `)));

    const mine = await run(["--list", "--url", TARGET], api.env);
    assert.match(mine.out[0], /^1 webhook\(s\) registered for /);
    assert.equal(mine.out.length, 2);
    assert.match(mine.out[1], /103\s+lesson\.completed\s+https:\/\/collator/);
    assert.equal(api.calls.filter((c) => c.method !== "GET").length, 0);
  } finally {
    await api.server.shutdown();
  }
  const bare = fakeThinkific(unrelated, { bare: true });
  try {
    const r = await run(["--list"], bare.env);
    assert.equal(r.code, 0, r.err.join("\n"));
    assert.match(r.out[0], /^3 webhook\(s\) registered:/);
  } finally {
    await bare.server.shutdown();
  }
});

Deno.test("register --remove deletes only the webhooks for that URL", async () => {
  const api = fakeThinkific([
    ...unrelated,
    { topic: "lesson.completed", target_url: TARGET },
    { topic: "enrollment.progress", target_url: TARGET },
  ]);
  try {
    const r = await run(["--remove", "--url", TARGET], api.env);
    assert.equal(r.code, 0, r.err.join("\n"));
    const deletes = api.calls.filter((c) => c.method === "DELETE").map((c) => c.path);
    assert.deepEqual(deletes, ["/api/v2/webhooks/103", "/api/v2/webhooks/104"]);
    assert.deepEqual(api.hooks.map((h) => h.target_url), [OTHER, OTHER, OTHER]);
    assert.equal(r.out.filter((l) => l.startsWith("removed")).length, 2);

    const none = await run(["--remove", "--url", TARGET], api.env);
    assert.equal(none.code, 0);
    assert.match(none.out[0], /no webhooks registered for/);
  } finally {
    await api.server.shutdown();
  }
});

Deno.test("register refuses to run without THINKIFIC_API_TOKEN, naming it", async () => {
  const api = fakeThinkific([]);
  try {
    const r = await run(["--url", TARGET], { THINKIFIC_API_URL: api.env.THINKIFIC_API_URL });
    assert.equal(r.code, 1);
    assert.equal(r.err.length, 1);
    assert.match(r.err[0], /THINKIFIC_API_TOKEN is not set/);
    assert.equal(api.calls.length, 0);
  } finally {
    await api.server.shutdown();
  }
});

Deno.test("register refuses a non-https target URL, except http://localhost", async () => {
  const api = fakeThinkific([]);
  try {
    const r = await run(["--url", "http://collator.example.com/webhooks/thinkific"], api.env);
    assert.equal(r.code, 1);
    assert.match(r.err[0], /--url must be an https URL/);
    assert.equal(api.calls.length, 0);

    const local = await run(["--url", "http://localhost:8000"], api.env);
    assert.equal(local.code, 0, local.err.join("\n"));
    assert.ok(api.hooks.every((h) => h.target_url === "http://localhost:8000/webhooks/thinkific"));
  } finally {
    await api.server.shutdown();
  }
});

Deno.test("register reports usage mistakes and API errors in one line", async () => {
  const api = fakeThinkific([]);
  try {
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
    const denied = await run(["--url", TARGET], { ...api.env, THINKIFIC_API_TOKEN: "wrong" });
    assert.equal(denied.code, 1);
    assert.match(denied.err[0], /answered 401 to GET \/webhooks.*THINKIFIC_API_TOKEN/);
  } finally {
    await api.server.shutdown();
  }
});
