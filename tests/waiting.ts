/**
 * How the tests wait: for what they mean, never for a fixed time. A test
 * has a deadline ({@linkcode withDeadline}), and inside it waits for a line
 * (a log line, a trace event) or a condition ({@linkcode waitFor}). What a
 * setting times is bounded by that setting, not by a figure far from it
 * ({@linkcode assertWithinSet}).
 *
 * @module
 */

import { assertLess } from "@std/assert";
import { deadline, delay } from "@std/async";

/** How long a test that talks to a server may take, unless it says. */
export const DEADLINE_MS = 60_000;

/** How long {@linkcode waitFor} waits, unless told: well within a deadline. */
export const WAIT_MS = 30_000;

/**
 * How much later than it was set to a timer's effect may be seen, unless
 * told: on a machine with a core kept busy and the test files run in
 * parallel, a process or a timer may be late by this much, and not more.
 */
export const LATE_MS = 2000;

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

/** A time a test set, and what it would be with the setting ignored. */
export interface SetTime {
  /** The time set, in milliseconds, such as a head timeout of 300. */
  setMs: number;
  /** The time it would be with the setting ignored, such as its default. */
  unsetMs: number;
  /** How late it may come; {@linkcode LATE_MS} unless given. */
  lateMs?: number;
}

/**
 * Asserts that `elapsedMs`, the time something took that a setting bounds,
 * is less than the time set and the lateness a busy machine may add; and
 * first, that this bound is below the time it would take with the setting
 * ignored, so that the assertion can fail: a test of a 300 ms timeout that
 * only checks it is under 10 s passes with the timeout ignored.
 *
 * @example
 * ```ts ignore
 * const started = performance.now();
 * await idleConnectionClosed(); // by a head timeout of 300 ms
 * assertWithinSet(performance.now() - started, {
 *   setMs: 300,
 *   unsetMs: DEFAULTS.headTimeoutMs,
 * });
 * ```
 */
export function assertWithinSet(
  elapsedMs: number,
  { setMs, unsetMs, lateMs = LATE_MS }: SetTime,
  message?: string,
): void {
  const boundMs = setMs + lateMs;
  if (boundMs >= unsetMs) {
    throw new RangeError(
      `A bound of ${setMs} + ${lateMs} ms cannot tell ${setMs} ms from ${unsetMs} ms`,
    );
  }
  const took = `took ${Math.round(elapsedMs)} ms, set to ${setMs} ms`;
  assertLess(elapsedMs, boundMs, message ? `${message}: ${took}` : took);
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
