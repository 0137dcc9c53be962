/**
 * `deno task register --url https://… [--topics lesson.completed,enrollment.progress] [--list]
 * [--remove]`: registers this service's webhooks with Thinkific's REST API.
 *
 * - default: registers each topic (both handled topics unless `--topics`) for the target URL,
 *   skipping topics already registered for it;
 * - `--list`: prints the registered webhooks (only those for `--url` when given);
 * - `--remove`: deletes the webhooks for `--url` (only the `--topics` ones when given).
 *
 * Environment: `THINKIFIC_API_TOKEN` (required), `THINKIFIC_API_URL` (default
 * `https://api.thinkific.com/api/v2`). A target URL without a path gets `/webhooks/thinkific`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { HANDLED_TOPICS } from "../lib/config.ts";
import { networkErrorMessage, WEBHOOK_PATH, webhookUrl } from "./_deliver.ts";

const DEFAULT_API_URL = "https://api.thinkific.com/api/v2";
const MAX_PAGES = 100;

const USAGE = `usage: deno task register --url https://… [--topics a.b,c.d] [--list] [--remove]
  --url      where Thinkific should post (https; http://localhost for testing; no path: ${WEBHOOK_PATH})
  --topics   comma-separated topics (default ${HANDLED_TOPICS.join(",")})
  --list     print the registered webhooks (those for --url when given)
  --remove   delete the webhooks for --url
environment: THINKIFIC_API_TOKEN (required), THINKIFIC_API_URL (default ${DEFAULT_API_URL})`;

/** What `main` needs from the outside world; tests pass their own. */
export interface RegisterDeps {
  fetch?: typeof fetch;
  env?: Record<string, string | undefined>;
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
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

const envSchema = z.object({
  THINKIFIC_API_TOKEN: z.string({
    error: "THINKIFIC_API_TOKEN is not set: export a Thinkific API access token",
  }).trim().min(1, "THINKIFIC_API_TOKEN is empty: export a Thinkific API access token"),
  THINKIFIC_API_URL: z.string().trim().optional().transform((v) => v || DEFAULT_API_URL)
    .pipe(secureUrl("THINKIFIC_API_URL")),
});

const webhookSchema = z.looseObject({
  id: z.union([z.number().int(), z.string().min(1)]),
  topic: z.string(),
  target_url: z.string(),
});
type Webhook = z.output<typeof webhookSchema>;

const listSchema = z.union([
  z.array(webhookSchema),
  z.looseObject({
    items: z.array(webhookSchema),
    meta: z.looseObject({
      pagination: z.looseObject({ next_page: z.number().int().nullish() }).nullish(),
    }).nullish(),
  }),
]);

function firstIssue(error: z.ZodError): string {
  return error.issues[0].message;
}

/** A thin client of the webhooks endpoints. */
class WebhooksApi {
  constructor(
    private base: string,
    private token: string,
    private fetchFn: typeof fetch,
  ) {}

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = `${this.base.replace(/\/+$/, "")}${path}`;
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.token}`,
      Accept: "application/json",
    };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new RegisterError(`cannot reach ${this.base}: ${networkErrorMessage(err)}`);
    }
    const text = await res.text();
    if (!res.ok) {
      const hint = res.status === 401 ? " (is THINKIFIC_API_TOKEN valid?)" : "";
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

  /** Every registered webhook, following pagination. */
  async list(): Promise<Webhook[]> {
    const all: Webhook[] = [];
    let page: number | null = 1;
    for (let n = 0; page !== null && n < MAX_PAGES; n++) {
      const raw = await this.request("GET", `/webhooks?page=${page}&limit=100`);
      const parsed = listSchema.safeParse(raw);
      if (!parsed.success) {
        throw new RegisterError(
          `unexpected answer to GET /webhooks: ${parsed.error.issues[0].path.join(".")} ` +
            firstIssue(parsed.error),
        );
      }
      if (Array.isArray(parsed.data)) return [...all, ...parsed.data];
      all.push(...parsed.data.items);
      const next: number | null = parsed.data.meta?.pagination?.next_page ?? null;
      page = next !== null && next > page ? next : null;
    }
    return all;
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

    const api = new WebhooksApi(
      env.data.THINKIFIC_API_URL.href,
      env.data.THINKIFIC_API_TOKEN,
      deps.fetch ?? fetch,
    );
    const { url, list, remove } = cli.data;
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
