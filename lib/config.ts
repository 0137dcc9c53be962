/**
 * Configuration, read once from the environment through one zod schema.
 *
 * @example
 * ```ts
 * const config = parseConfig(Deno.env.toObject());
 * console.log(config.matchWindowMs); // 500
 * ```
 * @module
 */
import { z } from "zod";
import { decodeStandardSecret } from "./forward/standard_webhooks.ts";
import { FEED_DELAY_MS, MAX_COMMITS_IN_FLIGHT, MAX_PLANS_PER_COMMIT } from "./store/limits.ts";

/** The two Thinkific topics this service pairs. */
export const LESSON_TOPIC = "lesson.completed";
export const PROGRESS_TOPIC = "enrollment.progress";
export const HANDLED_TOPICS = [LESSON_TOPIC, PROGRESS_TOPIC] as const;
export type HandledTopic = typeof HANDLED_TOPICS[number];

/** Typed configuration used everywhere inside the service. */
export interface Config {
  port: number;
  /** The address `deno task start` listens on (`0.0.0.0`: every IPv4 interface). */
  host: string;
  /** `undefined` means: Deploy's attached database on Deno Deploy, `./data/kv.sqlite3` elsewhere. */
  kvPath: string | undefined;
  webhookSecret: string | undefined;
  apiToken: string | undefined;
  matchWindowMs: number;
  logicTopic: HandledTopic;
  pendingStatus: number;
  giveUpAfterAttempts: number;
  /** How long a pending logic-channel delivery is held for its counterpart (0: answer at once). */
  holdMs: number;
  /** A lone companion event is listed as unmatched this long after it was received. */
  unmatchedAfterMs: number;
  /** Commit plans merged into one KV commit at most (1: every request commits alone). */
  commitBatchMax: number;
  /** Group commits in flight at once (1: each waits for the one before). */
  commitsInFlight: number;
  maxBodyBytes: number;
  retentionDays: number;
  /** Where every record is POSTed as a Standard Webhooks message (unset: not forwarded). */
  forwardUrl: string | undefined;
  /** `whsec_…`: signs forwarded messages. */
  forwardSecret: string | undefined;
  /** How old a change-feed entry must be before `/api/feed` serves it. */
  feedDelayMs: number;
  /**
   * Whether forwarded messages go over the forwarder's own connections; `false` when a proxy
   * variable is set (`fetch` follows them) or `OTEL_DENO=true` (Deno's spans cover `fetch`).
   */
  forwardDirect: boolean;
  onDenoDeploy: boolean;
}

/** The proxy variables `fetch` follows: with one set, forwarding goes through `fetch`. */
const proxyVariables = {
  HTTP_PROXY: z.string().optional(),
  HTTPS_PROXY: z.string().optional(),
  http_proxy: z.string().optional(),
  https_proxy: z.string().optional(),
};
const PROXY_VARIABLES = Object.keys(proxyVariables) as (keyof typeof proxyVariables)[];

const int = (name: string, min: number, max: number, fallback: number) =>
  z.string().trim().optional().transform((raw, ctx) => {
    if (raw === undefined || raw === "") return fallback;
    if (!/^\d+$/.test(raw)) {
      ctx.addIssue(`${name} must be a whole number, got "${raw}"`);
      return z.NEVER;
    }
    const value = Number(raw);
    if (value < min || value > max) {
      ctx.addIssue(`${name} must be between ${min} and ${max}, got ${value}`);
      return z.NEVER;
    }
    return value;
  });

const secret = (name: string) =>
  z.string().optional().transform((raw, ctx) => {
    if (raw === undefined || raw === "") return undefined;
    if (raw.trim() !== raw || raw.length < 8) {
      ctx.addIssue(`${name} must be at least 8 characters with no surrounding spaces`);
      return z.NEVER;
    }
    return raw;
  });

/** Host names that mean this machine (plain http is allowed to them). */
const LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"];

