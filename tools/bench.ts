/**
 * Measures main.ts against the targets of the project, each figure taken in
 * the same run as its peers, and prints them as a Markdown table.
 *
 * The peers are the bare loop (`bare_loop.ts`: accept, one read, one write,
 * close; the floor for any server on raw `Deno.listen`), `Deno.serve`
 * (`deno_serve.ts`) and, where it is installed, nginx with one worker.
 * Servers under the same load take turns, round after round, and each
 * figure is the median of its rounds: on a shared machine, a disturbance
 * then hits one round of one server, not a whole column.
 *
 * ```sh
 * deno task bench                       # the full run, a few minutes
 * deno task bench --quick               # smaller numbers: checks it runs
 * deno task bench --versus=old/main.ts  # main.ts head to head with another
 * ```
 *
 * `--versus` measures only main.ts against another version of it (kept with
 * its pages in a folder under this one, for the read permission), taking
 * turns: CPU time per request, memory after the load, and memory per held
 * connection. It is how a device kept for speed or memory earns its place.
 *
 * Requests per second use wrk when it is installed (Debian: `apt-get install
 * wrk`), and a Deno client otherwise; the table says which. CPU time and
 * memory are read from /proc: Linux only.
 *
 * @module
 */

import {
  type Address,
  floodGarbage,
  garbageHeads,
  readResponse,
  send,
  writeAll,
} from "./clients.ts";
import { startNginx } from "./nginx.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";

const quick = Deno.args.includes("--quick");
const versus = Deno.args.find((arg) => arg.startsWith("--versus="))
  ?.slice("--versus=".length);
const unknown = Deno.args.filter((arg) =>
  arg !== "--quick" && !arg.startsWith("--versus=")
);
if (unknown.length > 0 || versus === "") {
  console.error(
    `error: Unknown argument "${unknown[0] ?? "--versus="}"\n` +
      "Usage: bench.ts [--quick] [--versus=OTHER_MAIN.ts]",
  );
  Deno.exit(2);
}

const SIZES = quick
  ? {
    burst: 10,
    inFlight: 100,
    samples: 200,
    rounds: 2,
    loadSeconds: 1,
    sustained: 10_000,
    garbage: { steps: 3, perStep: 1000 },
    sleepers: { requests: 600, clients: 300, limit: 200, sleepMs: 500 },
    held: 1000,
    heldSettleMs: 500,
  }
  : {
    burst: 100,
    inFlight: 1000,
    samples: 2000,
    rounds: 5,
    loadSeconds: 3,
    sustained: 150_000,
    garbage: { steps: 6, perStep: 10_000 },
    sleepers: { requests: 12_000, clients: 3000, limit: 2000, sleepMs: 2000 },
    held: 10_000,
    heldSettleMs: 1500,
  };
const SLEEP_MS = 200;
const BARE_LOOP = new URL("./bare_loop.ts", import.meta.url).href;
/**
 * A cap on V8's young generation: the semi-space size the bare loop's
 * settles at under sustained load, half of what V8 grows main.ts's to.
 */
const YOUNG_GENERATION_CAP = "--max-semi-space-size=8";
const DENO_SERVE = new URL("./deno_serve.ts", import.meta.url).href;
const KiB = 1024;
const MiB = 1024 * KiB;

/** One row of the table: measure, main.ts, peers, target, met. */
type Row = [string, string, string, string, string];

const addressOf = (server: { port: number }): Address => ({
  hostname: "127.0.0.1",
  port: server.port,
});
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fixed = (n: number, digits = 1) => n.toFixed(digits);
const mib = (bytes: number) => `${fixed(bytes / MiB)} MiB`;
const met = (held: boolean) => held ? "yes" : "no";

function median(values: readonly number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

function percentile(sorted: number[], p: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))
  ];
}

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

