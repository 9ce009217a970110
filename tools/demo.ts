/**
 * The async book's slow-request experiment in one command: for serial mode,
 * concurrent mode, concurrent mode with the CPU-bound `/block` and with its
 * two cures (`/block-sliced`, `/block-worker`), and parallel mode with
 * `/block`, start `main.ts`, send one slow request, then a few `/` shortly
 * after, and draw when each request was sent and when its answer came back.
 *
 * ```sh
 * deno task demo                  # /sleep waits, /block spins, 1500 ms
 * deno task demo --sleep-ms=3000
 * ```
 *
 * @module
 */

import { duration } from "../probe/verdict.js";
import { axis, row, type Timing } from "../probe/timeline.ts";
import { send } from "./clients.ts";
import { startServerProcess } from "./server_process.ts";

interface Scenario {
  mode: "serial" | "concurrent" | "parallel";
  slow: "/sleep" | "/block" | "/block-sliced" | "/block-worker";
  /** How many `/` follow the slow request. */
  fast: number;
}

const SCENARIOS: Scenario[] = [
  { mode: "serial", slow: "/sleep", fast: 3 },
  { mode: "concurrent", slow: "/sleep", fast: 3 },
  { mode: "concurrent", slow: "/block", fast: 3 },
  // The cures: the same spin, in slices or in a Worker.
  { mode: "concurrent", slow: "/block-sliced", fast: 3 },
  { mode: "concurrent", slow: "/block-worker", fast: 3 },
  // Two workers, whatever the CPUs, so that about half of / wait; more
  // requests, so that both halves surely show.
  { mode: "parallel", slow: "/block", fast: 6 },
];

/** Runs one scenario and returns, for each request, when it was sent and answered. */
async function run(
  { mode, slow, fast }: Scenario,
  sleepMs: number,
): Promise<Timing[]> {
  const parallel = mode === "parallel";
  await using server = await startServerProcess(
    [mode, `--sleep-ms=${sleepMs}`, ...(parallel ? ["--workers=2"] : [])],
    { denoFlags: parallel ? ["--unstable-net"] : [] },
  );
  const addr = { hostname: "127.0.0.1", port: server.port };
  const started = performance.now();
  const since = () => performance.now() - started;
  const request = async (path: string) => {
    const sentMs = since();
    const { response } = await send(
      addr,
      `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    );
    const answer = await response;
    if (!answer.startsWith("HTTP/1.1 200 ")) {
      throw new Error(`${path} was answered ${answer.slice(0, 30)}`);
    }
    return { path, sentMs, answeredMs: since() };
  };
  const requests = [request(slow)];
  // Shortly after the slow request, and while it is surely still running.
  const gapMs = Math.min(200, sleepMs / (fast + 1));
  for (let i = 1; i <= fast; i++) {
    await new Promise((resolve) => setTimeout(resolve, gapMs));
    requests.push(request("/"));
  }
  return await Promise.all(requests);
}

/** One line that says what the `/` requests went through. */
function verdict(
  { mode, slow }: Scenario,
  timings: Timing[],
  sleepMs: number,
): string {
  const waits = timings.filter((timing) => timing.path === "/").map((timing) =>
    timing.answeredMs - timing.sentMs
  );
  const longest = Math.max(...waits);
  const label = slow === "/sleep" ? mode : `${mode} + ${slow}`;
  if (mode === "parallel") {
    // Those on the blocked worker are answered when /block is, or later.
    const blockEnd = timings[0].answeredMs;
    const waited = timings.filter((timing) =>
      timing.path === "/" && timing.answeredMs > blockEnd - 100
    ).length;
    return `${label}: ${waited} of ${waits.length} / waited: the kernel picks a worker per connection; which get the blocked one is luck`;
  }
  if (longest > sleepMs / 2) {
    return `${label}: / waited up to ${duration(longest)} behind ${slow}`;
  }
  // A cure costs time of its own: the slices' turns, the Worker's start.
  const took = timings[0].answeredMs - timings[0].sentMs;
  const cost = slow === "/sleep"
    ? ""
    : `; it took ${duration(took - sleepMs)} more than its ${
      duration(sleepMs)
    } of spin`;
  return `${label}: / answered in ${
    duration(longest)
  } or less while ${slow} ran${cost}`;
}

function parseSleepMs(args: string[]): number {
  const [arg, ...rest] = args;
  if (arg === undefined) return 1500;
  const value = /^--sleep-ms=(\d+)$/.exec(arg)?.[1];
  if (value === undefined || rest.length > 0 || Number(value) < 100) {
    throw new TypeError(
      `Expected nothing or --sleep-ms=N (N ≥ 100), not "${args.join(" ")}"`,
    );
  }
  return Number(value);
}

if (import.meta.main) {
  let sleepMs: number;
  try {
    sleepMs = parseSleepMs(Deno.args);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(2);
  }
  const results: Timing[][] = [];
  for (const scenario of SCENARIOS) results.push(await run(scenario, sleepMs));

  const axisMs = Math.max(...results.flat().map((timing) => timing.answeredMs));
  console.log(
    `One slow request, then a few /. /sleep waits, and /block and its cures spin, ${sleepMs} ms\n`,
  );
  SCENARIOS.forEach((scenario, i) => {
    const workers = scenario.mode === "parallel" ? " (2 workers)" : "";
    // As wide as the slow request's path, and no less than before the cures.
    const width = Math.max(7, scenario.slow.length + 1);
    console.log(`${scenario.mode} mode${workers}, ${scenario.slow}`);
    for (const timing of results[i]) console.log(row(timing, axisMs, width));
    console.log(`${axis(axisMs, width)}\n`);
  });
  SCENARIOS.forEach((scenario, i) =>
    console.log(verdict(scenario, results[i], sleepMs))
  );
}
