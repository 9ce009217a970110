/**
 * Requests drawn in a terminal, one bar per request from when it was sent
 * to when it was answered, on one time axis: how `deno task demo` and
 * probe.ts draw them. Durations are written by probe_verdict.js's
 * `duration()`, as everywhere else.
 *
 * ```
 *   /sleep |██████████████████████████████████████████████████| 1.6 s
 *   /      |        ██████████████████████████████████████████| 1.3 s
 *           0 s                                            1.6 s
 * ```
 *
 * @module
 */

import { duration } from "./probe_verdict.js";

/** One request: its label and times, in milliseconds from one start. */
export interface Timing {
  /** What the row is labelled with, such as the request's path. */
  path: string;
  /** When its connection was opened, if before it was sent: drawn ░. */
  openedMs?: number;
  /** When it was sent. */
  sentMs: number;
  /** When it was answered. */
  answeredMs: number;
}

/** How many columns a bar may take. */
const BAR_COLUMNS = 50;

/**
 * One row: the label, a bar from when the request was sent to when it was
 * answered (after its idle connection, if any, drawn ░), and how long it
 * took from sent to answered.
 *
 * @param timing The request.
 * @param axisMs The time at the axis's right end.
 * @param labelWidth How wide the labels are.
 * @returns The row, without a line end.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const line = row({ path: "/", sentMs: 500, answeredMs: 1000 }, 1000, 1);
 * assertEquals(line, `  /|${" ".repeat(25)}${"█".repeat(25)}| 500 ms`);
 * ```
 */
export function row(timing: Timing, axisMs: number, labelWidth = 7): string {
  const { path, sentMs, answeredMs, openedMs = sentMs } = timing;
  const column = (ms: number) =>
    Math.min(BAR_COLUMNS, Math.round((ms / axisMs) * BAR_COLUMNS));
  // A request sent at the axis's end still gets one column.
  const from = Math.min(column(sentMs), BAR_COLUMNS - 1);
  const opened = Math.min(column(openedMs), from);
  const to = Math.min(Math.max(column(answeredMs), from + 1), BAR_COLUMNS);
  const bar = " ".repeat(opened) + "░".repeat(from - opened) +
    "█".repeat(to - from) + " ".repeat(BAR_COLUMNS - to);
  return `  ${path.padEnd(labelWidth)}|${bar}| ${
    duration(answeredMs - sentMs)
  }`;
}

/**
 * The time axis under the rows: 0 at the left, `axisMs` at the right.
 *
 * @param axisMs The time at the right end.
 * @param labelWidth How wide the rows' labels are.
 * @returns The axis, without a line end.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "@std/assert";
 * assertStringIncludes(axis(1600), "0 s");
 * ```
 */
export function axis(axisMs: number, labelWidth = 7): string {
  return `  ${" ".repeat(labelWidth)} 0 s${" ".repeat(BAR_COLUMNS - 6)}${
    duration(axisMs)
  }`;
}