/** Environment variables Deno Deploy sets; any one of them means we run there. */
const DEPLOY_MARKERS = ["DENO_DEPLOYMENT_ID", "DENO_DEPLOY", "DENO_DEPLOY_APP_SLUG"] as const;

const envSchema = z.object({
  PORT: int("PORT", 0, 65535, 8000),
  HOST: z.string().trim().optional().transform((raw, ctx) => {
    if (!raw) return "0.0.0.0";
    // An IPv4 or IPv6 address, or a host name: letters, digits, dots, hyphens and colons only.
    if (!/^[A-Za-z0-9.:-]+$/.test(raw)) {
      ctx.addIssue(`HOST must be an IP address or a host name such as 127.0.0.1, got "${raw}"`);
      return z.NEVER;
    }
    return raw;
  }),
  KV_PATH: z.string().trim().optional().transform((raw, ctx) => {
    if (!raw) return undefined;
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1].toLowerCase();
    if (scheme === undefined || scheme === "https") return raw;
    const url = URL.parse(raw);
    if (scheme === "http" && url && LOCAL_HOSTS.includes(url.hostname)) return raw;
    ctx.addIssue(
      `KV_PATH must be a file path, :memory: or an https:// KV Connect URL ` +
        `(http:// only for localhost), got "${raw}"`,
    );
    return z.NEVER;
  }),
  /** Only whether it is set is read here (Deno reads the token itself). */
  DENO_KV_ACCESS_TOKEN: z.string().optional().transform((v) => Boolean(v)),
  THINKIFIC_WEBHOOK_SECRET: secret("THINKIFIC_WEBHOOK_SECRET"),
  API_TOKEN: secret("API_TOKEN"),
  MATCH_WINDOW_MS: int("MATCH_WINDOW_MS", 0, 60_000, 500),
  LOGIC_TOPIC: z.string().trim().optional().transform((raw, ctx) => {
    if (raw === undefined || raw === "") return PROGRESS_TOPIC;
    if (!(HANDLED_TOPICS as readonly string[]).includes(raw)) {
      ctx.addIssue(`LOGIC_TOPIC must be one of ${HANDLED_TOPICS.join(", ")}, got "${raw}"`);
      return z.NEVER;
    }
    return raw as HandledTopic;
  }),
  PENDING_STATUS: int("PENDING_STATUS", 400, 499, 409),
  // The first delivery never pairs inexactly (its exact partner may be in flight), so at least 2.
  GIVE_UP_AFTER_ATTEMPTS: int("GIVE_UP_AFTER_ATTEMPTS", 2, 1000, 10),
  HOLD_MS: int("HOLD_MS", 0, 30_000, 1500),
  UNMATCHED_AFTER_HOURS: int("UNMATCHED_AFTER_HOURS", 0, 87_600, 72),
  COMMIT_BATCH_MAX: int("COMMIT_BATCH_MAX", 1, MAX_PLANS_PER_COMMIT, MAX_PLANS_PER_COMMIT),
  COMMITS_IN_FLIGHT: int("COMMITS_IN_FLIGHT", 1, 64, MAX_COMMITS_IN_FLIGHT),
  MAX_BODY_BYTES: int("MAX_BODY_BYTES", 1024, 16 * 1024 * 1024, 262_144),
  RETENTION_DAYS: int("RETENTION_DAYS", 1, 3650, 30),
  FEED_DELAY_MS: int("FEED_DELAY_MS", 100, 600_000, FEED_DELAY_MS),
  FORWARD_URL: z.string().trim().optional().transform((raw, ctx) => {
    if (!raw) return undefined;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      ctx.addIssue(`FORWARD_URL must be a URL, got "${raw}"`);
      return z.NEVER;
    }
    const local = LOCAL_HOSTS.includes(url.hostname);
    if (url.protocol !== "https:" && !(url.protocol === "http:" && local)) {
      ctx.addIssue("FORWARD_URL must be https:// (http:// only for localhost)");
      return z.NEVER;
    }
    if (url.username || url.password) {
      // `fetch` refuses such a URL, and the forwarder's own connections would drop them.
      ctx.addIssue("FORWARD_URL must not carry a user name or password");
      return z.NEVER;
    }
    return url.href;
  }),
  FORWARD_SECRET: z.string().trim().optional().transform((raw, ctx) => {
    if (!raw) return undefined;
    if (!decodeStandardSecret(raw)) {
      ctx.addIssue(
        "FORWARD_SECRET must be a Standard Webhooks secret: whsec_ + base64 of 16-128 bytes",
      );
      return z.NEVER;
    }
    return raw;
  }),
  ...proxyVariables,
  OTEL_DENO: z.string().optional(),
  DENO_DEPLOYMENT_ID: z.string().optional(),
  DENO_DEPLOY: z.string().optional(),
  DENO_DEPLOY_APP_SLUG: z.string().optional(),
});

