/**
 * Bearer-token check for `/api/*`, in constant time: the presented token is verified as an HMAC
 * message against the MAC of the configured token, so timing reveals nothing about either.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";

const encoder = new TextEncoder();

/** Returns a middleware requiring `Authorization: Bearer <token>`; a no-op when `token` is unset. */
export function bearerAuth(token: string | undefined): MiddlewareHandler {
  if (!token) return async (_c, next) => await next();
  const ready = (async () => {
    const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    const expected = await crypto.subtle.sign("HMAC", key, encoder.encode(token));
    return { key, expected };
  })();
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    const { key, expected } = await ready;
    const ok = match !== null &&
      await crypto.subtle.verify("HMAC", key, expected, encoder.encode(match[1]));
    if (!ok) {
      throw new HttpError(401, "missing or invalid bearer token", {}, {
        "WWW-Authenticate": 'Bearer realm="api"',
      });
    }
    await next();
  };
}
