/**
 * `deno task register --url https://… [--topics lesson.completed,enrollment.progress] [--list]
 * [--remove]`: registers this service's webhooks with Thinkific's REST API.
 *
 * - default: registers each topic (both handled topics unless `--topics`) for the target URL,
 *   skipping topics already registered for it;
 * - `--list`: prints the registered webhooks (only those for `--url` when given);
 * - `--remove`: deletes the webhooks for `--url` (only the `--topics` ones when given).
 *
 * It calls only what Thinkific documents: the Webhooks API v2
 * (`https://api.thinkific.com/api/v2/webhooks`), which takes an OAuth app's access token
 * (`THINKIFIC_OAUTH_TOKEN`, sent as `Authorization: Bearer`; paging by `next`/`limit`,
 * `meta.page.has_next` + an opaque `next_page`). Thinkific documents no way to manage webhooks with
 * a school's API key (the API key is for the Admin API): without `THINKIFIC_OAUTH_TOKEN` the script
 * calls nothing, prints the steps to do the same in Thinkific's admin
 * (https://developers.thinkific.com/api/using-webhooks/: Settings → Code & analytics → Webhooks),
 * and exits 2 (nothing was done; 1 is an error). `THINKIFIC_SUBDOMAIN`, when set, names the site in
 * those steps.
 *
 * `THINKIFIC_API_URL` overrides the base URL. Thinkific allows 120 requests a minute per site and
 * answers 429 with `RateLimit-Reset` beyond that: the script says so on stderr, waits until the
 * reset (at most 60 s, at most 3 times per request) and retries. A target URL without a path gets
 * `/webhooks/thinkific`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { HANDLED_TOPICS } from "../lib/config.ts";
import { networkErrorMessage, WEBHOOK_PATH, webhookUrl } from "./_deliver.ts";

/** Base URL of the Webhooks API v2, which takes an OAuth access token. */
export const OAUTH_BASE_URL = "https://api.thinkific.com/api/v2";
/** Items asked for per page (the v2 default). */
const PAGE_SIZE = 25;
/** A listing longer than this many pages is refused rather than read in part. */
const MAX_PAGES = 1000;
/** Longest wait for a rate limit to reset, and how many waits one request may take. */
export const MAX_RATE_LIMIT_WAIT_MS = 60_000;
const MAX_RATE_LIMIT_WAITS = 3;

const USAGE = `usage: deno task register --url https://… [--topics a.b,c.d] [--list] [--remove]
  --url      where Thinkific should post (https; http://localhost for testing; no path: ${WEBHOOK_PATH})
  --topics   comma-separated topics (default ${HANDLED_TOPICS.join(",")})
  --list     print the registered webhooks (those for --url when given)
  --remove   delete the webhooks for --url
environment:
  THINKIFIC_OAUTH_TOKEN   an OAuth app's access token (Thinkific's Webhooks API v2 takes no API key);
                          without it, the steps to do the same in Thinkific's admin are printed (exit 2)
  THINKIFIC_SUBDOMAIN     your school's subdomain, named in those steps
  THINKIFIC_API_URL       overrides the API's base URL`;

/** What `main` needs from the outside world; tests pass their own. */
export interface RegisterDeps {
  fetch?: typeof fetch;
  env?: Record<string, string | undefined>;
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
  /** Waits `ms` (rate limits); tests record the waits instead. */
  sleep?: (ms: number) => Promise<void>;
  /** The clock, in epoch milliseconds (to read an absolute `RateLimit-Reset`). */
  now?: () => number;
}

