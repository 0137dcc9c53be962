/**
 * A few lines of Chrome DevTools Protocol to drive Debian's headless Chromium from a test: open a
 * page (with extra headers), wait for it to load, evaluate an expression in it.
 * @module
 */

/** Where Chromium is, if installed (`.ci/run` installs Debian's `chromium`). */
export function findChromium(): string | null {
  for (const path of ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not here
    }
  }
  return null;
}

export interface Browser {
  /** Opens `url` with `headers` and resolves once it has loaded. */
  open(url: string, headers?: Record<string, string>): Promise<void>;
  /** Evaluates `expression` in the page and returns its value. */
  evaluate<T>(expression: string): Promise<T>;
  /** Saves a PNG screenshot of the page. */
  screenshot(path: string): Promise<void>;
  /** Chromium's `TMPDIR`, removed (with its profile) by `close`. */
  tmpDir: string;
  close(): Promise<void>;
}

/**
 * Starts headless Chromium with one page. Its profile and its temporary files (`TMPDIR`, where it
 * puts `org.chromium.Chromium.*` folders it cannot clean up when killed) live in one temporary
 * folder that {@linkcode Browser.close} removes.
 */
export async function launch(executable: string): Promise<Browser> {
  const root = await Deno.makeTempDir({ prefix: "chromium-test-" });
  const profile = `${root}/profile`;
  const tmp = `${root}/tmp`;
  await Deno.mkdir(tmp);
  const child = new Deno.Command(executable, {
    env: { TMPDIR: tmp },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "--window-size=1100,900",
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();

  // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let port: string | null = null;
  while (port === null) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`chromium exited: ${text}`);
    text += value;
    port = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(text)?.[1] ?? null;
  }
  const drain = (async () => {
    while (!(await reader.read()).done) { /* keep the pipe empty */ }
  })();

  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = targets.find((t: { type: string }) => t.type === "page");
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });

  let nextId = 0;
  const pending = new Map<number, (msg: Record<string, unknown>) => void>();
  const listeners = new Set<(msg: Record<string, unknown>) => void>();
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (typeof msg.id === "number") pending.get(msg.id)?.(msg);
    else for (const l of listeners) l(msg);
  };
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, (msg) => {
        pending.delete(id);
        if (msg.error) reject(new Error(`${method}: ${JSON.stringify(msg.error)}`));
        else resolve(msg.result as Record<string, unknown>);
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send("Page.enable");
  await send("Network.enable");

  return {
    tmpDir: tmp,
    async open(url, headers = {}) {
      await send("Network.setExtraHTTPHeaders", { headers });
      const loaded = new Promise<void>((resolve) => {
        const l = (msg: Record<string, unknown>) => {
          if (msg.method === "Page.loadEventFired") {
            listeners.delete(l);
            resolve();
          }
        };
        listeners.add(l);
      });
      await send("Page.navigate", { url });
      await loaded;
    },
    async evaluate<T>(expression: string) {
      const r = await send("Runtime.evaluate", { expression, returnByValue: true });
      return (r.result as { value: T }).value;
    },
    async screenshot(path) {
      const r = await send("Page.captureScreenshot", { format: "png" });
      await Deno.writeFile(path, Uint8Array.from(atob(r.data as string), (c) => c.charCodeAt(0)));
    },
    async close() {
      const closed = new Promise((resolve) => (ws.onclose = resolve));
      ws.close();
      await closed;
      child.kill("SIGKILL");
      await child.status;
      await drain.catch(() => {});
      await Deno.remove(root, { recursive: true });
    },
  };
}
