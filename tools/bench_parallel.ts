/**
 * Parallel mode against `deno serve --parallel`, each with the same number
 * of threads, in the same run: requests per second of `/` with 1, 2 and
 * all-CPU workers, and resident memory per worker. `deno task bench` runs it
 * after bench.ts, with the same arguments.
 *
 * ```sh
 * deno task bench            # both tables
 * deno task bench --quick    # smaller numbers: checks it runs
 * ```
 *
 * It needs wrk (Debian: `apt-get install wrk`): a client in Deno would be
 * slower than the servers it measures.
 *
 * @module
 */

import { readResponse, writeAll } from "./clients.ts";
import { folder, spawnServer, startServerProcess } from "./server_process.ts";

const quick = Deno.args.includes("--quick");
// bench.ts alone measures --versus: parallel mode is not compared then.
if (Deno.args.some((arg) => arg.startsWith("--versus="))) Deno.exit(0);
const unknown = Deno.args.filter((arg) => arg !== "--quick");
if (unknown.length > 0) {
  console.error(
    `error: Unknown argument "${
      unknown[0]
    }"\nUsage: bench_parallel.ts [--quick]`,
  );
  Deno.exit(2);
}

const SECONDS = quick ? 1 : 5;
const ROUNDS = quick ? 1 : 3;
const CPUS = navigator.hardwareConcurrency;
const COUNTS = [...new Set([1, 2, CPUS])].sort((a, b) => a - b);
const PEER = new URL("./deno_serve_parallel.ts", import.meta.url);
const MiB = 1024 * 1024;

/** A server under test: where it listens and what it holds in memory. */
interface Server extends AsyncDisposable {
  port: number;
  residentBytes(): Promise<number>;
}

/** main.ts in parallel mode with `workers` workers, not logging. */
async function startMain(workers: number): Promise<Server> {
  return await startServerProcess(
    ["parallel", `--workers=${workers}`, "--quiet"],
    { denoFlags: ["--unstable-net"] },
  );
}

/**
 * `deno serve --parallel` with `DENO_JOBS=jobs`, serving the peer module; it
 * says where it listens on stderr ("deno serve: Listening on …").
 */
function startDenoServe(jobs: number): Promise<Server> {
  return spawnServer("deno", [
    "serve",
    "--parallel",
    `--allow-read=${folder}`,
    "--host=127.0.0.1",
    "--port=0",
    PEER.href,
  ], { env: { DENO_JOBS: String(jobs) } });
}

/** Requests per second of /, a new connection each, from wrk on one thread. */
async function requestsPerSecond(port: number): Promise<number> {
  const { stdout } = await new Deno.Command("wrk", {
    args: [
      "-t1",
      "-c32",
      `-d${SECONDS}s`,
      "-H",
      "Connection: close",
      `http://127.0.0.1:${port}/`,
    ],
  }).output();
  const report = new TextDecoder().decode(stdout);
  if (/Non-2xx|Socket errors: connect [1-9]/.test(report)) {
    throw new Error(`wrk saw errors:\n${report}`);
  }
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(report)?.[1]);
}

/**
 * Requests per second of main.ts and of its peer with `threads` threads
 * each: they take turns, a new server each round, and each keeps its
 * median, so that a passing disturbance of the machine does not decide.
 */
async function rates(threads: number): Promise<[number, number]> {
  const runs: [number[], number[]] = [[], []];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, start] of [startMain, startDenoServe].entries()) {
      await using server = await start(threads);
      runs[i].push(await requestsPerSecond(server.port));
    }
  }
  const median = (all: number[]) =>
    all.sort((a, b) => a - b)[Math.floor(all.length / 2)];
  return [median(runs[0]), median(runs[1])];
}

/**
 * Resident memory per worker: what four workers hold beyond one, over
 * three, each server idle after a few requests (so that every worker has
 * served). Memory does not depend on the CPUs, so four on any machine.
 */
async function residentPerWorker(
  start: (threads: number) => Promise<Server>,
): Promise<{ one: number; perWorker: number }> {
  const resident = async (threads: number) => {
    await using server = await start(threads);
    for (let i = 0; i < 100; i++) {
      using conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      await writeAll(conn, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
      await readResponse(conn);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return await server.residentBytes();
  };
  const one = await resident(1);
  return { one, perWorker: (await resident(4) - one) / 3 };
}

async function installed(command: string): Promise<boolean> {
  try {
    await new Deno.Command(command, { args: ["--version"], stdout: "null" })
      .output();
    return true;
  } catch {
    return false;
  }
}

async function cpuModel(): Promise<string> {
  // Deno reads /proc only with --allow-all; sh reads it for us.
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", "grep -m 1 '^model name' /proc/cpuinfo | cut -d : -f 2"],
  }).output();
  return new TextDecoder().decode(stdout).trim() || "unknown CPU";
}

if (import.meta.main) {
  const machine = `${await cpuModel()}, ${CPUS} cores, ${Deno.build.os}`;
  console.log(
    `\nParallel mode against deno serve --parallel, on ${machine}${
      quick ? " (quick)" : ""
    }\n`,
  );
  if (Deno.build.os !== "linux") {
    console.log("Skipped: parallel mode shares its port on Linux only");
    Deno.exit(0);
  }
  if (!await installed("wrk")) {
    console.log("Skipped: wrk is not installed (apt-get install wrk)");
    Deno.exit(0);
  }
  const load =
    `wrk -t1 -c32, Connection: close, ${SECONDS} s, median of ${ROUNDS}`;
  console.log(
    "| workers | main.ts parallel, requests/s | deno serve --parallel, requests/s | ratio |",
  );
  console.log("| --- | --- | --- | --- |");
  for (const threads of COUNTS) {
    const [ours, peer] = await rates(threads);
    const all = threads === CPUS ? " (all CPUs)" : "";
    console.log(
      `| ${threads}${all} | ${ours.toFixed(0)} | ${peer.toFixed(0)} | ${
        (ours / peer).toFixed(2)
      }× |`,
    );
  }
  const [ours, peer] = [
    await residentPerWorker(startMain),
    await residentPerWorker(startDenoServe),
  ];
  const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
  console.log(
    `\nRequests per second: ${load}.\nResident memory, idle: main.ts ${
      mib(ours.one)
    } with one worker and ${mib(ours.perWorker)} per worker more; deno serve ${
      mib(peer.one)
    } and ${mib(peer.perWorker)}.`,
  );
}
