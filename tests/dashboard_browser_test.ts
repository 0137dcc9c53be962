/**
 * The dashboard in a real browser: after a simulated Thinkific load, headless Chromium opens `/`
 * and a course page with Basic auth and finds the courses, the lesson names and a drawn SVG chart.
 * Skipped (reported as ignored) where Chromium is not installed; `.ci/run` installs it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook, type Webhook } from "./_helpers.ts";
import { postTo, startServer } from "./_server.ts";
import { findChromium, launch } from "./_browser.ts";

const chromium = findChromium();

Deno.test({
  name: "dashboard in Chromium: courses, lesson names and the chart are on the screen",
  ignore: chromium === null,
  async fn() {
    const dir = await Deno.makeTempDir();
    const server = await startServer({ KV_PATH: `${dir}/kv.sqlite3`, API_TOKEN: "browser-token" });
    const browser = await launch(chromium!);
    try {
      const lessons = ["Your paint box", "Brushes and paper", "Wet on wet"];
      const bodies: Webhook[] = [];
      for (let user = 1; user <= 4; user++) {
        for (const [i, name] of lessons.slice(0, 4 - user > 0 ? 4 - user : 1).entries()) {
          const at = BASE_TIME + user * 600_000 + i * 60_000;
          bodies.push(lessonWebhook({ user, at, lesson: 100 + i, lessonName: name }));
          bodies.push(progressWebhook({ user, at, percentage: String((i + 1) * 10) }));
        }
      }
      for (const body of bodies) assert((await postTo(server.url, body)).status < 500);

      const unauthorized = await fetch(`${server.url}/`);
      assertEquals(unauthorized.status, 401);
      await unauthorized.body?.cancel();

      const auth = { Authorization: `Basic ${btoa("me:browser-token")}` };
      await browser.open(`${server.url}/`, auth);
      const home = await browser.evaluate<string>("document.body.innerText");
      assert(home.includes("Watercolor for beginners"), home);

      await browser.open(`${server.url}/courses/2100013`, auth);
      const text = await browser.evaluate<string>("document.body.innerText");
      for (const name of lessons) assert(text.includes(name), `${name} missing from: ${text}`);
      const bars = await browser.evaluate<{ w: number; h: number }[]>(
        `[...document.querySelectorAll("svg.chart rect.bar")].map((r) => {
          const b = r.getBoundingClientRect(); return { w: b.width, h: b.height };
        })`,
      );
      assertEquals(bars.length, 3);
      assert(bars.every((b) => b.w > 0 && b.h > 0), JSON.stringify(bars));
      assert(bars[0].w > bars[2].w, "the drop-off shows: more learners on the first lesson");
      await browser.screenshot(`${dir}/course.png`);
      assert((await Deno.stat(`${dir}/course.png`)).size > 1000);
      // Chromium's own temporary folders (which it cannot clean up when killed) are in ours.
      assert((await chromiumFolders(browser.tmpDir)).length > 0, "Chromium uses our TMPDIR");
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
    const gone = await Deno.stat(browser.tmpDir).then(() => false, () => true);
    assert(gone, "Chromium's temporary folder is removed");
  },
});

/** `org.chromium.*` entries of `dir`. */
async function chromiumFolders(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith("org.chromium.")) names.push(e.name);
  }
  return names;
}