class RegisterError extends Error {
  override name = "RegisterError";
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** An https URL, or an http one on this machine. */
const secureUrl = (what: string, extra = "") =>
  z.string().trim().transform((raw, ctx) => {
    let url: URL | null = null;
    try {
      url = new URL(raw);
    } catch {
      // reported below
    }
    if (
      url &&
      (url.protocol === "https:" || (url.protocol === "http:" && LOCAL_HOSTS.has(url.hostname)))
    ) {
      return url;
    }
    ctx.addIssue({
      code: "custom",
      message: `${what} must be an https URL${extra} (http://localhost is allowed for testing), ` +
        `got "${raw}"`,
    });
    return z.NEVER;
  });

const topic = z.string().regex(/^[a-z_]+\.[a-z_]+$/, "must look like resource.action");

const argsSchema = z.object({
  url: secureUrl("--url", ": Thinkific only delivers webhooks over HTTPS")
    .transform((u) => webhookUrl(u.href)).optional(),
  topics: z.string().optional().transform((raw, ctx) => {
    if (raw === undefined) return undefined;
    const list = [...new Set(raw.split(",").map((t) => t.trim()).filter(Boolean))];
    if (list.length === 0) {
      ctx.addIssue({ code: "custom", message: "--topics must name at least one topic" });
      return z.NEVER;
    }
    for (const t of list) {
      if (!topic.safeParse(t).success) {
        ctx.addIssue({
          code: "custom",
          message: `--topics: "${t}" is not a topic (resource.action)`,
        });
        return z.NEVER;
      }
    }
    return list;
  }),
  list: z.boolean(),
  remove: z.boolean(),
  positionals: z.array(z.string()).max(0, "unexpected argument (see --help)"),
}).superRefine((a, ctx) => {
  if (a.list && a.remove) {
    ctx.addIssue({ code: "custom", message: "--list and --remove cannot be combined" });
  } else if (!a.list && a.url === undefined) {
    ctx.addIssue({ code: "custom", message: "--url is required (see --help)" });
  }
});

const optionalText = z.string().trim().optional().transform((v) => v || undefined);

/** Where Thinkific documents the admin steps and the Webhooks API's OAuth-only access. */
export const ADMIN_STEPS_URL = "https://developers.thinkific.com/api/using-webhooks/";

const envSchema = z.object({
  THINKIFIC_API_KEY: optionalText,
  THINKIFIC_SUBDOMAIN: optionalText.pipe(
    z.string().regex(/^[a-z0-9][a-z0-9-]*$/i, {
      error: "THINKIFIC_SUBDOMAIN must be the subdomain alone (e.g. my-school, not a URL)",
    }).optional(),
  ),
  THINKIFIC_OAUTH_TOKEN: optionalText,
  THINKIFIC_API_TOKEN: optionalText,
  THINKIFIC_API_URL: optionalText.pipe(secureUrl("THINKIFIC_API_URL").optional()),
}).transform((e, ctx) => {
  if (e.THINKIFIC_API_TOKEN) {
    ctx.addIssue({
      code: "custom",
      message: "THINKIFIC_API_TOKEN is no longer read: export THINKIFIC_OAUTH_TOKEN " +
        "(an OAuth app's access token), or run without it for the steps in Thinkific's admin",
    });
    return z.NEVER;
  }
  return {
    token: e.THINKIFIC_OAUTH_TOKEN,
    apiKey: e.THINKIFIC_API_KEY !== undefined,
    subdomain: e.THINKIFIC_SUBDOMAIN,
    base: e.THINKIFIC_API_URL?.href ?? OAUTH_BASE_URL,
  };
});

/**
 * What to do in Thinkific's admin instead, for `--url`/`--topics` (register), `--list` or
 * `--remove`: printed when there is no OAuth token.
 */
function adminSteps(
  a: { url?: string; topics: readonly string[]; list: boolean; remove: boolean },
  subdomain: string | undefined,
): string[] {
  const site = subdomain ? `https://${subdomain}.thinkific.com` : "your Thinkific site";
  const open = `In ${site}, signed in as the site owner, open Settings → Code & analytics → ` +
    "Webhooks (Growth plan and above).";
  if (a.list) {
    return [
      open,
      `Every webhook is listed there with its topic and target URL${
        a.url ? `: look for ${a.url}` : ""
      }.`,
    ];
  }
  if (a.remove) {
    return [
      `1. ${open}`,
      ...a.topics.map((t, i) => `${i + 2}. Delete the ${t} webhook whose target URL is ${a.url}.`),
    ];
  }
  return [
    `1. ${open}`,
    ...a.topics.map((t, i) =>
      `${i + 2}. Click New webhook; Topic: ${t}; Target URL: ${a.url}; save ` +
      "(skip it if it is already listed)."
    ),
    `Thinkific signs these webhooks with your API key: THINKIFIC_WEBHOOK_SECRET must be that key.`,
    `(${ADMIN_STEPS_URL})`,
  ];
}

const webhookSchema = z.looseObject({
  id: z.union([z.number().int(), z.string().min(1)]),
  topic: z.string(),
  target_url: z.string(),
});
type Webhook = z.output<typeof webhookSchema>;

/** Webhooks API v2: `{items, meta: {page: {has_next, next_page, …}}}`. */
const v2PageSchema = z.looseObject({
  items: z.array(webhookSchema),
  meta: z.looseObject({
    page: z.looseObject({
      has_next: z.boolean().nullish(),
      next_page: z.union([z.string(), z.number()]).nullish(),
    }),
  }),
});

function firstIssue(error: z.ZodError): string {
  return error.issues[0].message;
}

/**
 * How long to wait after a 429, from `RateLimit-Reset`. Thinkific's pages call its value both
 * "epoch time" and "the time until the reset", so: a value of 10⁹ or more is an epoch time (in
 * seconds, or in milliseconds from 10¹²), a value up to 60 is seconds to wait, a larger one
 * milliseconds. The result is kept between 1 s and {@linkcode MAX_RATE_LIMIT_WAIT_MS}; a missing or
 * unreadable header waits the whole minute.
 */
export function rateLimitWaitMs(header: string | null, now: number): number {
  const value = header === null ? NaN : Number(header.trim());
  let ms: number;
  if (header === null || header.trim() === "" || !Number.isFinite(value) || value < 0) {
    ms = MAX_RATE_LIMIT_WAIT_MS;
  } else if (value >= 1e12) ms = value - now;
  else if (value >= 1e9) ms = value * 1000 - now;
  else if (value <= 60) ms = value * 1000;
  else ms = value;
  return Math.min(MAX_RATE_LIMIT_WAIT_MS, Math.max(1000, Math.ceil(ms)));
}

/** A thin client of the webhooks endpoints, in the dialect of its authentication. */
class WebhooksApi {
  constructor(
    private base: string,
    private token: string,
    private deps: {
      fetch: typeof fetch;
      sleep: (ms: number) => Promise<void>;
      now: () => number;
      warn: (line: string) => void;
    },
  ) {}