async function burstRows(): Promise<Row[]> {
  const concurrentMs = await burst("concurrent", SIZES.burst);
  const serialMs = await burst("serial", SIZES.burst);
  return [[
    `${SIZES.burst} simultaneous /sleep (D = ${SLEEP_MS} ms), wall time`,
    `concurrent ${fixed(concurrentMs / SLEEP_MS, 2)} D`,
    `serial ${fixed(serialMs / SLEEP_MS)} D`,
    "concurrent ≤ 1.2 D",
    met(concurrentMs <= 1.2 * SLEEP_MS),
  ]];
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

async function latencyRows(): Promise<Row[]> {
  const latencies = await latencyUnderLoad(SIZES.inFlight, SIZES.samples);
  const p99 = percentile(latencies, 99);
  return [[
    `latency of / with ${SIZES.inFlight} /sleep in flight (${SIZES.samples} requests)`,
    `p50 ${fixed(percentile(latencies, 50), 2)} ms, p99 ${fixed(p99, 2)} ms`,
    "",
    "p99 ≤ 10 ms",
    met(p99 <= 10),
  ]];
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

/** How many requests one load got answered, and at what rate. */
interface Load {
  requests: number;
  perSecond: number;
}

/** `seconds` of requests for /, a new connection each, with wrk or else a Deno client. */
async function load(
  port: number,
  seconds: number,
  useWrk: boolean,
): Promise<Load> {
  const url = `http://127.0.0.1:${port}/`;
  if (useWrk) {
    const { stdout } = await new Deno.Command("wrk", {
      args: ["-t1", "-c32", `-d${seconds}s`, "-H", "Connection: close", url],
    }).output();
    const report = new TextDecoder().decode(stdout);
    if (/Non-2xx|Socket errors: connect [1-9]/.test(report)) {
      throw new Error(`wrk saw errors:\n${report}`);
    }
    return {
      requests: Number(/(\d+) requests in /.exec(report)?.[1]),
      perSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(report)?.[1]),
    };
  }
  const until = performance.now() + seconds * 1000;
  let requests = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (performance.now() < until) {
      await get({ hostname: "127.0.0.1", port }, "/");
      requests++;
    }
  }));
  return { requests, perSecond: requests / seconds };
}

/** A server that takes its turns under load. */
interface Contender {
  name: string;
  port: number;
  /** The Deno ones, whose CPU time and memory are measured too. */
  process?: ServerProcess;
}

/** What a contender did over its turns. */
interface Turns {
  perSecond: number[];
  cpuUsPerRequest: number[];
  requests: number;
}

/**
 * Loads each contender in turn, for `SIZES.rounds` rounds, each round
 * starting one further along so that none always follows the same one.
 * The load generator may be the limit rather than the server, so the
 * server's CPU time per request is read too: it says how much work each
 * really does.
 */
async function takeTurns(
  contenders: Contender[],
  useWrk: boolean,
): Promise<Map<Contender, Turns>> {
  const turns = new Map(contenders.map((contender) => [contender, {
    perSecond: [] as number[],
    cpuUsPerRequest: [] as number[],
    requests: 0,
  }]));
  for (let round = 0; round < SIZES.rounds; round++) {
    const first = round % contenders.length;
    const order = [...contenders.slice(first), ...contenders.slice(0, first)];
    for (const contender of order) {
      const figures = turns.get(contender)!;
      const cpuBefore = await contender.process?.cpuSeconds();
      const { requests, perSecond } = await load(
        contender.port,
        SIZES.loadSeconds,
        useWrk,
      );
      figures.perSecond.push(perSecond);
      figures.requests += requests;
      if (contender.process && cpuBefore !== undefined) {
        const cpuSeconds = await contender.process.cpuSeconds() - cpuBefore;
        figures.cpuUsPerRequest.push(cpuSeconds * 1e6 / requests);
      }
    }
  }
  return turns;
}

/**
 * More load for each Deno contender until it has answered at least
 * `SIZES.sustained` requests in all, so that their memory is compared after
 * the same amount of work: main.ts's grows for the first 60,000 or so.
 */
async function topUp(
  turns: Map<Contender, Turns>,
  useWrk: boolean,
): Promise<void> {
  for (const [{ port, process }, figures] of turns) {
    while (process && figures.requests < SIZES.sustained) {
      const left = SIZES.sustained - figures.requests;
      const seconds = Math.ceil(left / median(figures.perSecond));
      figures.requests += (await load(port, seconds, useWrk)).requests;
    }
  }
}

/** A contender's figures: medians of its turns, and its memory after all its load. */
interface Summary {
  perSecond: number;
  cpuUsPerRequest: number;
  requests: number;
  residentBytes: number;
}

