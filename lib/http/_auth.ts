/**
 * Token checks for `/api/*` (Bearer) and the dashboard pages (HTTP Basic, the token as password),
 * in constant time: the presented token is verified as an HMAC message against the MAC of the
 * configured token, so timing reveals nothing about either.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";

const encoder = new TextEncoder();

/** Returns a constant-time check of a presented token against `token`. */
function tokenMatcher(token: string): (candidate: string) => Promise<boolean> {
  const ready = (async () => {
    const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    const expected = await crypto.subtle.sign("HMAC", key, encoder.encode(token));
    return { key, expected };
  })();
  return async (candidate) => {
    const { key, expected } = await ready;
    return await crypto.subtle.verify("HMAC", key, expected, encoder.encode(candidate));
  };
}

/** Returns a middleware requiring `Authorization: Bearer <token>`; a no-op when `token` is unset. */
export function bearerAuth(token: string | undefined): MiddlewareHandler {
  if (!token) return async (_c, next) => await next();
  const matches = tokenMatcher(token);
  return async (c, next) => {
    const match = /^Bearer[ ]+(\S+)$/i.exec(c.req.header("authorization") ?? "");
    if (!match || !(await matches(match[1]))) {
      throw new HttpError(401, "missing or invalid bearer token", {}, {
        "WWW-Authenticate": 'Bearer realm="api"',
      });
    }
    await next();
  };
}

function basicPassword(header: string): string | null {
  const match = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header);
  if (!match) return null;
  try {
    const decoded = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(match[1]), (ch) => ch.charCodeAt(0)),
    );
    const colon = decoded.indexOf(":");
    return colon === -1 ? null : decoded.slice(colon + 1);
  } catch {
    return null;
  }
}

/**
 * Returns a middleware requiring HTTP Basic auth whose password is `token` (any user name), so a
 * browser can open the pages; a no-op when `token` is unset.
 */
export function basicAuth(token: string | undefined): MiddlewareHandler {
  if (!token) return async (_c, next) => await next();
  const matches = tokenMatcher(token);
  return async (c, next) => {
    const password = basicPassword(c.req.header("authorization") ?? "");
    if (password === null || !(await matches(password))) {
      return c.text("Sign in with any user name and the API token as password.", 401, {
        "WWW-Authenticate": 'Basic realm="lesson progress", charset="UTF-8"',
      });
    }
    await next();
  };
}
