/**
 * How the tests wait: for what they mean, never for a fixed time. A test
 * has a deadline ({@linkcode withDeadline}), and inside it waits for a line
 * (a log line, a trace event) or a condition ({@linkcode waitFor}).
 *
 * @module
 */

import { deadline, delay } from "@std/async";

/** How long a test that talks to a server may take, unless it says. */
export const DEADLINE_MS = 60_000;

/** How long {@linkcode waitFor} waits, unless told: well within a deadline. */
export const WAIT_MS = 30_000;

/**
 * Wraps a test's body in `@std/async`'s `deadline`, so that a server or a
 * client that hangs fails the test with "Test did not finish within `ms`
 * ms" instead of stalling the run. The deadline is generous: it catches
 * hangs, not slowness.
 *
 * @example
 * ```ts ignore
 * Deno.test("serve() answers /", withDeadline(async () => {}));
 * ```
 */
export function withDeadline(
  fn: (t: Deno.TestContext) => void | Promise<void>,
  ms: number = DEADLINE_MS,
): (t: Deno.TestContext) => Promise<void> {
  return async (t) => {
    try {
      await deadline(Promise.resolve(fn(t)), ms);
    } catch (error) {
      if (error instanceof DOMException && error.name === "TimeoutError") {
        throw new Error(`Test did not finish within ${ms} ms`);
      }
      throw error;
    }
  };
}

/** How {@linkcode waitFor} waits. */
export interface WaitOptions {
  /** How long, in milliseconds, before it fails; {@linkcode WAIT_MS} unless given. */
  ms?: number;
}

/**
 * Waits until `lines` holds a line that `pattern` matches, and returns the
 * first such match; `lines` is an array that grows, such as a server's log
 * or a process's output. Fails after `options.ms`, quoting the lines.
 *
 * @example
 * ```ts ignore
 * await waitFor(server.lines, /#1 head: GET \/sleep/);
 * ```
 */
export function waitFor(
  lines: readonly string[],
  pattern: RegExp,
  options?: WaitOptions,
): Promise<RegExpExecArray>;
/**
 * Waits until `condition` gives something other than undefined, null or
 * false, and returns that; `what` names the condition in the failure.
 *
 * @example
 * ```ts ignore
 * await waitFor(() => conn.unread === 0, "the whole request read");
 * ```
 */
export function waitFor<T>(
  condition: () => T | Promise<T>,
  what: string,
  options?: WaitOptions,
): Promise<Exclude<T, undefined | null | false>>;
export async function waitFor<T>(
  source: readonly string[] | (() => T | Promise<T>),
  expected: RegExp | string,
  { ms = WAIT_MS }: WaitOptions = {},
): Promise<unknown> {
  const [check, what] = typeof source === "function"
    ? [source, String(expected)]
    : [
      () => firstMatch(source, expected as RegExp),
      `line matching ${expected}`,
    ];
  // Checked anew every 10 ms: whatever the load, nothing that happens is
  // missed, and it is seen within 10 ms of the check that could see it.
  const timeout = AbortSignal.timeout(ms);
  while (!timeout.aborted) {
    const value = await check();
    if (value !== undefined && value !== null && value !== false) return value;
    await delay(10, { signal: timeout }).catch(() => {});
  }
  const seen = typeof source === "function"
    ? ""
    : `; the lines so far:\n${source.join("\n")}`;
  throw new Error(`No ${what} within ${ms} ms${seen}`);
}

/** The match of the first of `lines` that `pattern` matches, if any. */
function firstMatch(lines: readonly string[], pattern: RegExp) {
  for (const line of lines) {
    const match = pattern.exec(line);
    if (match) return match;
  }
}