async function summarize(
  turns: Map<Contender, Turns>,
): Promise<Map<string, Summary>> {
  await delay(500); // for the last connections to close
  const summaries = new Map<string, Summary>();
  for (const [{ name, process }, figures] of turns) {
    summaries.set(name, {
      perSecond: median(figures.perSecond),
      cpuUsPerRequest: process ? median(figures.cpuUsPerRequest) : NaN,
      requests: figures.requests,
      residentBytes: process ? await process.residentBytes() : NaN,
    });
  }
  return summaries;
}

/** nginx when it is installed and starts; otherwise why not. */
async function tryNginx(): Promise<
  { nginx?: Awaited<ReturnType<typeof startNginx>>; whyNot: string }
> {
  if (!await installed("nginx", ["-v"])) return { whyNot: "not installed" };
  try {
    return { nginx: await startNginx(), whyNot: "" };
  } catch (error) {
    // nginx is an optional peer: its failure must not hide the rest.
    return { whyNot: `failed: ${(error as Error).message.split("\n")[0]}` };
  }
}

/**
 * Requests per second, CPU time per request and resident memory after the
 * load, for main.ts --quiet and its peers; requests per second for main.ts
 * logging each request (its log read by this script through a pipe, as a
 * terminal would); and memory and CPU time for main.ts with V8's young
 * generation capped, to see how much of the difference in memory is the
 * young generation.
 */
async function loadRows(): Promise<Row[]> {
  const useWrk = await installed("wrk", ["--version"]);
  await using ours = await startServerProcess(["concurrent", "--quiet"]);
  await using bare = await startServerProcess([], { script: BARE_LOOP });
  await using serve = await startServerProcess([], { script: DENO_SERVE });
  await using logging = await startServerProcess(["concurrent"]);
  await using capped = await startServerProcess(["concurrent", "--quiet"], {
    v8Flags: YOUNG_GENERATION_CAP,
  });
  const { nginx: started, whyNot } = await tryNginx();
  await using nginx = started;
  const contenders: Contender[] = [
    { name: "main.ts", port: ours.port, process: ours },
    { name: "bare loop", port: bare.port, process: bare },
    { name: "Deno.serve", port: serve.port, process: serve },
    { name: "main.ts logging", port: logging.port },
    { name: "main.ts capped", port: capped.port, process: capped },
  ];
  if (nginx) contenders.push({ name: "nginx", port: nginx.port });
  const turns = await takeTurns(contenders, useWrk);
  await topUp(turns, useWrk);
  const summaries = await summarize(turns);
  const client = useWrk
    ? "wrk -t1 -c32, Connection: close"
    : "Deno client, 32 connections";
  return loadTable(summaries, client, whyNot);
}

/** The rows for {@linkcode loadRows}; ratios are main.ts's figure over the peer's. */
function loadTable(
  summaries: Map<string, Summary>,
  client: string,
  nginxWhyNot: string,
): Row[] {
  const main = summaries.get("main.ts")!;
  const floor = summaries.get("bare loop")!;
  const peer = summaries.get("Deno.serve")!;
  const ratio = (ours: number, theirs: number) => `${fixed(ours / theirs, 2)}×`;
  const peers = (
    names: string[],
    cell: (name: string, summary: Summary) => string,
  ) => names.map((name) => cell(name, summaries.get(name)!)).join(", ");

  const rateCell = (name: string, { perSecond }: Summary) =>
    `${name} ${fixed(perSecond, 0)} (${ratio(main.perSecond, perSecond)})`;
  const rates = summaries.has("nginx")
    ? peers(["bare loop", "Deno.serve", "nginx"], rateCell)
    : `${peers(["bare loop", "Deno.serve"], rateCell)}, nginx ${nginxWhyNot}`;
  const logging = summaries.get("main.ts logging")!.perSecond;
  const capped = summaries.get("main.ts capped")!;
  const served = (summary: Summary) =>
    `${fixed(summary.requests / 1000, 0)}k requests`;
  return [
    [
      `requests/s of /, new connection each (${client}; median of ${SIZES.rounds} turns of ${SIZES.loadSeconds} s)`,
      `${fixed(main.perSecond, 0)} with --quiet`,
      rates,
      "≥ 1.0× Deno.serve",
      met(main.perSecond >= peer.perSecond),
    ],
    [
      "server CPU time per request, in those turns",
      `${fixed(main.cpuUsPerRequest)} µs`,
      peers(
        ["bare loop", "Deno.serve"],
        (name, { cpuUsPerRequest }) =>
          `${name} ${fixed(cpuUsPerRequest)} µs (${
            ratio(main.cpuUsPerRequest, cpuUsPerRequest)
          })`,
      ),
      "≤ 1.10× bare loop",
      met(main.cpuUsPerRequest <= 1.1 * floor.cpuUsPerRequest),
    ],
    [
      `resident memory after at least ${
        SIZES.sustained / 1000
      }k requests each (those turns, then more)`,
      `${mib(main.residentBytes)} (${served(main)})`,
      peers(
        ["bare loop", "Deno.serve"],
        (name, summary) =>
          `${name} ${mib(summary.residentBytes)} (${served(summary)}; ${
            ratio(main.residentBytes, summary.residentBytes)
          })`,
      ),
      "≤ 1.15× bare loop",
      met(main.residentBytes <= 1.15 * floor.residentBytes),
    ],
    [
      `the same, main.ts with its young generation capped (${YOUNG_GENERATION_CAP})`,
      `${mib(capped.residentBytes)} (${served(capped)}), CPU time ${
        fixed(capped.cpuUsPerRequest)
      } µs a request`,
      `bare loop ${mib(floor.residentBytes)} (${
        ratio(capped.residentBytes, floor.residentBytes)
      })`,
      "≤ 1.15× bare loop",
      met(capped.residentBytes <= 1.15 * floor.residentBytes),
    ],
    [
      "requests/s, logging each request",
      `${fixed(logging, 0)}`,
      `${ratio(logging, peer.perSecond)} Deno.serve`,
      "",
      "",
    ],
  ];
}

