/**
 * Starts `main.ts` as a process of its own, as a person runs it, for the
 * scripts in this folder: it can then be measured (resident memory, CPU
 * time) and constrained (open-files limit) from outside, like any server.
 * The benchmark's peers, which print the same first line, start the same way.
 *
 * @module
 */

const folder = Deno.realPathSync(new URL("../", import.meta.url));
const mainUrl = new URL("../main.ts", import.meta.url).href;

/** A running `main.ts`. */
export interface ServerProcess extends AsyncDisposable {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** Every line it has printed so far. */
  readonly lines: readonly string[];
  /** Its resident memory now, in bytes, as `ps` reports it. */
  residentBytes(): Promise<number>;
  /**
   * The most resident memory it has had so far, in bytes: the kernel's own
   * record of the peak (`VmHWM`; Linux), which no sampling can miss.
   */
  peakResidentBytes(): Promise<number>;
  /** The CPU time it has used so far, user and system, in seconds (Linux). */
  cpuSeconds(): Promise<number>;
  /** Whether it is still running. */
  running(): boolean;
  /** Sends SIGTERM and waits for it to exit. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Starts `main.ts --port=0` with `args` and waits for its first line.
 *
 * @param args More command-line arguments, such as `["serial"]`.
 * @param openFilesLimit When set, the process runs under `ulimit -n` of it.
 * @param v8Flags When set, passed to Deno as `--v8-flags`.
 * @param script When set, the script to run instead of `main.ts`, as a URL.
 * @param denoFlags More flags for `deno run`, such as `--unstable-net`.
 * @returns The running server.
 */
export async function startServerProcess(
  args: readonly string[],
  { openFilesLimit, v8Flags, script, denoFlags = [] }: {
    openFilesLimit?: number;
    v8Flags?: string;
    script?: string;
    denoFlags?: readonly string[];
  } = {},
): Promise<ServerProcess> {
  const name = script?.split("/").at(-1) ?? "main.ts";
  const deno = [
    "deno",
    "run",
    ...(v8Flags === undefined ? [] : [`--v8-flags=${v8Flags}`]),
    ...denoFlags,
    "--allow-net=127.0.0.1",
    `--allow-read=${folder}`,
    script ?? mainUrl,
    "--port=0",
    ...args,
  ];
  const [command, ...commandArgs] = openFilesLimit === undefined
    ? deno
    : ["sh", "-c", `ulimit -n ${openFilesLimit} && exec "$@"`, "sh", ...deno];
  const child = new Deno.Command(command, {
    args: commandArgs,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);

  // Read every line as it comes: a server whose stdout pipe fills up would
  // stall on its next log line, and that is not what is being measured.
  const lines: string[] = [];
  const listening = Promise.withResolvers<string>();
  const reading = (async () => {
    let partial = "";
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      for (const line of parts) {
        if (lines.length === 0) listening.resolve(line);
        lines.push(line);
      }
    }
    listening.reject(
      new Error(`${name} ${args.join(" ")} exited before it listened`),
    );
  })();

  const firstLine = await listening.promise;
  const port = Number(
    /^Listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(firstLine)?.[1],
  );
  if (!port) {
    throw new Error(`Unexpected first line from ${name}: ${firstLine}`);
  }

  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    const [status] = await Promise.all([child.status, reading]);
    return status;
  };
  return {
    port,
    lines,
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
    running: () => !exited,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
