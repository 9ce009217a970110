/**
 * The one way to start a server as a process of its own, for the tests and
 * the scripts in tools/ alike: `main.ts` or a benchmark peer as a person
 * runs it ({@linkcode startServerProcess}), or any command whose output
 * says "Listening on", such as `deno task start` or a terminal that runs it
 * ({@linkcode spawnServer}). Every line it prints is kept as it comes, its
 * "Listening on" line is read by one parser ({@linkcode parseListening}),
 * and it can be measured from outside (resident memory, CPU time).
 *
 * @module
 */

import type { Address } from "./clients.ts";

/** The project folder, where main.ts, deno.json and the pages are. */
export const folder: string = Deno.realPathSync(
  new URL("../", import.meta.url),
);
const mainUrl = new URL("../main.ts", import.meta.url).href;
/** Outside the project: main.ts must find its pages beside itself. */
const elsewhere = new URL("../../", import.meta.url);

/**
 * Whether this system lacks the Unix signals that stop main.ts gracefully.
 * On Windows, Deno listens only for Ctrl-C and Ctrl-Break, and a signal sent
 * to a process ends it at once, so no graceful stop can be seen: tests that
 * signal main.ts and check how it stopped are ignored there.
 */
export const noSignals: boolean = Deno.build.os === "windows";

// ---------------------------------------------------------------------------
// The "Listening on" line

/** What a "Listening on" line says. */
export interface Listening {
  /** The URL it names, with the final slash: `http://127.0.0.1:7878/`. */
  readonly url: string;
  /** The address in that URL, IPv6 without brackets. */
  readonly addr: Address;
  /** The first word in the brackets after it, such as "serial", if any. */
  readonly mode: string | undefined;
}

/**
 * Reads a "Listening on http://host:port/ (mode…)" line, as main.ts,
 * small_server.ts and the benchmark's peers print it, and `deno serve`
 * after a prefix; undefined for any other line.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const { addr, mode } = parseListening(
 *   "Listening on http://[::1]:7878/ (parallel, 2 workers); run the lab",
 * )!;
 * assertEquals(addr, { hostname: "::1", port: 7878 });
 * assertEquals(mode, "parallel");
 * ```
 */
export function parseListening(line: string): Listening | undefined {
  const match =
    /Listening on (http:\/\/(\[[^\]\s]+\]|[^/:\s]+):(\d+)\/)(?: \(([^,;)]+))?/
      .exec(line);
  if (!match) return undefined;
  const [, url, host, port, mode] = match;
  const hostname = host.replace(/^\[(.*)\]$/, "$1");
  return { url, addr: { hostname, port: Number(port) }, mode };
}

// ---------------------------------------------------------------------------
// Any command

/** A server running as a process, once it has said where it listens. */
export interface ServerProcess extends Listening, AsyncDisposable {
  /** The port it listens on. */
  readonly port: number;
  /** The line that said where it listens, without the line end. */
  readonly listeningLine: string;
  /**
   * Every line it has printed so far, on standard output and (when piped)
   * standard error, as they came, without line ends.
   */
  readonly lines: readonly string[];
  /** Sends it `signal`, unless it has exited. */
  kill(signal: Deno.Signal): void;
  /** Writes `text` to its standard input, which must be piped. */
  write(text: string): Promise<void>;
  /** Once it exits: its exit code, its standard output and its stderr. */
  exited(): Promise<{ code: number; output: string; stderr: string }>;
  /** Whether it is still running. */
  running(): boolean;
  /** Sends SIGTERM and waits for it to exit. */
  stop(): Promise<Deno.CommandStatus>;
  /** Its resident memory now, in bytes, as `ps` reports it. */
  residentBytes(): Promise<number>;
  /**
   * The most resident memory it has had so far, in bytes: the kernel's own
   * record of the peak (`VmHWM`; Linux), which no sampling can miss.
   */
  peakResidentBytes(): Promise<number>;
  /** The CPU time it has used so far, user and system, in seconds (Linux). */
  cpuSeconds(): Promise<number>;
}

