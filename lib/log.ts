/**
 * Structured logs: one JSON line per event worth telling. Never pass a secret, a signature or a
 * full email address.
 *
 * @example
 * ```ts
 * jsonLogger({ msg: "webhook", topic: "lesson.completed", outcome: "stored", ms: 3 });
 * ```
 * @module
 */

/** Receives one log line's fields. */
export type Logger = (fields: Record<string, unknown>) => void;

/** Writes one JSON line to stdout (errors to stderr). */
export const jsonLogger: Logger = (fields) => {
  const line = JSON.stringify({ time: new Date().toISOString(), ...fields });
  if (fields.level === "error") console.error(line);
  else console.log(line);
};

/** Discards everything (tests that do not look at logs). */
export const silentLogger: Logger = () => {};