  private headers(): Record<string, string> {
    return { Authorization: `Bearer ${this.token}` };
  }

  private async send(method: string, url: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers(), Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await this.deps.fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new RegisterError(`cannot reach ${this.base}: ${networkErrorMessage(err)}`);
    }
  }

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = `${this.base.replace(/\/+$/, "")}${path}`;
    let res = await this.send(method, url, body);
    for (let waits = 0; res.status === 429; waits++) {
      await res.body?.cancel();
      if (waits === MAX_RATE_LIMIT_WAITS) {
        throw new RegisterError(
          `Thinkific API still answers 429 (rate limited) to ${method} ${path} after ` +
            `${MAX_RATE_LIMIT_WAITS} waits: try again in a few minutes`,
        );
      }
      const ms = rateLimitWaitMs(res.headers.get("ratelimit-reset"), this.deps.now());
      this.deps.warn(
        `register: rate limited by Thinkific (429 to ${method} ${path}): waiting ` +
          `${Math.ceil(ms / 1000)} s for RateLimit-Reset, then retrying`,
      );
      await this.deps.sleep(ms);
      res = await this.send(method, url, body);
    }
    const text = await res.text();
    if (!res.ok) {
      const hint = res.status === 401 ? " (is THINKIFIC_OAUTH_TOKEN valid?)" : "";
      throw new RegisterError(
        `Thinkific API answered ${res.status} to ${method} ${path}${hint}: ` +
          text.replace(/\s+/g, " ").slice(0, 200),
      );
    }
    if (text === "") return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new RegisterError(`Thinkific API answered ${method} ${path} with something not JSON`);
    }
  }

  private parsePage<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      throw new RegisterError(
        `unexpected answer to GET /webhooks: ${parsed.error.issues[0].path.join(".")} ` +
          firstIssue(parsed.error),
      );
    }
    return parsed.data;
  }

  /** Every registered webhook, following pagination to the end (or failing: never a part). */
  /** `?limit=&next=<next_page>` while `has_next`. */
  async list(): Promise<Webhook[]> {
    const all: Webhook[] = [];
    const seen = new Set<string>();
    let next: string | null = null;
    for (let n = 0; n < MAX_PAGES; n++) {
      const query: string = `?limit=${PAGE_SIZE}` +
        (next === null ? "" : `&next=${encodeURIComponent(next)}`);
      const page = this.parsePage(v2PageSchema, await this.request("GET", `/webhooks${query}`));
      all.push(...page.items);
      const { has_next, next_page } = page.meta.page;
      if (!has_next) return all;
      next = next_page === null || next_page === undefined ? "" : String(next_page);
      if (next === "" || seen.has(next)) {
        throw new RegisterError(
          "unexpected answer to GET /webhooks: has_next is true but next_page is " +
            (next === "" ? "empty" : `"${next}" again`),
        );
      }
      seen.add(next);
    }
    throw new RegisterError(`GET /webhooks has more than ${MAX_PAGES} pages`);
  }

  async create(topic: string, targetUrl: string): Promise<Webhook | null> {
    const raw = await this.request("POST", "/webhooks", { topic, target_url: targetUrl });
    const parsed = webhookSchema.safeParse(raw);
    return parsed.success ? parsed.data : null;
  }

  async remove(id: string | number): Promise<void> {
    await this.request("DELETE", `/webhooks/${encodeURIComponent(String(id))}`);
  }
}

