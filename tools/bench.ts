/**
 * Measures main.ts against the targets of the project, each figure taken in
 * the same run as its peer, and prints them as a Markdown table.
 *
 * ```sh
 * deno task bench            # the full run, about a minute
 * deno task bench --quick    # smaller numbers, a few seconds: checks it runs
 * ```
 *
 * Requests per second use wrk when it is installed (Debian: `apt-get install
 * wrk`), and a Deno client otherwise; the table says which.
 *
 * @module
 */

import { type Address, readResponse, send, writeAll } from "./clients.ts";
import { startNginx } from "./nginx.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";

const quick = Deno.args.includes("--quick");
const unknown = Deno.args.filter((arg) => arg !== "--quick");
if (unknown.length > 0) {
  console.error(
    `error: Unknown argument "${unknown[0]}"\nUsage: bench.ts [--quick]`,
  );
  Deno.exit(2);
}

const SIZES = quick
  ? { burst: 20, inFlight: 100, samples: 200, loadSeconds: 1, held: 1000 }
  : {
    burst: 100,
    inFlight: 1000,
    samples: 2000,
    loadSeconds: 5,
    held: 10_000,
  };
const SLEEP_MS = 200;
const DENO_SERVE = new URL("./deno_serve.ts", import.meta.url).href;
const KiB = 1024;

const addressOf = (server: ServerProcess): Address => ({
  hostname: "127.0.0.1",
  port: server.port,
});
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One request on a new connection; throws unless it is answered 200. */
async function get(addr: Address, path: string): Promise<void> {
  using conn = await Deno.connect(addr);
  await writeAll(
    conn,
    `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
  );
  const response = await readResponse(conn);
  if (!response.startsWith("HTTP/1.1 200 ")) {
    throw new Error(`${path}: ${response.slice(0, 40)}`);
  }
}

/** Wall time for `count` simultaneous /sleep requests, in milliseconds. */
async function burst(
  mode: "serial" | "concurrent",
  count: number,
): Promise<number> {
  await using server = await startServerProcess([
    mode,
    `--sleep-ms=${SLEEP_MS}`,
  ]);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: count }, () => get(addressOf(server), "/sleep")),
  );
  return performance.now() - started;
}

/** Latency of / in milliseconds, one new connection each, with `inFlight` /sleep requests held open. */
async function latencyUnderLoad(
  inFlight: number,
  samples: number,
): Promise<number[]> {
  await using server = await startServerProcess([
    "concurrent",
    "--sleep-ms=600000",
    "--grace-ms=0",
  ]);
  const addr = addressOf(server);
  const slow = [];
  for (let i = 0; i < inFlight; i++) {
    slow.push(
      (await send(addr, "GET /sleep HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        .response,
    );
  }
  await delay(500);
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await get(addr, "/");
    latencies.push(performance.now() - started);
  }
  await server.stop();
  await Promise.all(slow); // dropped at the end of the grace period: empty answers
  return latencies.sort((a, b) => a - b);
}

function percentile(sorted: number[], p: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))
  ];
}

/** Whether `command` can be run at all (it may exit non-zero with `args`). */
async function installed(command: string, args: string[]): Promise<boolean> {
  try {
    await new Deno.Command(command, { args, stdout: "null", stderr: "null" })
      .output();
    return true;
  } catch {
    return false;
  }
}

/** Requests per second of /, a new connection each, with wrk or else a Deno client. */
async function requestsPerSecond(
  port: number,
  seconds: number,
  useWrk: boolean,
): Promise<number> {
  const url = `http://127.0.0.1:${port}/`;
  if (useWrk) {
    const { stdout } = await new Deno.Command("wrk", {
      args: ["-t1", "-c32", `-d${seconds}s`, "-H", "Connection: close", url],
    }).output();
    const report = new TextDecoder().decode(stdout);
    if (/Non-2xx|Socket errors: connect [1-9]/.test(report)) {
      throw new Error(`wrk saw errors:\n${report}`);
    }
    return Number(/Requests\/sec:\s+([\d.]+)/.exec(report)?.[1]);
  }
  const until = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (performance.now() < until) {
      await get({ hostname: "127.0.0.1", port }, "/");
      done++;
    }
  }));
  return done / seconds;
}

/** Resident memory per connection, with `count` connections held open mid-head. */
async function residentPerConnection(
  server: ServerProcess,
  count: number,
): Promise<number> {
  const addr = addressOf(server);
  for (let i = 0; i < 200; i++) await get(addr, "/"); // warm up
  await delay(500);
  const before = await server.residentBytes();
  const half = new TextEncoder().encode("GET / HTTP/1.1\r\nHo");
  const held: Deno.Conn[] = [];
  for (let i = 0; i < count; i += 500) {
    held.push(
      ...await Promise.all(
        Array.from({ length: Math.min(500, count - i) }, async () => {
          const conn = await Deno.connect(addr);
          await conn.write(half);
          return conn;
        }),
      ),
    );
  }
  await delay(1500);
  const after = await server.residentBytes();
  for (const conn of held) conn.close();
  return (after - before) / count;
}

async function machine(): Promise<string> {
  // Deno reads /proc only with --allow-all; sh reads it for us.
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", "grep -m 1 '^model name' /proc/cpuinfo | cut -d : -f 2"],
  }).output();
  const cpu = new TextDecoder().decode(stdout).trim() || "unknown CPU";
  return `${cpu}, ${navigator.hardwareConcurrency} cores, ${Deno.build.os}, Deno ${Deno.version.deno}`;
}