/** How {@linkcode spawnServer} runs a command. */
export interface SpawnOptions {
  /** The working folder; this process's unless given. */
  cwd?: string | URL;
  /** The environment, on top of this process's. */
  env?: Record<string, string>;
  /** "piped" to {@linkcode ServerProcess.write} to it; "null" by default. */
  stdin?: "piped" | "null";
  /** Its whole standard input, such as a program for `deno run -`. */
  input?: string;
  /** "inherit" to show its stderr as it comes; "piped" (kept) by default. */
  stderr?: "piped" | "inherit";
  /**
   * For a program that says where it listens in its own words, such as
   * `php -S` ("Development Server (http://127.0.0.1:8080) started"): its
   * line as a "Listening on" line, or undefined for any other line.
   */
  asListening?: (line: string) => string | undefined;
}

/**
 * Runs `command` with `args` and waits until it prints a "Listening on"
 * line, on either stream; rejects, with what it printed, if it exits first.
 * Disposing of it kills it (SIGKILL) if it still runs, and waits.
 */
export async function spawnServer(
  command: string,
  args: readonly string[],
  { cwd, env, input, stderr = "piped", asListening, ...options }: SpawnOptions =
    {},
): Promise<ServerProcess> {
  const stdin = input === undefined ? options.stdin ?? "null" : "piped";
  const child = new Deno.Command(command, {
    args: [...args],
    cwd,
    env,
    stdin,
    stdout: "piped",
    stderr,
  }).spawn();
  let running = true;
  const status = child.status.finally(() => running = false);
  const keyboard = stdin === "piped" ? child.stdin.getWriter() : undefined;
  if (input !== undefined) {
    await keyboard!.write(new TextEncoder().encode(input));
    await keyboard!.close();
  }

  // Read every line as it comes: a server whose pipe fills up would stall
  // on its next line, and that is not what is being tested or measured.
  const lines: string[] = [];
  const printed = { stdout: "", stderr: "" };
  const listening = Promise.withResolvers<Listening & { line: string }>();
  const read = async (from: "stdout" | "stderr") => {
    let partial = "";
    const add = (line: string) => {
      lines.push(line.replace(/\r$/, ""));
      const said = parseListening(asListening?.(line) ?? line);
      if (said) listening.resolve({ ...said, line: lines.at(-1)! });
    };
    for await (
      const text of child[from].pipeThrough(new TextDecoderStream())
    ) {
      printed[from] += text;
      const parts = (partial + text).split("\n");
      partial = parts.pop()!;
      parts.forEach(add);
    }
    if (partial) add(partial);
  };
  const reading = Promise.all([
    read("stdout"),
    stderr === "piped" ? read("stderr") : undefined,
  ]);
  const ended = () => {
    const name = [command, ...args].join(" ");
    const said = lines.join("\n");
    listening.reject(new Error(`${name} ended before it listened:\n${said}`));
  };
  reading.then(ended, ended);

  let exit: Promise<{ code: number; output: string; stderr: string }>;
  const exited = () =>
    exit ??= (async () => {
      await keyboard?.close().catch(() => {});
      const [{ code }] = await Promise.all([status, reading]);
      return { code, output: printed.stdout, stderr: printed.stderr };
    })();
  const kill = (signal: Deno.Signal) => {
    try {
      if (running) child.kill(signal);
    } catch {
      // It has just exited.
    }
  };

  let said;
  try {
    said = await listening.promise;
  } catch (error) {
    kill("SIGKILL");
    await exited();
    throw error;
  }
  const { line: listeningLine, ...where } = said;
  return {
    ...where,
    port: where.addr.port,
    listeningLine,
    lines,
    kill,
    async write(text) {
      await keyboard!.write(new TextEncoder().encode(text));
    },
    exited,
    running: () => running,
    async stop() {
      kill("SIGTERM");
      await exited();
      return await status;
    },
    async residentBytes() {
      // Deno reads /proc/<pid> only with --allow-all; ps reads it for us.
      const { stdout } = await new Deno.Command("ps", {
        args: ["-o", "rss=", "-p", String(child.pid)],
      }).output();
      return Number(new TextDecoder().decode(stdout).trim()) * 1024;
    },
    async peakResidentBytes() {
      const { stdout } = await new Deno.Command("sh", {
        args: ["-c", `grep '^VmHWM:' /proc/${child.pid}/status`],
      }).output();
      const kiB = /(\d+) kB/.exec(new TextDecoder().decode(stdout))?.[1];
      return Number(kiB) * 1024;
    },
    async cpuSeconds() {
      // Fields 14 and 15 of /proc/<pid>/stat, in clock ticks; see proc(5).
      const { stdout } = await new Deno.Command("sh", {
        args: [
          "-c",
          `cut -d " " -f 14,15 /proc/${child.pid}/stat; getconf CLK_TCK`,
        ],
      }).output();
      const [user, system, ticksPerSecond] = new TextDecoder().decode(stdout)
        .split(/\s+/).map(Number);
      return (user + system) / ticksPerSecond;
    },
    async [Symbol.asyncDispose]() {
      kill("SIGKILL");
      await exited();
    },
  };
}