const sameUrl = (a: string, b: string) => {
  const norm = (s: string) => {
    try {
      return new URL(s).href.replace(/\/+$/, "");
    } catch {
      return s;
    }
  };
  return norm(a) === norm(b);
};

const describe = (w: Webhook) => {
  const created = typeof w.created_at === "string" ? `  (created ${w.created_at})` : "";
  return `  ${String(w.id).padEnd(10)} ${w.topic.padEnd(22)} ${w.target_url}${created}`;
};

/** Runs the command; returns the exit code. */
export async function main(args: string[], deps: RegisterDeps = {}): Promise<number> {
  const out = deps.stdout ?? ((line: string) => console.log(line));
  const err = deps.stderr ?? ((line: string) => console.error(line));
  try {
    let values;
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        strict: true,
        options: {
          url: { type: "string" },
          topics: { type: "string" },
          list: { type: "boolean", default: false },
          remove: { type: "boolean", default: false },
          help: { type: "boolean", short: "h", default: false },
        },
      }));
    } catch (e) {
      const message = (e as Error).message.replace(/\. To specify[\s\S]*$/, "").split("\n")[0];
      throw new RegisterError(`${message} (see --help)`);
    }
    if (values.help) {
      out(USAGE);
      return 0;
    }
    const cli = argsSchema.safeParse({
      url: values.url,
      topics: values.topics,
      list: values.list,
      remove: values.remove,
      positionals,
    });
    if (!cli.success) throw new RegisterError(firstIssue(cli.error));
    const env = envSchema.safeParse(deps.env ?? Deno.env.toObject());
    if (!env.success) throw new RegisterError(firstIssue(env.error));

    const { url, list, remove } = cli.data;
    if (env.data.token === undefined) {
      err(
        "register: Thinkific documents no API-key access to webhooks (its Webhooks API takes an " +
          "OAuth app's access token, THINKIFIC_OAUTH_TOKEN; the API key is for the Admin API)" +
          `${env.data.apiKey ? ", so THINKIFIC_API_KEY is not used" : ""}. Nothing was changed; ` +
          "do it in Thinkific's admin:",
      );
      const topics = cli.data.topics ?? HANDLED_TOPICS;
      for (const line of adminSteps({ url, topics, list, remove }, env.data.subdomain)) out(line);
      return 2;
    }
    const api = new WebhooksApi(env.data.base, env.data.token, {
      fetch: deps.fetch ?? fetch,
      sleep: deps.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
      now: deps.now ?? Date.now,
      warn: err,
    });
    const existing = await api.list();

    if (list) {
      const shown = url ? existing.filter((w) => sameUrl(w.target_url, url)) : existing;
      out(`${shown.length} webhook(s) registered${url ? ` for ${url}` : ""}:`);
      for (const w of shown) out(describe(w));
      return 0;
    }

    const target = url!;
    if (remove) {
      const doomed = existing.filter((w) =>
        sameUrl(w.target_url, target) && (!cli.data.topics || cli.data.topics.includes(w.topic))
      );
      if (doomed.length === 0) out(`no webhooks registered for ${target}`);
      for (const w of doomed) {
        await api.remove(w.id);
        out(`removed ${w.topic} → ${w.target_url} (id ${w.id})`);
      }
      return 0;
    }

    for (const t of cli.data.topics ?? HANDLED_TOPICS) {
      const found = existing.find((w) => w.topic === t && sameUrl(w.target_url, target));
      if (found) {
        out(`already registered: ${t} → ${target} (id ${found.id})`);
        continue;
      }
      const created = await api.create(t, target);
      out(`registered ${t} → ${target}${created ? ` (id ${created.id})` : ""}`);
    }
    return 0;
  } catch (e) {
    if (e instanceof RegisterError) {
      err(`register: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
