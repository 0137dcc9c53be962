/**
 * API_TOKEN at its edges (lib/http/_auth.ts): without a token the dashboard serves its pages as
 * they are; a Basic password must be valid UTF-8 (two different byte strings never both sign in);
 * and a missing or unreadable password is refused whatever the token is spelled like.
 */
import { Hono } from "hono";
import { assert, assertEquals } from "./_assert.ts";
import { harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { basicAuth, bearerAuth } from "../lib/http/_auth.ts";

/** `Basic` credentials of `user:password`, the password given as bytes (one per character). */
const basicBytes = (latin1: string) => `Basic ${btoa(latin1)}`;
const utf8 = (text: string) => String.fromCharCode(...new TextEncoder().encode(text));

Deno.test("auth: without API_TOKEN the dashboard's pages are served in full", async () => {
  const h = await harness();
  try {
    const at = Date.parse("2026-11-02T14:15:12.334Z");
    assertEquals((await h.post(lessonWebhook({ at }))).status, 200);
    assertEquals((await h.deliver(progressWebhook({ at }))).status, 200);
    for (const path of ["/", "/courses/2100013", "/unmatched"]) {
      const r = await h.app.request(path);
      assertEquals(r.status, 200, path);
      assertEquals(r.headers.get("content-type"), "text/html; charset=UTF-8", path);
      const page = await r.text();
      assert(page.startsWith("<!DOCTYPE html>"), `${path}: ${page.slice(0, 40)}`);
    }
    const course = await (await h.app.request("/courses/2100013")).text();
    assert(course.includes("Watercolor for beginners"), "the course page names the course");
  } finally {
    h.close();
  }
});

Deno.test("auth: a Basic password that is not UTF-8 is refused, even where its decoding would spell the token", async () => {
  // A token with U+FFFD, which a lenient decoder makes of any byte that is not UTF-8.
  const token = "tok-\uFFFD-12345";
  const h = await harness({ API_TOKEN: token });
  try {
    const status = async (authorization: string) => {
      const r = await h.app.request("/", { headers: { authorization } });
      await r.body?.cancel();
      return r.status;
    };
    assertEquals(await status(basicBytes(utf8(`u:${token}`))), 200, "the token in UTF-8");
    for (const byte of ["\xff", "\xfe", "\xc3"]) {
      assertEquals(
        await status(basicBytes(`u:tok-${byte}-12345`)),
        401,
        `byte ${byte.charCodeAt(0)}`,
      );
    }
  } finally {
    h.close();
  }
});

Deno.test("auth: no password, or none readable, is refused whatever the token, even 'null'", async () => {
  for (const token of ["null", "undefined", "tok-12345678"]) {
    const app = new Hono()
      .use("/pages", basicAuth(token))
      .use("/api", bearerAuth(token))
      .get("/pages", (c) => c.text("in"))
      .get("/api", (c) => c.text("in"));
    app.onError((err, c) => c.text(err.message, 401));
    const cases: [string, Record<string, string>][] = [
      ["/pages", {}],
      ["/pages", { authorization: "Basic" }],
      ["/pages", { authorization: basicBytes(utf8(token)) }],
      ["/pages", { authorization: basicBytes("u:\xff") }],
      ["/pages", { authorization: "Basic !!!" }],
      ["/api", {}],
      ["/api", { authorization: "Bearer" }],
    ];
    for (const [path, headers] of cases) {
      const r = await app.request(path, { headers });
      await r.body?.cancel();
      assertEquals(r.status, 401, `${token}: ${path} ${JSON.stringify(headers)}`);
    }
    const signedIn = await app.request("/pages", {
      headers: { authorization: basicBytes(utf8(`user:${token}`)) },
    });
    assertEquals([signedIn.status, await signedIn.text()], [200, "in"], token);
  }
});
