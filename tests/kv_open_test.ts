/**
 * Opening a KV file another process holds locked a moment (`deno serve --parallel` starts its
 * workers together on one file): the open is retried while SQLite says the database is locked.
 */
import { assertEquals } from "./_assert.ts";
import { evalChild, libImport } from "./_helpers.ts";

Deno.test("kv: a file found locked at start-up is opened once the lock is gone", async () => {
  await using dir = {
    path: await Deno.makeTempDir(),
    [Symbol.asyncDispose]() {
      return Deno.remove(this.path, { recursive: true });
    },
  };
  const out = await evalChild(`
    import { openKv } from ${libImport("kv.ts")};
    const open = Deno.openKv;
    let tries = 0;
    Object.defineProperty(Deno, "openKv", {
      configurable: true,
      value: (path) => {
        tries++;
        if (tries <= 2) return Promise.reject(new Error("database is locked"));
        return open(path);
      },
    });
    const kv = await openKv({ kvPath: ${
    JSON.stringify(`${dir.path}/kv.sqlite3`)
  }, onDenoDeploy: false });
    await kv.set(["k"], 1);
    console.log(JSON.stringify({ tries, value: (await kv.get(["k"])).value }));
    kv.close();
  `);
  assertEquals(out.code, 0, out.stderr);
  assertEquals(JSON.parse(out.stdout), { tries: 3, value: 1 });
});

Deno.test("kv: any other failure to open is at once a one-line error naming KV_PATH", async () => {
  const out = await evalChild(`
    import { openKv } from ${libImport("kv.ts")};
    let tries = 0;
    Object.defineProperty(Deno, "openKv", {
      configurable: true,
      value: () => (tries++, Promise.reject(new Error("disk I/O error\\nmore"))),
    });
    try {
      await openKv({ kvPath: "/tmp/kv-open-test-never.sqlite3", onDenoDeploy: false });
    } catch (err) {
      console.log(JSON.stringify({ tries, message: err.message, name: err.name }));
    }
  `);
  assertEquals(out.code, 0, out.stderr);
  assertEquals(JSON.parse(out.stdout), {
    tries: 1,
    message: 'KV_PATH "/tmp/kv-open-test-never.sqlite3" cannot be opened (disk I/O error)',
    name: "ConfigError",
  });
});