/**
 * Resident memory of main.ts --quiet and of the bare loop after every
 * `perStep` malformed heads, sent 100 connections at a time; all get the
 * same heads, taking turns. A server that keeps nothing per connection
 * levels off once its heap has grown to what the traffic needs. main.ts
 * runs twice: with V8's defaults, and with its young generation capped, to
 * see how much of its growth is the young generation.
 */
async function garbageRows(): Promise<Row[]> {
  const { steps, perStep } = SIZES.garbage;
  await using ours = await startServerProcess(["concurrent", "--quiet"]);
  await using capped = await startServerProcess(["concurrent", "--quiet"], {
    v8Flags: YOUNG_GENERATION_CAP,
  });
  await using bare = await startServerProcess([], { script: BARE_LOOP });
  const servers = [ours, capped, bare];
  const series = new Map(servers.map((server) => [server, [] as number[]]));
  for (let step = 0; step < steps; step++) {
    const heads = garbageHeads(perStep, step + 1);
    const first = step % servers.length;
    for (
      const server of [...servers.slice(first), ...servers.slice(0, first)]
    ) {
      await floodGarbage(addressOf(server), heads, 100);
      series.get(server)!.push(await server.residentBytes());
    }
  }
  const inMiB = (of: ServerProcess) =>
    `${series.get(of)!.map((bytes) => fixed(bytes / MiB)).join(", ")} MiB`;
  // Even the bare loop grows for a while, as V8 and the allocator warm up,
  // and then by a few MiB of noise: levelling off early means growing no
  // more than it does once the first third of the heads has gone by.
  const third = Math.max(1, Math.floor(steps / 3));
  const lateGrowth = (of: ServerProcess) => {
    const late = series.get(of)!.slice(third - 1);
    return Math.max(...late) - late[0];
  };
  const row = (of: ServerProcess, how: string): Row => [
    `resident memory after every ${perStep} malformed heads (100 connections at a time${how})`,
    `${inMiB(of)} with --quiet`,
    `bare loop ${inMiB(bare)}`,
    `growth after the first ${third * perStep} ≤ bare loop's + 2 MiB`,
    met(lateGrowth(of) <= lateGrowth(bare) + 2 * MiB),
  ];
  return [
    row(ours, ""),
    row(capped, `; young generation capped: ${YOUNG_GENERATION_CAP}`),
  ];
}

/** What main.ts did over one run of sleepers. */
interface SleeperFigures {
  peakBytes: number;
  cpuSeconds: number;
  wallSeconds: number;
  /** How many requests got each answer other than 200, or each error. */
  failures: Map<string, number>;
}

/**
 * One /sleep request on a new connection: "200", another status, or the
 * name of the error that ended it. An answer other than 200 is counted
 * rather than thrown: with thousands of clients at once the listen backlog
 * overflows, the kernel drops the connections it cannot queue, and a head
 * that reaches the server seconds late (in a retransmission) may get 408.
 */
