/**
 * The hostile-client checks that need seconds of load, run against
 * `main.ts` as a process of its own. Each prints what it measured and
 * whether it held; the script exits 1 when one did not.
 *
 * ```sh
 * deno task stress
 * ```
 *
 * Linux only: it reads resident memory from /proc and lowers the
 * open-files limit with `ulimit -n`.
 *
 * @module
 */

import { floodGarbage, garbageHeads, send } from "./clients.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";

const MiB = 1024 * 1024;
const address = (server: ServerProcess) => ({
  hostname: "127.0.0.1",
  port: server.port,
});
const GET_ROOT = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

let failures = 0;
function check(held: boolean, what: string): void {
  console.log(`  ${held ? "ok  " : "FAIL"} ${what}`);
  if (!held) failures++;
}

function noStackTraces(server: ServerProcess): boolean {
  return server.lines.every((line) => !/^\s+at /.test(line));
}

async function answersRoot(server: ServerProcess): Promise<boolean> {
  const { response } = await send(address(server), GET_ROOT);
  return (await response).startsWith("HTTP/1.1 200 OK\r\n");
}

async function garbage(): Promise<void> {
  const rounds = 6;
  const perRound = 5000;
  console.log(
    `Garbage: ${rounds} rounds of ${perRound} malformed heads, 100 connections at a time (concurrent mode, 24 MiB V8 old space)`,
  );
  // V8 grows its heap lazily, so on a free heap resident memory climbs for a
  // while whether or not anything leaks. On a small fixed heap it cannot:
  // a leak there shows as growth, or as the process dying out of memory.
  await using server = await startServerProcess(["concurrent"], {
    v8Flags: "--max-old-space-size=24,--max-semi-space-size=1",
  });
  const resident: number[] = [];
  let badAnswers = 0;
  for (let round = 0; round < rounds; round++) {
    const answers = await floodGarbage(
      address(server),
      garbageHeads(perRound, round + 1),
      100,
    );
    badAnswers += answers.filter((answer) =>
      answer !== "" && !/^HTTP\/1\.1 (4\d\d|501|505) /.test(answer)
    ).length;
    resident.push(await server.residentBytes());
  }
  console.log(
    `  resident memory after each round: ${
      resident.map((bytes) => (bytes / MiB).toFixed(1)).join(", ")
    } MiB`,
  );
  check(server.running(), "the process stayed up");
  check(
    badAnswers === 0,
    `every connection got a 4xx, 501 or 505, or was closed (${badAnswers} did not)`,
  );
  // Two rounds warm up the JIT and the heap; after them, memory must stay
  // level, not grow with every round (a leak of one 256-byte buffer per
  // connection grows it by about 4 MiB a round).
  const [, warm, ...later] = resident;
  const growth = Math.max(...later) - warm;
  check(
    growth < 4 * MiB,
    `memory after round 2 grew by ${
      (growth / MiB).toFixed(1)
    } MiB (limit 4 MiB)`,
  );
  check(await answersRoot(server), "/ still answers 200");
  check(noStackTraces(server), "no stack trace in the log");
}

async function stalledClients(): Promise<void> {
  const stalled = 1000;
  const headTimeoutMs = 3000;
  console.log(
    `Stalled clients: ${stalled} connections send half a head and stop (concurrent mode, --head-timeout-ms=${headTimeoutMs})`,
  );
  await using server = await startServerProcess([
    "concurrent",
    `--head-timeout-ms=${headTimeoutMs}`,
  ]);
  const started = performance.now();
  const waiting = [];
  for (let i = 0; i < stalled; i++) {
    waiting.push(
      (await send(address(server), "GET / HTTP/1.1\r\nHo")).response,
    );
  }
  const latencies: number[] = [];
  for (let i = 0; i < 20; i++) {
    const requested = performance.now();
    if (!await answersRoot(server)) break;
    latencies.push(performance.now() - requested);
  }
  const servedWhileStalled = performance.now() - started < headTimeoutMs;
  const answers = await Promise.all(waiting);
  const timedOut =
    answers.filter((answer) => answer.startsWith("HTTP/1.1 408 ")).length;
  latencies.sort((a, b) => a - b);
  console.log(
    `  / while they stall: median ${latencies[10]?.toFixed(1)} ms, slowest ${
      latencies.at(-1)?.toFixed(1)
    } ms`,
  );
  check(
    latencies.length === 20 && servedWhileStalled,
    "/ answered 20 times before any stalled client timed out",
  );
  check(
    timedOut === stalled,
    `every stalled client got 408 (${timedOut} of ${stalled})`,
  );
  check(noStackTraces(server), "no stack trace in the log");
}

async function outOfFileDescriptors(): Promise<void> {
  const limit = 64;
  const connections = 300;
  console.log(
    `Out of file descriptors: ulimit -n ${limit}, ${connections} connections held open for 2 s`,
  );
  await using server = await startServerProcess([
    "concurrent",
    "--head-timeout-ms=1000",
  ], { openFilesLimit: limit });
  const held = [];
  for (let i = 0; i < connections; i++) {
    held.push(await Deno.connect(address(server)));
  }
  await new Promise((resolve) => setTimeout(resolve, 2000));
  for (const conn of held) conn.close();

  const released = performance.now();
  let recovered = false;
  while (!recovered && performance.now() - released < 10_000) {
    recovered = await answersRoot(server).catch(() => false);
  }
  const acceptFailures = server.lines.filter((line) =>
    line.includes("Accept failed: Too many open files")
  );
  console.log(
    `  ${acceptFailures.length} "Accept failed" lines, e.g. ${
      acceptFailures[0]?.slice(13)
    }`,
  );
  console.log(
    `  / answered again ${
      (performance.now() - released).toFixed(0)
    } ms after the flood ended`,
  );
  check(acceptFailures.length > 0, "the failed accepts were logged");
  check(server.running(), "the process stayed up");
  check(recovered, "/ answers 200 once the flood is gone");
  check(noStackTraces(server), "no stack trace in the log");
}

if (import.meta.main) {
  await garbage();
  await stalledClients();
  await outOfFileDescriptors();
  console.log(
    failures === 0
      ? "All stress checks held"
      : `${failures} stress checks failed`,
  );
  Deno.exit(failures === 0 ? 0 : 1);
}
