/**
 * Cursors name the listing that issued them: one given to another listing is a 400 naming
 * `cursor`, never a page that starts at a wrong place.
 */
import { assert, assertEquals, assertMatch } from "./_assert.ts";
import { BASE_TIME, harness, lessonWebhook, progressWebhook } from "./_helpers.ts";
import { encodeCursor } from "../lib/store/_page.ts";

const T = BASE_TIME;
const DAY = 86_400_000;

Deno.test("cursors: a cursor from one listing is refused by every other with a 400", async () => {
  const h = await harness({ GIVE_UP_AFTER_ATTEMPTS: "2" });
  try {
    h.clock.now = T + 2 * DAY;
    for (const [user, course] of [[1, 10], [2, 10], [3, 11], [4, 11]]) {
      await h.post(lessonWebhook({ user, course, at: T + user * 1000 }));
      await h.deliver(progressWebhook({ user, course, at: T + user * 1000, percentage: "10" }));
    }
    // Two lone progress events give up on their second delivery: two unmatched entries.
    for (const user of [5, 6]) {
      const p = progressWebhook({ user, course: 10, at: T + user * 1000, percentage: "20" });
      assertEquals((await h.deliver(p)).json.status, "unmatched");
    }
    const cursorOf = async (path: string) => {
      const res = await h.app.request(path);
      const text = await res.text();
      assertEquals(res.status, 200, `${path}: ${text}`);
      const cursor = path.startsWith("/api/")
        ? JSON.parse(text).cursor
        : /[?&;]cursor=([\w-]+)/.exec(text)?.[1];
      assert(typeof cursor === "string" && cursor.length > 0, `${path} gave no cursor: ${text}`);
      return cursor as string;
    };
    const listings = {
      records: "/api/records?limit=1",
      feed: "/api/feed?limit=1",
      unmatched: "/api/unmatched?limit=1",
      "learners of 10": "/courses/10/learners?limit=1",
      "learners of 11": "/courses/11/learners?limit=1",
      courses: "/api/courses?limit=1",
    };
    const cursors = new Map<string, string>();
    for (const [name, path] of Object.entries(listings)) cursors.set(name, await cursorOf(path));

    for (const [from, cursor] of cursors) {
      for (const [to, path] of Object.entries(listings)) {
        const res = await h.app.request(`${path}&cursor=${cursor}`);
        const text = await res.text();
        if (from === to) {
          assertEquals(res.status, 200, `${from}'s cursor on its own listing: ${text}`);
        } else {
          assertEquals(res.status, 400, `${from}'s cursor given to ${to}: ${text}`);
          assertMatch(text, /cursor/, `${from} → ${to}`);
        }
      }
    }
  } finally {
    h.close();
  }
});

Deno.test("cursors: an untagged cursor of an earlier version is refused, except by the feed", async () => {
  const h = await harness();
  try {
    const old = (position: unknown[]) =>
      btoa(JSON.stringify(position)).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    for (
      const path of [
        `/api/records?cursor=${old([T, "acme", "e1"])}`,
        `/api/unmatched?cursor=${old([T, "acme", "e1"])}`,
      ]
    ) {
      const res = await h.app.request(path);
      assertEquals(res.status, 400, path);
      assertMatch((await res.json()).error, /cursor .*earlier version.*without cursor/, path);
    }
    // The feed's followers keep their cursor across an upgrade: accepted for this release.
    const feed = await h.app.request(`/api/feed?cursor=${old([T])}`);
    assertEquals(feed.status, 200);
    await feed.body?.cancel();
    // A tagged cursor says which listing it is for.
    const wrong = await h.app.request(`/api/feed?cursor=${encodeCursor("records", [T, "a", "b"])}`);
    assertEquals(wrong.status, 400);
    assertMatch((await wrong.json()).error, /cursor is a cursor of \/api\/records/);
    // The outbox's two listings: each refuses the other's cursor.
    const dead = encodeCursor("outbox/dead", [T, "x"]);
    const own = await h.app.request(`/api/outbox?status=dead&cursor=${dead}`);
    assertEquals(own.status, 200);
    await own.body?.cancel();
    const other = await h.app.request(`/api/outbox?status=pending&cursor=${dead}`);
    assertEquals(other.status, 400);
    assertMatch((await other.json()).error, /^query parameter cursor is a cursor of \/api\/outbox/);
  } finally {
    h.close();
  }
});
