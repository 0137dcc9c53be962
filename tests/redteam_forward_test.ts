/**
 * The webhook destination reads no answer body but always releases it (cancels the stream), on
 * success and on failure, so a receiver's answers never keep connections or memory held.
 */
import { assertEquals } from "./_assert.ts";
import { handRecord } from "./_records.ts";
import { webhookDestination } from "../lib/forward/forwarder.ts";
import { createSigner } from "../lib/forward/standard_webhooks.ts";
import type { OutboxEntry } from "../lib/store/keys.ts";

Deno.test("redteam forward: the webhook destination releases every answer's body, 2xx or not", async () => {
  const sign = createSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const entry = { messageId: "msg_48213_1", record: handRecord() } as OutboxEntry;
  for (const status of [200, 503]) {
    let cancelled = 0;
    const answer = () =>
      new Response(new ReadableStream({ cancel: () => void cancelled++ }), { status });
    const destination = webhookDestination("https://crm.example/hook", sign, {
      fetch: (() => Promise.resolve(answer())) as typeof fetch,
    });
    const error = await destination.deliver(entry, new AbortController().signal).then(
      () => null,
      (e: Error) => e.message,
    );
    assertEquals([error, cancelled], [status === 200 ? null : "HTTP 503", 1]);
  }
});