// ---------------------------------------------------------------------------
// main.ts, or a peer, as a person runs it

/** How `deno run` runs main.ts (or a peer). */
export interface RunOptions {
  /** The URL of the script to run; the project's main.ts unless given. */
  script?: string;
  /** What `--allow-net` allows; 127.0.0.1 unless given. */
  allowNet?: string;
  /** What `--allow-read` allows; the project folder unless given, none if "". */
  allowRead?: string;
  /** More flags for `deno run`, such as `--unstable-net`. */
  denoFlags?: readonly string[];
  /** When set, passed to Deno as `--v8-flags`. */
  v8Flags?: string;
  /** The environment, on top of this process's. */
  env?: Record<string, string>;
}

/**
 * The arguments of `deno` that run the script with `args` as a person runs
 * a copy of it: without deno.json and with only the permissions given.
 */
export function denoRunArgs(
  args: readonly string[],
  {
    script = mainUrl,
    allowNet = "127.0.0.1",
    allowRead = folder,
    denoFlags = [],
    v8Flags,
  }: RunOptions = {},
): string[] {
  return [
    "run",
    "--no-config",
    ...(v8Flags === undefined ? [] : [`--v8-flags=${v8Flags}`]),
    ...denoFlags,
    `--allow-net=${allowNet}`,
    ...(allowRead ? [`--allow-read=${allowRead}`] : []),
    // A module served over HTTP is fetched anew, not taken from the cache.
    ...(script.startsWith("http") ? [`--reload=${new URL("/", script)}`] : []),
    script,
    ...args,
  ];
}

/**
 * `deno run main.ts` with `args`, as {@linkcode denoRunArgs} says, from a
 * folder outside the project, with stdout and stderr piped: for a run that
 * is expected to end by itself (`.output()`).
 */
export function mainCommand(
  args: readonly string[],
  { env, ...run }: RunOptions = {},
): Deno.Command {
  // "deno" from PATH, not Deno.execPath(): the test task may run only that.
  return new Deno.Command("deno", {
    args: denoRunArgs(args, run),
    cwd: elsewhere,
    env,
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * `deno run` with `denoFlags`, then `main.ts` and `args`, as a person types
 * it in the project folder: by its relative path, without deno.json, with
 * no prompt for a permission. Stdout and stderr are piped.
 */
export function mainInFolder(
  denoFlags: readonly string[],
  args: readonly string[],
): Deno.Command {
  return new Deno.Command("deno", {
    args: [
      "run",
      "--no-config",
      "--no-prompt",
      ...denoFlags,
      "main.ts",
      ...args,
    ],
    cwd: folder,
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Starts main.ts (or `options.script`) with `--port=0` and then `args`, as
 * {@linkcode mainCommand} runs it, and waits until it listens. A later
 * `--port=N` in `args` counts instead.
 *
 * @param args More command-line arguments, such as `["serial"]`.
 * @param options How to run it; `openFilesLimit` runs it under `ulimit -n`.
 * @returns The running server.
 */
export function startServerProcess(
  args: readonly string[],
  { openFilesLimit, stderr, env, ...run }:
    & RunOptions
    & Pick<SpawnOptions, "stderr">
    & { openFilesLimit?: number } = {},
): Promise<ServerProcess> {
  const deno = ["deno", ...denoRunArgs(["--port=0", ...args], run)];
  const [command, ...commandArgs] = openFilesLimit === undefined
    ? deno
    : ["sh", "-c", `ulimit -n ${openFilesLimit} && exec "$@"`, "sh", ...deno];
  return spawnServer(command, commandArgs, { cwd: elsewhere, env, stderr });
}
