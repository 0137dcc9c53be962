/**
 * API_TOKEN (lib/http/_auth.ts): the API takes `Authorization: Bearer <token>`, the dashboard HTTP
 * Basic with any user name and the token as password; anything else is a 401 saying how to sign in.
 */
import { assertEquals } from "./_assert.ts";
import { harness } from "./_helpers.ts";

const b64 = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));

Deno.test("auth: the API accepts exactly a bearer token", async () => {
  const h = await harness({ API_TOKEN: "tok-12345678" });
  try {
    for (const ok of ["Bearer tok-12345678", "bearer   tok-12345678"]) {
      const r = await h.app.request("/api/records", { headers: { authorization: ok } });
      assertEquals(r.status, 200, ok);
      await r.body?.cancel();
    }
    for (
      const bad of [
        undefined,
        "Bearer tok-1234567845678X",
        "Bearer tok-12345678 extra",
        "xBearer tok-12345678",
        "Bearertok-12345678",
        "Basic " + b64("u:tok-12345678"),
      ]
    ) {
      const headers: Record<string, string> = bad === undefined ? {} : { authorization: bad };
      const r = await h.app.request("/api/records", { headers });
      assertEquals(r.status, 401, String(bad));
      assertEquals(r.headers.get("www-authenticate"), 'Bearer realm="api"');
      assertEquals((await r.json()).error, "missing or invalid bearer token");
    }
  } finally {
    h.close();
  }
});

Deno.test("auth: the dashboard accepts any user name with the token as password", async () => {
  const h = await harness({ API_TOKEN: "tok-12345678" });
  try {
    for (const ok of [`Basic ${b64("u:tok-12345678")}`, `basic  ${b64(":tok-12345678")}`]) {
      const r = await h.app.request("/", { headers: { authorization: ok } });
      assertEquals(r.status, 200, ok);
      await r.body?.cancel();
    }
    const invalidUtf8 = "Basic " + btoa("u:\xff\xfe");
    for (
      const bad of [
        undefined,
        `Basic ${b64("tok-12345678")}`,
        `Basic ${b64("u:tok-1234567845678X")}`,
        `xBasic ${b64("u:tok-12345678")}`,
        `Basic ${b64("u:tok-12345678")} extra`,
        `Basic ${b64("u:tok-12345678")}!`,
        "Basic !!!",
        invalidUtf8,
        "Bearer tok-12345678",
      ]
    ) {
      const headers: Record<string, string> = bad === undefined ? {} : { authorization: bad };
      const r = await h.app.request("/", { headers });
      assertEquals(r.status, 401, String(bad));
      assertEquals(
        r.headers.get("www-authenticate"),
        'Basic realm="lesson progress", charset="UTF-8"',
      );
      assertEquals(
        await r.text(),
        "Sign in with any user name and the API token as password.",
      );
    }
  } finally {
    h.close();
  }
});

Deno.test("auth: without API_TOKEN the API and the dashboard are open", async () => {
  const h = await harness();
  try {
    for (const path of ["/api/records", "/"]) {
      const r = await h.app.request(path);
      assertEquals(r.status, 200, path);
      await r.body?.cancel();
    }
  } finally {
    h.close();
  }
});