if (import.meta.main) {
  const rows: string[][] = [];
  const row = (...cells: (string | number)[]) => {
    rows.push(cells.map(String));
    console.error(`  ${cells.join(" | ")}`);
  };
  const fixed = (n: number, digits = 1) => n.toFixed(digits);

  console.error(`Benchmarking${quick ? " (quick)" : ""} on ${await machine()}`);

  const concurrentMs = await burst("concurrent", SIZES.burst);
  const serialMs = await burst("serial", SIZES.burst);
  row(
    `${SIZES.burst} simultaneous /sleep (D = ${SLEEP_MS} ms), wall time`,
    `concurrent ${fixed(concurrentMs / SLEEP_MS, 2)} D`,
    `serial ${fixed(serialMs / SLEEP_MS)} D`,
    "concurrent ≤ 1.2 D",
    concurrentMs <= 1.2 * SLEEP_MS ? "yes" : "no",
  );

  const latencies = await latencyUnderLoad(SIZES.inFlight, SIZES.samples);
  const p99 = percentile(latencies, 99);
  row(
    `latency of / with ${SIZES.inFlight} /sleep in flight (${SIZES.samples} requests)`,
    `p50 ${fixed(percentile(latencies, 50), 2)} ms, p99 ${fixed(p99, 2)} ms`,
    "",
    "p99 ≤ 10 ms",
    p99 <= 10 ? "yes" : "no",
  );

  const useWrk = await installed("wrk", ["--version"]);
  const client = useWrk
    ? "wrk -t1 -c32, Connection: close"
    : "Deno client, 32 connections";
  // The load generator may be the limit rather than the server: the server's
  // CPU time per request says how much work each really does.
  const cpuPerRequestUs: Record<string, number[]> = {};
  const rate = async (args: string[], script?: string) => {
    await using server = await startServerProcess(args, { script });
    const cpuBefore = await server.cpuSeconds();
    const perSecond = await requestsPerSecond(
      server.port,
      SIZES.loadSeconds,
      useWrk,
    );
    const cpuUs = (await server.cpuSeconds() - cpuBefore) * 1e6;
    (cpuPerRequestUs[script ?? args.join(" ")] ??= []).push(
      cpuUs / (perSecond * SIZES.loadSeconds),
    );
    return perSecond;
  };
  // Deno.serve prints nothing per request, so the like-for-like run is the
  // quiet one. Both take turns, three times, and each keeps its median, so
  // that a passing disturbance of the machine does not decide the ratio.
  const quietRates: number[] = [];
  const peerRates: number[] = [];
  for (let round = 0; round < 3; round++) {
    quietRates.push(await rate(["concurrent", "--quiet"]));
    peerRates.push(await rate([], DENO_SERVE));
  }
  const median = (rates: number[]) => rates.sort((a, b) => a - b)[1];
  const [quietRate, peerRate] = [median(quietRates), median(peerRates)];
  const [quietCpu, peerCpu] = [
    median(cpuPerRequestUs["concurrent --quiet"]),
    median(cpuPerRequestUs[DENO_SERVE]),
  ];
  // What the log line costs, its output read by this script through a pipe.
  const loggingRate = await rate(["concurrent"]);
  row(
    `requests/s of /, new connection each (${client}, ${SIZES.loadSeconds} s)`,
    `${fixed(quietRate, 0)} with --quiet`,
    `Deno.serve ${fixed(peerRate, 0)} (${fixed(quietRate / peerRate, 2)}×)`,
    "≥ 1.0× Deno.serve",
    quietRate >= peerRate ? "yes" : "no",
  );
  row(
    "server CPU time per request in that run",
    `${fixed(quietCpu)} µs`,
    `Deno.serve ${fixed(peerCpu)} µs (${fixed(quietCpu / peerCpu, 2)}×)`,
    "",
    "",
  );
  if (await installed("nginx", ["-v"])) {
    try {
      await using nginx = await startNginx();
      const nginxRate = await requestsPerSecond(
        nginx.port,
        SIZES.loadSeconds,
        useWrk,
      );
      row(
        "the same against nginx, one worker",
        `${fixed(quietRate, 0)} with --quiet`,
        `nginx ${fixed(nginxRate, 0)} (${fixed(quietRate / nginxRate, 2)}×)`,
        "",
        "",
      );
    } catch (error) {
      // nginx is an optional peer: its failure must not hide the rest.
      const why = (error as Error).message.split("\n")[0];
      row("the same against nginx", "", `failed: ${why}`, "", "");
    }
  } else {
    row("the same against nginx", "", "not installed here", "", "");
  }
  row(
    "the same, logging each request",
    `${fixed(loggingRate, 0)}`,
    `${fixed(loggingRate / peerRate, 2)}× Deno.serve`,
    "",
    "",
  );

  for (
    const [label, v8Flags] of [["V8 defaults", undefined], [
      "young generation capped",
      "--max-semi-space-size=1",
    ]] as const
  ) {
    let oursKiB: number, peerKiB: number;
    {
      await using server = await startServerProcess([
        "concurrent",
        "--head-timeout-ms=600000",
      ], { v8Flags });
      oursKiB = await residentPerConnection(server, SIZES.held) / KiB;
    }
    {
      await using server = await startServerProcess([], {
        script: DENO_SERVE,
        v8Flags,
      });
      peerKiB = await residentPerConnection(server, SIZES.held) / KiB;
    }
    row(
      `resident memory per connection, ${SIZES.held} held mid-head (${label})`,
      `${fixed(oursKiB)} KiB`,
      `Deno.serve ${fixed(peerKiB)} KiB`,
      "≤ 8 KiB",
      oursKiB <= 8 ? "yes" : "no",
    );
  }

  console.log(`Measured on ${await machine()}${quick ? " (quick)" : ""}\n`);
  console.log("| measure | main.ts | peer | target | met |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const cells of rows) console.log(`| ${cells.join(" | ")} |`);
}
