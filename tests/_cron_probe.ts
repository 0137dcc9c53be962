/**
 * Run by `tests/cron_test.ts` in a child process: imports `main.ts` with `Deno.cron` replaced by a
 * recorder, noting for each cron whether the configuration had been read (`main.ts`'s first
 * `await` waits for it) or the database opened when it was registered; then runs each recorded
 * handler once, counting the database calls it makes. Prints one JSON line.
 */
type Handler = () => Promise<void> | void;

let envRead = false;
let kvOpened = false;
let kvCalls = 0;
const calls: { name: string; schedule: unknown; envRead: boolean; kvOpened: boolean }[] = [];
const handlers: Handler[] = [];

const replace = (target: object, name: string, value: unknown) =>
  Object.defineProperty(target, name, { value, configurable: true, writable: true });

const toObject = Deno.env.toObject.bind(Deno.env);
replace(Deno.env, "toObject", () => {
  envRead = true;
  return toObject();
});
const openKv = Deno.openKv;
replace(Deno, "openKv", async (path?: string) => {
  kvOpened = true;
  const kv = await openKv(path);
  return new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        kvCalls++;
        return value.apply(target, args);
      };
    },
  });
});
replace(Deno, "cron", (name: string, schedule: unknown, ...rest: unknown[]) => {
  calls.push({ name, schedule, envRead, kvOpened });
  handlers.push(rest[rest.length - 1] as Handler);
});

await import("../main.ts");
const before = kvCalls;
for (const handler of handlers) await handler();
console.log(JSON.stringify({ calls, handlerKvCalls: kvCalls - before }));
