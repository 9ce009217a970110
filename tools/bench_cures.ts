/**
 * What the cures for `/block` cost: main.ts as a process, in concurrent
 * mode, answers `/block`, `/block-sliced` and `/block-worker` one at a time
 * for a few `--sleep-ms`, and the table gives the server's time for each
 * (its `Server-Timing` `handle`), the median of a few requests, and what it
 * took beyond the spin itself. With `--sleep-ms=0` a cure's whole time is
 * its cost: a Worker's start, say. Parallel mode's row is a Worker started
 * from a worker thread, the way parallel mode's `/block-worker` starts one.
 * The figures are in docs/benchmarks.md.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read=. --allow-run=deno tools/bench_cures.ts
 * ```
 *
 * @module
 */

import { send } from "./clients.ts";
import { startServerProcess } from "./server_process.ts";

const ROUTES = ["/block", "/block-sliced", "/block-worker"];
const SLEEPS_MS = [0, 100, 1000];
const REQUESTS = 7;

/** The median of the server's times for `path`, sent `count` times in turn. */
async function serverMs(
  port: number,
  path: string,
  count: number,
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const { response } = await send(
      { hostname: "127.0.0.1", port },
      `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    );
    const answer = await response;
    const handle = /handle;dur=([\d.]+)/.exec(answer)?.[1];
    if (!answer.startsWith("HTTP/1.1 200 ") || handle === undefined) {
      throw new Error(`${path} was answered ${answer.slice(0, 30)}`);
    }
    times.push(Number(handle));
  }
  return times.sort((a, b) => a - b)[Math.floor(count / 2)];
}

/** One row of the table: the spin, then each of `routes`' time and cost. */
async function row(
  label: string,
  sleepMs: number,
  routes: string[],
  count: number,
  args: string[] = ["concurrent"],
  denoFlags: string[] = [],
): Promise<string> {
  await using server = await startServerProcess(
    [...args, `--sleep-ms=${sleepMs}`, "--quiet"],
    { denoFlags },
  );
  const cells = [];
  for (const route of ROUTES) {
    if (!routes.includes(route)) {
      cells.push("–");
      continue;
    }
    const ms = await serverMs(server.port, route, count);
    cells.push(`${ms.toFixed(1)} ms (+${(ms - sleepMs).toFixed(1)})`);
  }
  return `| ${label} | ${sleepMs} ms | ${cells.join(" | ")} |`;
}

if (import.meta.main) {
  console.log(`| mode | spin | ${ROUTES.join(" | ")} |`);
  console.log(`| --- | --- | ${ROUTES.map(() => "---").join(" | ")} |`);
  for (const sleepMs of SLEEPS_MS) {
    console.log(await row("concurrent", sleepMs, ROUTES, REQUESTS));
  }
  if (Deno.build.os === "linux") {
    const parallel = ["parallel", "--workers=1"];
    console.log(
      await row("parallel", 0, ["/block-worker"], 3, parallel, [
        "--unstable-net",
      ]),
    );
  }
}
