/**
 * The one way tests wait for something: poll `probe` until `done` holds for what it returns, or a
 * deadline passes. On the deadline it throws an error naming what was awaited and the last value
 * seen, rather than leaving the test to the runner's timeout. Errors thrown by the probe propagate
 * (catch them in the probe when a failed attempt just means "not yet").
 */

export interface EventuallyOptions {
  /** what is being awaited, for the error (default: the predicate's source) */
  what?: string;
  /** the deadline, from the first poll (default 60 s; `Infinity` leaves it to the test's timeout) */
  timeoutMs?: number;
  /** the pause between polls (default 200 ms) */
  intervalMs?: number;
}

export const EVENTUALLY_TIMEOUT_MS = 60_000;
const INTERVAL_MS = 200;

/** `options` as a number: the timeout in ms. Resolves with the first value `done` accepted. */
export async function eventually<T>(
  probe: () => T | Promise<T>,
  done: (value: T) => boolean,
  options: number | EventuallyOptions = {},
): Promise<T> {
  const {
    what,
    timeoutMs = EVENTUALLY_TIMEOUT_MS,
    intervalMs = INTERVAL_MS,
  } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await probe();
    if (done(last)) return last;
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what ?? done.toString()}; last value seen: ${describe(last)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, left)));
  }
}

function describe(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 1_000 ? `${text.slice(0, 1_000)}… (${text.length} characters)` : text;
}
