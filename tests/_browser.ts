/**
 * Headless Chromium for the dashboard's browser test, driven by `npm:puppeteer-core` with Debian's
 * `chromium` (`.ci/run` installs it) as its executable.
 * @module
 */
import puppeteer, { type Browser } from "puppeteer-core";

/** Where Chromium is, if installed. */
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

/** A running Chromium, and the folder that holds its profile and temporary files. */
export interface TestBrowser {
  browser: Browser;
  /** Chromium's `TMPDIR`, where it puts its `org.chromium.Chromium.*` folders. */
  tmpDir: string;
  /** Closes Chromium and removes its profile and temporary files. */
  close(): Promise<void>;
}

/**
 * Starts headless Chromium. Its profile and its temporary files (`TMPDIR`, where it leaves
 * `org.chromium.Chromium.*` folders behind when it cannot clean up) live in one temporary folder
 * that {@linkcode TestBrowser.close} removes.
 */
export async function launch(executablePath: string): Promise<TestBrowser> {
  const root = await Deno.makeTempDir({ prefix: "chromium-test-" });
  const tmpDir = `${root}/tmp`;
  await Deno.mkdir(tmpDir);
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    userDataDir: `${root}/profile`,
    env: { ...Deno.env.toObject(), TMPDIR: tmpDir },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    defaultViewport: { width: 1100, height: 900 },
  });
  return {
    browser,
    tmpDir,
    async close() {
      await browser.close().catch(() => browser.process()?.kill("SIGKILL"));
      await Deno.remove(root, { recursive: true });
    },
  };
}
