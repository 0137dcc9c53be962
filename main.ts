/**
 * The service: configuration from the environment, the KV database, and the application.
 *
 * `deno serve main.ts` serves it as it is (`export default { fetch }`); `deno task start` runs
 * `start.ts`, which serves it on `PORT`.
 *
 * @module
 */
import { ConfigError, parseConfig } from "./lib/config.ts";
import { createApp } from "./lib/http/app.ts";
import { describeKv, openKv } from "./lib/kv.ts";
import { jsonLogger } from "./lib/log.ts";

function loadConfig() {
  try {
    return parseConfig(Deno.env.toObject());
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      Deno.exit(1);
    }
    throw err;
  }
}

export const config = loadConfig();
const kv = await openKv(config);
export const app = createApp({ kv, config, log: jsonLogger });

jsonLogger({
  msg: "ready",
  kv: describeKv(config),
  logic_topic: config.logicTopic,
  match_window_ms: config.matchWindowMs,
  signed_webhooks: Boolean(config.webhookSecret),
  api_token: Boolean(config.apiToken),
});
if (!config.webhookSecret) {
  jsonLogger({
    level: "warn",
    msg: "THINKIFIC_WEBHOOK_SECRET is not set: unsigned webhooks are accepted (local use only)",
  });
}

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
