/**
 * Requests drawn in a terminal, one bar per request from when it was sent
 * to when it was answered, on one time axis: how `deno task demo` and
 * probe.ts draw them. Durations are written by verdict.js's
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

import { duration } from "./verdict.js";

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
/** A run of this many groups drawn alike, or more, is folded. */
const FOLD_FROM = 4;

/** Where the bar of `timing` opens, begins and ends, in columns. */
function columnsOf(timing: Timing, axisMs: number): [number, number, number] {
  const { sentMs, answeredMs, openedMs = sentMs } = timing;
  const column = (ms: number) =>
    Math.min(BAR_COLUMNS, Math.round((ms / axisMs) * BAR_COLUMNS));
  // A request sent at the axis's end still gets one column.
  const from = Math.min(column(sentMs), BAR_COLUMNS - 1);
  const opened = Math.min(column(openedMs), from);
  const to = Math.min(Math.max(column(answeredMs), from + 1), BAR_COLUMNS);
  return [opened, from, to];
}

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
  const [opened, from, to] = columnsOf(timing, axisMs);
  const bar = " ".repeat(opened) + "░".repeat(from - opened) +
    "█".repeat(to - from) + " ".repeat(BAR_COLUMNS - to);
  return `  ${timing.path.padEnd(labelWidth)}|${bar}| ${
    duration(timing.answeredMs - timing.sentMs)
  }`;
}

/**
 * The rows of `groups` (such as a probe's steps: the requests it opened,
 * then the fast one), with each run of four or more groups drawn alike
 * (each bar within a column of the run's first) folded into its first and
 * last group and one line between that names the rest.
 *
 * @param groups The requests, in groups, in order.
 * @param axisMs The time at the axis's right end.
 * @param labelWidth How wide the labels are.
 * @returns The rows, without line ends.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const step = (n: number) => [{ path: `/ #${n}`, sentMs: n, answeredMs: 10 }];
 * const lines = rows([1, 2, 3, 4].map(step), 1000, 4);
 * assertEquals(lines.length, 3);
 * assertEquals(lines[1], "       ⋮ / #2 … / #3: 2 more drawn alike");
 * ```
 */
export function rows(
  groups: Timing[][],
  axisMs: number,
  labelWidth = 7,
): string[] {
  const columns = groups.map((group) =>
    group.map((timing) => columnsOf(timing, axisMs))
  );
  const alike = (a: number, b: number) =>
    columns[a].length === columns[b].length &&
    columns[a].every((bar, i) =>
      bar.every((column, j) => Math.abs(column - columns[b][i][j]) <= 1)
    );
  const drawn = (group: Timing[]) =>
    group.map((timing) => row(timing, axisMs, labelWidth));
  const lines: string[] = [];
  for (let first = 0; first < groups.length;) {
    let end = first + 1;
    while (end < groups.length && alike(first, end)) end++;
    if (end - first < FOLD_FROM) {
      lines.push(...groups.slice(first, end).flatMap(drawn));
    } else {
      const [from, to] = [groups[first + 1], groups[end - 2]];
      const names = from.map((t, i) => `${t.path} … ${to[i].path}`);
      lines.push(
        ...drawn(groups[first]),
        `  ${" ".repeat(labelWidth)} ⋮ ${names.join(", ")}: ${
          end - first - 2
        } more drawn alike`,
        ...drawn(groups[end - 1]),
      );
    }
    first = end;
  }
  return lines;
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