async function sleeper(addr: Address): Promise<string> {
  try {
    using conn = await Deno.connect(addr);
    await writeAll(
      conn,
      "GET /sleep HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    const response = await readResponse(conn);
    return /^HTTP\/1\.1 (\d{3}) /.exec(response)?.[1] ?? "no status line";
  } catch (error) {
    return (error as Error).name;
  }
}

/**
 * `SIZES.sleepers.requests` /sleep requests, each on a new connection, from
 * `clients` clients at a time, against main.ts with `limit` as its
 * --max-in-flight, or none.
 */
async function sleepers(limit?: number): Promise<SleeperFigures> {
  const { requests, clients, sleepMs } = SIZES.sleepers;
  await using server = await startServerProcess([
    "concurrent",
    "--quiet",
    `--sleep-ms=${sleepMs}`,
    ...(limit === undefined ? [] : [`--max-in-flight=${limit}`]),
  ]);
  const addr = addressOf(server);
  const cpuBefore = await server.cpuSeconds();
  const started = performance.now();
  const failures = new Map<string, number>();
  let sent = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (sent < requests) {
      sent++;
      const answer = await sleeper(addr);
      if (answer !== "200") {
        failures.set(answer, (failures.get(answer) ?? 0) + 1);
      }
    }
  }));
  return {
    peakBytes: await server.peakResidentBytes(),
    cpuSeconds: await server.cpuSeconds() - cpuBefore,
    wallSeconds: (performance.now() - started) / 1000,
    failures,
  };
}

function otherAnswers(failures: Map<string, number>): string {
  if (failures.size === 0) return "all 200";
  return [...failures].map(([answer, count]) => `${count} × ${answer}`)
    .join(", ");
}

/**
 * The sleepers against main.ts with --max-in-flight and without. One run
 * each, as the two take half a minute together: run the bench again before
 * trusting a small difference between them.
 */
async function maxInFlightRows(): Promise<Row[]> {
  const { requests, clients, limit, sleepMs } = SIZES.sleepers;
  const limited = await sleepers(limit);
  const free = await sleepers();
  const what =
    `${requests} /sleep (${sleepMs} ms), ${clients} clients at a time`;
  const withLimit = `with --max-in-flight=${limit}`;
  return [
    [
      `${what}: peak resident memory`,
      `${mib(limited.peakBytes)} ${withLimit}`,
      `no limit ${mib(free.peakBytes)} (${
        fixed(limited.peakBytes / free.peakBytes, 2)
      }×)`,
      "no higher than with no limit",
      met(limited.peakBytes <= free.peakBytes),
    ],
    [
      `${what}: server CPU time`,
      `${fixed(limited.cpuSeconds, 2)} s ${withLimit}`,
      `no limit ${fixed(free.cpuSeconds, 2)} s (${
        fixed(limited.cpuSeconds / free.cpuSeconds, 2)
      }×)`,
      "no higher than with no limit",
      met(limited.cpuSeconds <= free.cpuSeconds),
    ],
    [
      `${what}: wall time, and answers other than 200`,
      `${fixed(limited.wallSeconds)} s, ${otherAnswers(limited.failures)}`,
      `no limit ${fixed(free.wallSeconds)} s, ${otherAnswers(free.failures)}`,
      "",
      "",
    ],
  ];
}

/**
 * Resident memory per connection, with `count` connections held open
 * mid-head, or, with `idle`, before they send their first byte.
 */
async function residentPerConnection(
  server: ServerProcess,
  count: number,
  { idle = false } = {},
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
          if (!idle) await conn.write(half);
          return conn;
        }),
      ),
    );
  }
  await delay(SIZES.heldSettleMs);
  const after = await server.residentBytes();
  for (const conn of held) conn.close();
  return (after - before) / count;
}

/**
 * Memory per waiting connection, main.ts against Deno.serve; then, for the
 * floor, main.ts against the bare loop on connections that send nothing
 * (the bare loop answers half a head as it answers a whole one).
 */
