/**
 * `lib/kv.ts`: which database `KV_PATH` opens (in memory, a SQLite file whose folders are made, a
 * KV Connect URL, Deno Deploy's own), how the start-up log names it, how held deliveries hear of
 * other processes' writes on it, and the one-line `ConfigError` naming `KV_PATH` when it cannot be
 * opened.
 */
import assert from "node:assert/strict";
import { assertEquals, assertMatch } from "./_assert.ts";
import { tempDir } from "./_helpers.ts";
import { ConfigError } from "../lib/config.ts";
import { absolutePath, DEFAULT_KV_PATH, describeKv, openKv, wakeModeOf } from "../lib/kv.ts";

const local = (kvPath: string | undefined) => ({ kvPath, onDenoDeploy: false });

/** Runs `fn` with a new empty folder as the working directory, then lists what it left there. */
async function inEmptyFolder(fn: (dir: string) => Promise<void>): Promise<string[]> {
  await using dir = await tempDir();
  const before = Deno.cwd();
  Deno.chdir(dir.path);
  try {
    await fn(dir.path);
  } finally {
    Deno.chdir(before);
  }
  const names: string[] = [];
  for await (const e of Deno.readDir(dir.path)) names.push(e.name);
  return names.sort();
}

/** Asserts that `err` is a one-line ConfigError matching `pattern`. */
function assertConfigError(err: unknown, pattern: RegExp) {
  assert(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
  assertMatch(err.message, pattern);
  assert(!err.message.includes("\n"), `one line: ${err.message}`);
}

/** Asserts that opening `config` fails with a one-line ConfigError matching `pattern`. */
async function assertRefused(config: ReturnType<typeof local>, pattern: RegExp) {
  const kvOrError = await openKv(config).catch((err: unknown) => err);
  if (kvOrError instanceof Deno.Kv) kvOrError.close();
  assertConfigError(kvOrError, pattern);
}

/** Writes and reads back one value: the handle is a working database. */
async function roundTrip(kv: Deno.Kv) {
  await kv.set(["probe"], "ok");
  assertEquals((await kv.get(["probe"])).value, "ok");
}

Deno.test("kv: a relative file path is opened from the working folder; an absolute one as given", () => {
  const cases: [string, string][] = [
    ["kv.sqlite3", "/srv/app/kv.sqlite3"],
    ["./data/kv.sqlite3", "/srv/app/data/kv.sqlite3"],
    [".\\data\\kv.sqlite3", "/srv/app/data\\kv.sqlite3"],
    ["data/kv.sqlite3", "/srv/app/data/kv.sqlite3"],
    ["../kv.sqlite3", "/srv/app/../kv.sqlite3"],
    ["/var/lib/kv.sqlite3", "/var/lib/kv.sqlite3"],
    ["C:\\data\\kv.sqlite3", "C:\\data\\kv.sqlite3"],
    ["c:/data/kv.sqlite3", "c:/data/kv.sqlite3"],
    ["\\\\server\\share\\kv.sqlite3", "\\\\server\\share\\kv.sqlite3"],
  ];
  for (const [path, want] of cases) assertEquals(absolutePath(path, "/srv/app"), want, path);
  assertEquals(absolutePath("kv.sqlite3"), `${Deno.cwd()}/kv.sqlite3`);
});

Deno.test("kv: the start-up log names the database: a path, remote, Deploy's, or the default file", () => {
  assertEquals(describeKv(local("/srv/kv/progress.sqlite3")), "/srv/kv/progress.sqlite3");
  assertEquals(describeKv(local(":memory:")), ":memory:");
  for (const url of ["https://api.deno.com/databases/x/connect", "HTTP://localhost:4512"]) {
    assertEquals(describeKv(local(url)), "remote (KV Connect)", url);
    assertEquals(describeKv({ kvPath: url, onDenoDeploy: true }), "remote (KV Connect)", url);
  }
  // A file path that merely contains a URL is a file.
  assertEquals(describeKv(local("data/https://x")), "data/https://x");
  assertEquals(describeKv(local(undefined)), "./data/kv.sqlite3");
  assertEquals(DEFAULT_KV_PATH, "./data/kv.sqlite3");
  assertEquals(describeKv({ kvPath: undefined, onDenoDeploy: true }), "Deno Deploy database");
  assertEquals(describeKv({ kvPath: "./mine.sqlite3", onDenoDeploy: true }), "./mine.sqlite3");
});

Deno.test("kv: held deliveries watch on Deploy and remote databases, poll a SQLite file, and need neither in memory", () => {
  assertEquals(wakeModeOf({ kvPath: undefined, onDenoDeploy: true }), "watch");
  assertEquals(wakeModeOf(local(undefined)), "poll");
  assertEquals(wakeModeOf(local(":memory:")), "memory");
  assertEquals(wakeModeOf({ kvPath: ":memory:", onDenoDeploy: true }), "memory");
  assertEquals(wakeModeOf(local("./data/kv.sqlite3")), "poll");
  assertEquals(wakeModeOf({ kvPath: "/srv/kv.sqlite3", onDenoDeploy: true }), "poll");
  assertEquals(wakeModeOf(local("https://api.deno.com/databases/x/connect")), "watch");
  assertEquals(wakeModeOf(local("Http://localhost:4512")), "watch");
  assertEquals(wakeModeOf(local("data/http://x")), "poll");
});

Deno.test("kv: a file path opens a SQLite file, its missing folders made; a bare file name needs none", async () => {
  const left = await inEmptyFolder(async (dir) => {
    const kv = await openKv(local(`${dir}/a/b/progress.sqlite3`));
    try {
      await roundTrip(kv);
    } finally {
      kv.close();
    }
    assert((await Deno.stat(`${dir}/a/b/progress.sqlite3`)).isFile);
    // The data is in the file: a second handle reads it.
    const again = await openKv(local(`${dir}/a/b/progress.sqlite3`));
    try {
      assertEquals((await again.get(["probe"])).value, "ok");
    } finally {
      again.close();
    }
    // A bare file name opens a file in the working directory, no folder made (Deno 2.5 itself
    // opens neither `name` nor `./name`).
    const bare = await openKv(local("bare.sqlite3"));
    try {
      await roundTrip(bare);
    } finally {
      bare.close();
    }
    assert((await Deno.stat("bare.sqlite3")).isFile, "a file in the working directory");
    const dotted = await openKv(local("./dotted.sqlite3"));
    try {
      await roundTrip(dotted);
    } finally {
      dotted.close();
    }
  });
  assertEquals(left.filter((n) => !/^(bare|dotted)\.sqlite3/.test(n)), ["a"]);
});

Deno.test("kv: unset KV_PATH opens ./data/kv.sqlite3, making ./data", async () => {
  const left = await inEmptyFolder(async () => {
    const kv = await openKv(local(undefined));
    try {
      await roundTrip(kv);
    } finally {
      kv.close();
    }
    assert((await Deno.stat("data/kv.sqlite3")).isFile);
  });
  assertEquals(left, ["data"]);
});

Deno.test("kv: :memory: opens an empty database in memory and writes no file", async () => {
  const left = await inEmptyFolder(async () => {
    // Even a folder of that name in the working directory is not what `:memory:` means.
    await Deno.mkdir(":memory:");
    const kv = await openKv(local(":memory:"));
    try {
      assertEquals((await kv.get(["probe"])).versionstamp, null);
      await roundTrip(kv);
    } finally {
      kv.close();
    }
  });
  assertEquals(left, [":memory:"]);
});

Deno.test("kv: on Deno Deploy without KV_PATH, Deploy's database is opened, not ./data", async () => {
  const left = await inEmptyFolder(async () => {
    const kv = await openKv({ kvPath: undefined, onDenoDeploy: true });
    try {
      assertEquals(typeof kv.atomic, "function");
    } finally {
      kv.close();
    }
  });
  assertEquals(left, []);
});

Deno.test("kv: a KV Connect URL is opened as a remote database, never as a file path", async () => {
  const had = Deno.env.get("DENO_KV_ACCESS_TOKEN");
  Deno.env.set("DENO_KV_ACCESS_TOKEN", "test-token");
  try {
    const left = await inEmptyFolder(async () => {
      // Nothing listens on port 1: the connection is refused, and said so in one line (Deno 2.5
      // opens the handle and fails on first use instead).
      const opened = await openKv(local("http://localhost:1/db")).catch((err: unknown) => err);
      if (opened instanceof Deno.Kv) opened.close();
      else {assertConfigError(
          opened,
          /^KV_PATH "http:\/\/localhost:1\/db" cannot be opened \(.*connect.*\)$/i,
        );}
    });
    assertEquals(left, [], "no folder made for a URL");
  } finally {
    if (had === undefined) Deno.env.delete("DENO_KV_ACCESS_TOKEN");
    else Deno.env.set("DENO_KV_ACCESS_TOKEN", had);
  }
});

Deno.test("kv: a database that cannot be opened is a one-line ConfigError naming KV_PATH", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/file`, "not a database\nat all\n");
  await assertRefused(
    local(dir.path),
    new RegExp(
      `^KV_PATH "${dir.path}" is a folder: give a file path, such as ${dir.path}/kv.sqlite3$`,
    ),
  );
  await assertRefused(
    local(`${dir.path}/file/sub/kv.sqlite3`),
    new RegExp(
      `^KV_PATH "${dir.path}/file/sub/kv.sqlite3": its folder cannot be created \\(.*Not a directory.*\\)$`,
    ),
  );
  await assertRefused(
    local(`${dir.path}/file`),
    new RegExp(`^KV_PATH "${dir.path}/file" cannot be opened \\(file is not a database\\)$`),
  );
});

Deno.test("kv: with KV_PATH unset, the error names the default path it tried", async () => {
  await inEmptyFolder(async () => {
    await Deno.mkdir("data/kv.sqlite3", { recursive: true });
    await assertRefused(
      local(undefined),
      /^KV_PATH \(unset, so "\.\/data\/kv\.sqlite3"\) is a folder: give a file path, such as \.\/data\/kv\.sqlite3\/kv\.sqlite3$/,
    );
  });
});
