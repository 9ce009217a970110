/**
 * What the probe's tests share: probing a server and checking the
 * verdict's fields, running probe.ts as a person does, and whether a
 * program nobody here wrote may run (the test task allows it by the path
 * that allow_programs.ts finds).
 *
 * @module
 */

import { assertEquals } from "@std/assert";
import { probe, type ProbeOptions, type ProbeReport } from "../probe/probe.ts";
import { mainCommand } from "../tools/server_process.ts";

/** The URL of probe.ts, to run it as a program. */
export const probeScript: string =
  new URL("../probe/probe.ts", import.meta.url).href;

/** The fields of a probe's report that a test expects. */
export type Expected = Partial<
  Pick<
    ProbeReport,
    | "verdict"
    | "atOnce"
    | "atLeast"
    | "refused"
    | "slowAtOnce"
    | "method"
    | "idleHolds"
  >
>;

/** How a server that serves one connection at a time, to its end, reads. */
export const SERIAL: Expected = {
  verdict: "serial",
  atOnce: 1,
  atLeast: false,
  refused: 0,
  slowAtOnce: 1,
  method: "slow",
  idleHolds: true,
};

/** How a server reads that served all `n` slow requests it was sent at once. */
export const allAtOnce = (n: number): Expected => ({
  verdict: "concurrent",
  atOnce: n,
  atLeast: true,
  refused: 0,
  slowAtOnce: n,
  method: "slow",
  idleHolds: false,
});

/**
 * Probes `url` and checks the fields of `expected`; on a mismatch, the
 * message has the sentence and `log` (a server's lines).
 */
export async function expectProbe(
  url: string,
  expected: Expected,
  options: ProbeOptions = {},
  log: readonly string[] = [],
): Promise<ProbeReport> {
  const found = await probe(url, options);
  const seen = Object.fromEntries(
    Object.keys(expected).map((key) => [key, found[key as keyof Expected]]),
  );
  assertEquals(
    seen,
    expected,
    `${found.sentence}\n${found.meaning.join("\n")}\n${log.join("\n")}`,
  );
  return found;
}

/** Runs probe.ts as a person does, from outside the project, with net only. */
export function probeCommand(args: string[]): Deno.Command {
  return mainCommand(args, { script: probeScript, allowRead: "" });
}

/** Runs probe.ts with `args` to its end: its exit code and what it printed. */
export async function runProbe(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await probeCommand(args).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  // Deno's own lines as it downloads the standard library, the first time.
  const said = decode(stderr).replace(/^.*Download.*\n/gm, "");
  return { code, stdout: decode(stdout), stderr: said };
}

/**
 * Why a test of `program` is ignored here, or undefined if it may run: the
 * test task allows each program that allow_programs.ts finds on PATH.
 */
export function missing(program: string): string | undefined {
  const state = Deno.permissions.querySync({ name: "run", command: program });
  return state.state === "granted"
    ? undefined
    : `${program} is not installed here (or not allowed to run)`;
}
