/**
 * The dashboard in a real browser: after a simulated Thinkific load, headless Chromium (driven by
 * puppeteer-core) signs in with Basic auth, opens `/`, a course page and its learners page, and
 * finds the courses, the lesson names, a drawn SVG chart and where each learner stands. Skipped
 * (reported as ignored) where Chromium is not installed; `.ci/run` installs it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BASE_TIME, lessonWebhook, progressWebhook, type Webhook } from "./_helpers.ts";
import { postTo, startServer } from "./_server.ts";
import { findChromium, launch } from "./_browser.ts";

const chromium = findChromium();

Deno.test({
  name:
    "dashboard in Chromium: courses, lesson names, the chart and the learners are on the screen",
  ignore: chromium === null,
  async fn() {
    const dir = await Deno.makeTempDir();
    const server = await startServer({ KV_PATH: `${dir}/kv.sqlite3`, API_TOKEN: "browser-token" });
    const chrome = await launch(chromium!);
    const browser = chrome.browser;
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

      const page = await browser.newPage();
      await page.authenticate({ username: "me", password: "browser-token" });
      await page.goto(`${server.url}/`, { waitUntil: "load" });
      const home = await page.evaluate("document.body.innerText") as string;
      assert(home.includes("Watercolor for beginners"), home);

      await page.goto(`${server.url}/courses/2100013`, { waitUntil: "load" });
      const text = await page.evaluate("document.body.innerText") as string;
      for (const name of lessons) assert(text.includes(name), `${name} missing from: ${text}`);
      const bars = await page.$$eval("svg.chart rect.bar", (rects) =>
        rects.map((r) => {
          const b = r.getBoundingClientRect();
          return { w: b.width, h: b.height };
        }));
      assertEquals(bars.length, 3);
      assert(bars.every((b) => b.w > 0 && b.h > 0), JSON.stringify(bars));
      assert(bars[0].w > bars[2].w, "the drop-off shows: more learners on the first lesson");
      await page.screenshot({ path: `${dir}/course.png` });
      assert((await Deno.stat(`${dir}/course.png`)).size > 1000);

      // At phone width (390 px): the chart's labels stay readable, "Reached" stays in view.
      await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 1 });
      await page.goto(`${server.url}/courses/2100013`, { waitUntil: "load" });
      const phone = await page.evaluate(`(() => {
        const sizes = [...document.querySelectorAll("svg.chart text")].map((t) => {
          const svg = t.ownerSVGElement;
          const box = svg.viewBox.baseVal;
          const scale = box && box.width ? svg.getBoundingClientRect().width / box.width : 1;
          return parseFloat(getComputedStyle(t).fontSize) * scale;
        });
        const reached = [...document.querySelectorAll("th")].find((th) => th.innerText === "Reached");
        const r = reached.getBoundingClientRect();
        return { smallest: Math.min(...sizes), reachedRight: r.right, width: window.innerWidth };
      })()`) as { smallest: number; reachedRight: number; width: number };
      assert(phone.smallest >= 11, `chart labels ${phone.smallest.toFixed(1)} px high at 390 px`);
      assert(
        phone.reachedRight <= phone.width,
        `"Reached" ends at ${phone.reachedRight} px, past the ${phone.width} px screen`,
      );
      await page.screenshot({ path: `${dir}/phone.png`, fullPage: true });
      await page.setViewport({ width: 1100, height: 900 });

      // The course page links to where each learner stands: newest activity first.
      await Promise.all([
        page.waitForNavigation({ waitUntil: "load" }),
        page.click('a[href="/courses/2100013/learners"]'),
      ]);
      const rows = await page.$$eval(
        "table.learners tbody tr",
        (trs) =>
          trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.innerText.split("\n")[0])),
      );
      assertEquals(rows.map((r) => r.slice(1, 4)), [
        ["Your paint box", "10%", "1"], // user 4 (only the first lesson)
        ["Your paint box", "10%", "1"], // user 3
        ["Brushes and paper", "20%", "2"], // user 2
        ["Wet on wet", "30%", "3"], // user 1
      ]);
      assertEquals(rows.map((r) => r[0]).every((learner) => learner === "ada@example.com"), true);
      // Chromium's own temporary folders (left behind when it is killed) are in ours.
      assert((await chromiumFolders(chrome.tmpDir)).length > 0, "Chromium uses our TMPDIR");
    } finally {
      await chrome.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
    const gone = await Deno.stat(chrome.tmpDir).then(() => false, () => true);
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