async function heldRows(): Promise<Row[]> {
  const rows: Row[] = [];
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
    rows.push([
      `resident memory per connection, ${SIZES.held} held mid-head (${label})`,
      `${fixed(oursKiB)} KiB`,
      `Deno.serve ${fixed(peerKiB)} KiB`,
      "≤ 8 KiB",
      met(oursKiB <= 8),
    ]);
  }
  const idle = { idle: true };
  let oursKiB: number, bareKiB: number;
  {
    await using server = await startServerProcess([
      "concurrent",
      "--head-timeout-ms=600000",
    ]);
    oursKiB = await residentPerConnection(server, SIZES.held, idle) / KiB;
  }
  {
    await using server = await startServerProcess([], { script: BARE_LOOP });
    bareKiB = await residentPerConnection(server, SIZES.held, idle) / KiB;
  }
  rows.push([
    `resident memory per connection, ${SIZES.held} held before their first byte (V8 defaults)`,
    `${fixed(oursKiB)} KiB`,
    `bare loop ${fixed(bareKiB)} KiB (${fixed(oursKiB - bareKiB)} KiB more)`,
    "≤ 8 KiB",
    met(oursKiB <= 8),
  ]);
  return rows;
}

/**
 * main.ts head to head with `other`, another version of it: CPU time per
 * request and memory after the load, taking turns; then memory per
 * connection held before its first byte and mid-head, one after the other.
 */
async function versusRows(other: string): Promise<Row[]> {
  const script = new URL(other, `file://${Deno.cwd()}/`).href;
  const rows: Row[] = [];
  {
    await using ours = await startServerProcess(["concurrent", "--quiet"]);
    await using theirs = await startServerProcess(["concurrent", "--quiet"], {
      script,
    });
    const contenders = [
      { name: "main.ts", port: ours.port, process: ours },
      { name: other, port: theirs.port, process: theirs },
    ];
    const useWrk = await installed("wrk", ["--version"]);
    const turns = await takeTurns(contenders, useWrk);
    await topUp(turns, useWrk);
    const summaries = await summarize(turns);
    const [a, b] = [summaries.get("main.ts")!, summaries.get(other)!];
    rows.push([
      `server CPU time per request of / (median of ${SIZES.rounds} turns)`,
      `${fixed(a.cpuUsPerRequest)} µs`,
      `${other} ${fixed(b.cpuUsPerRequest)} µs (${
        fixed(a.cpuUsPerRequest / b.cpuUsPerRequest, 3)
      }×)`,
      "within 5 %",
      met(a.cpuUsPerRequest <= 1.05 * b.cpuUsPerRequest),
    ], [
      `resident memory after at least ${SIZES.sustained / 1000}k requests`,
      mib(a.residentBytes),
      `${other} ${mib(b.residentBytes)} (${
        fixed(a.residentBytes / b.residentBytes, 3)
      }×)`,
      "within 10 %",
      met(a.residentBytes <= 1.1 * b.residentBytes),
    ]);
  }
  for (const idle of [true, false]) {
    const perConnection = async (options: { script?: string }) => {
      await using server = await startServerProcess([
        "concurrent",
        "--head-timeout-ms=600000",
      ], options);
      return await residentPerConnection(server, SIZES.held, { idle }) / KiB;
    };
    const ours = await perConnection({});
    const theirs = await perConnection({ script });
    rows.push([
      `resident memory per connection, ${SIZES.held} held ${
        idle ? "before their first byte" : "mid-head"
      }`,
      `${fixed(ours)} KiB`,
      `${other} ${fixed(theirs)} KiB (${fixed(ours - theirs)} KiB more)`,
      "within 1 KiB",
      met(ours - theirs <= 1),
    ]);
  }
  return rows;
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
  console.error(`Benchmarking${quick ? " (quick)" : ""} on ${await machine()}`);
  const started = performance.now();
  const rows: Row[] = [];
  const sections = versus ? [() => versusRows(versus)] : [
    burstRows,
    latencyRows,
    loadRows,
    garbageRows,
    maxInFlightRows,
    heldRows,
  ];
  for (const section of sections) {
    for (const row of await section()) {
      rows.push(row);
      console.error(`  ${row.join(" | ")}`);
    }
  }
  console.error(
    `Done in ${fixed((performance.now() - started) / 1000, 0)} s`,
  );

  console.log(`Measured on ${await machine()}${quick ? " (quick)" : ""}\n`);
  console.log("| measure | main.ts | peers (main.ts ÷ peer) | target | met |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const cells of rows) console.log(`| ${cells.join(" | ")} |`);
}
