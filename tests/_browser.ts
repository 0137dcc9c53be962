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

/** Starts headless Chromium. */
export function launch(executablePath: string): Promise<Browser> {
  return puppeteer.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic"],
    defaultViewport: { width: 1100, height: 900 },
  });
}