/** A configuration problem; its message, one line, names the variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Parses environment variables into a {@linkcode Config}.
 *
 * @throws {ConfigError} naming every invalid variable, in one line.
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? "environment");
      return issue.message.startsWith(name) ? issue.message : `${name}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${lines.join("; ")}`);
  }
  const e = parsed.data;
  const onDenoDeploy = DEPLOY_MARKERS.some((name) => Boolean(e[name]));
  if (onDenoDeploy) {
    const missing = [
      !e.THINKIFIC_WEBHOOK_SECRET &&
      "THINKIFIC_WEBHOOK_SECRET must be set on Deno Deploy " +
        "(unsigned webhooks are only accepted on a local machine)",
      !e.API_TOKEN &&
      "API_TOKEN must be set on Deno Deploy " +
        "(the records API and the dashboard show learners' emails; they are open only locally)",
    ].filter(Boolean);
    if (missing.length > 0) {
      throw new ConfigError(`invalid configuration: ${missing.join("; ")}`);
    }
  }
  if (e.UNMATCHED_AFTER_HOURS >= e.RETENTION_DAYS * 24) {
    throw new ConfigError(
      "invalid configuration: UNMATCHED_AFTER_HOURS must be shorter than RETENTION_DAYS " +
        `(${e.RETENTION_DAYS * 24} hours): a lone event expires before it would be listed`,
    );
  }
  if (Boolean(e.FORWARD_URL) !== Boolean(e.FORWARD_SECRET)) {
    throw new ConfigError(
      "invalid configuration: FORWARD_URL and FORWARD_SECRET must be set together",
    );
  }
  if (e.KV_PATH && /^https?:\/\//i.test(e.KV_PATH) && !e.DENO_KV_ACCESS_TOKEN) {
    throw new ConfigError(
      "invalid configuration: KV_PATH is a KV Connect URL, so DENO_KV_ACCESS_TOKEN must be set too",
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    kvPath: e.KV_PATH,
    webhookSecret: e.THINKIFIC_WEBHOOK_SECRET,
    apiToken: e.API_TOKEN,
    matchWindowMs: e.MATCH_WINDOW_MS,
    logicTopic: e.LOGIC_TOPIC,
    pendingStatus: e.PENDING_STATUS,
    giveUpAfterAttempts: e.GIVE_UP_AFTER_ATTEMPTS,
    holdMs: e.HOLD_MS,
    unmatchedAfterMs: e.UNMATCHED_AFTER_HOURS * 3_600_000,
    commitBatchMax: e.COMMIT_BATCH_MAX,
    commitsInFlight: e.COMMITS_IN_FLIGHT,
    maxBodyBytes: e.MAX_BODY_BYTES,
    retentionDays: e.RETENTION_DAYS,
    forwardUrl: e.FORWARD_URL,
    forwardSecret: e.FORWARD_SECRET,
    feedDelayMs: e.FEED_DELAY_MS,
    forwardDirect: e.OTEL_DENO !== "true" && PROXY_VARIABLES.every((name) => !e[name]),
    onDenoDeploy,
  };
}
