#!/usr/bin/env -S deno run --allow-net
/**
 * What any HTTP/1.x server does with a slow request: one at a time, a pool
 * of N, or all at once. It measures from outside, over fresh connections,
 * the server you wrote in any language, and says which, with the evidence
 * drawn as `deno task demo` draws it:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 probe.ts http://127.0.0.1:7878/
 * deno task probe http://127.0.0.1:8080/ --slow=/slow --json
 * ```
 *
 * It sends the slow request alone and the fast one alone, then one slow
 * request more at a time, each followed by the fast one, while the fast one
 * is answered at once; when it waits for a slow one to end, the server is
 * full. Then one connection that sends nothing, and the fast one again. A
 * server without a slow route is loaded with such idle connections
 * instead. It is gentle: it closes no connection before it has sent a whole
 * request on it (an idle one is released by sending its request), and
 * waits for every answer. docs/probe.md has the method and its limits;
 * probe_verdict.js reads the figures, here and in the lab.
 *
 * @module
 */

// Run from a URL or JSR with no deno.json, so the import names its registry.
// deno-lint-ignore no-import-prefix
import { parseArgs } from "jsr:@std/cli@^1.0.32/parse-args";
import {
  duration,
  labelsOf,
  NOT_SLOW_MS,
  type ProbeRequest,
  type ProbeRun,
  type ProbeStep,
  verdictOf,
  waited,
} from "./verdict.js";
import { axis, row } from "./timeline.ts";

// ===========================================================================
// The library: probe() and report().
// ===========================================================================

/**
 * What {@linkcode probe} sends and how far it goes; each defaults to
 * {@linkcode PROBE_DEFAULTS}.
 */
export interface ProbeOptions {
  /**
   * The slow request's path. Given, it must be slow (answered, in 50 ms or
   * more); left out, `/sleep` is tried, and without it idle connections
   * load the server instead.
   */
  slow?: string;
  /** The fast request's path. */
  fast?: string;
  /** The most slow requests (or idle connections) in flight at once. */
  max?: number;
  /** How long an idle connection may keep the fast request waiting, in ms. */
  idleMs?: number;
  /** Called with a line on each step, while the probe waits. */
  onProgress?: (line: string) => void;
}

/**
 * The defaults of {@linkcode ProbeOptions}, and of the command line.
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(PROBE_DEFAULTS.max, 16);
 * ```
 */
export const PROBE_DEFAULTS = {
  slow: "/sleep",
  fast: "/",
  max: 16,
  idleMs: 2000,
} as const;

/**
 * What {@linkcode probe} found: the fields of `--json` (probe_verdict.js
 * computes them, for the lab too), and the evidence.
 */
export interface ProbeReport {
  /** One at a time, a pool of `atOnce`, or every request it tried at once. */
  verdict: "serial" | "pool" | "concurrent";
  /** The most requests it saw served at once. */
  atOnce: number;
  /** Whether every request it tried went together: `atOnce` is a lower bound. */
  atLeast: boolean;
  /** Loaded with slow requests, or (no slow route) idle connections. */
  method: "slow" | "idle";
  /** The slow request alone, in ms, or null without a slow route. */
  slowMs: number | null;
  /** The fast request alone, in ms. */
  fastMs: number;
  /** Whether one connection that sends nothing kept the fast one waiting. */
  idleHolds: boolean | null;
  /** The verdict in one sentence, with its evidence. */
  sentence: string;
  /** What it means in the accept loop's terms. */
  meaning: string[];
  /** What the probe could not see. */
  unseen: string[];
  /** The server probed, as `http://host:port/`. */
  url: string;
  /** The slow request's path. */
  slowPath: string;
  /** The fast request's path. */
  fastPath: string;
  /** How long the probe took, in ms. */
  tookMs: number;
  /** Every request it made, in the order it opened them. */
  requests: ProbedRequest[];
}

/** One request of a probe, in ms from its start: see probe_verdict.js. */
export interface ProbedRequest {
  /** Its path. */
  path: string;
  /** `idle`: a connection that sent nothing until the probe released it. */
  kind: "slow" | "fast" | "idle";
  /** When its connection was opened. */
  openedMs: number;
  /** When its request was sent, or null if never. */
  sentMs: number | null;
  /** When its answer began to come, or null if none did. */
  answeredMs?: number | null;
  /** When the server answered it whole or closed it. */
  endedMs?: number | null;
}

/** The fast request alone must be answered within this, in ms. */
const FAST_LIMIT_MS = 10_000;
/** The slow request alone must be answered within this, in ms. */
const SLOW_LIMIT_MS = 60_000;
/** Options are checked against these: [least, most]. */
const RANGES = { max: [1, 256], idleMs: [100, 60_000] } as const;

/**
 * Probes the HTTP server at `url` and says what it does with a slow
 * request. It ends within 4 × S + 10 s for a slow request that takes S
 * (2 × idleMs + 10 s without one), whatever the server does, and says what
 * it could not see by then.
 *
 * @param url The server, `http://host:port/`; its path is not used.
 * @param options What to send; see {@linkcode ProbeOptions}.
 * @returns The verdict and the evidence.
 * @throws {TypeError} For a URL that is not http://, a path without a `/`.
 * @throws {RangeError} For a `max` or `idleMs` out of range.
 * @throws {Error} In one line, for a server that cannot be probed: refused,
 * reset, not HTTP, a slow route that is not slow, or no answer.
 *
 * @example Probe a server that answers everything at once
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hi"));
 * const found = await probe(`http://127.0.0.1:${server.addr.port}/`, { max: 4 });
 * assertEquals([found.method, found.verdict, found.atOnce], ["idle", "concurrent", 4]);
 * await server.shutdown();
 * ```
 */
export async function probe(
  url: string | URL,
  options: ProbeOptions = {},
): Promise<ProbeReport> {
  const { slow, fast, max, idleMs, onProgress } = checkOptions(options);
  const target = targetOf(url);
  const t0 = performance.now();
  const now = () => Math.round((performance.now() - t0) * 10) / 10;
  let deadline = Infinity;
  const left = () => Math.max(0, deadline - now());
  const clients: Client[] = [];
  const open = async (kind: ProbeRequest["kind"], path: string) => {
    const client = await Client.open(target, kind, path, now);
    clients.push(client);
    if (kind !== "idle") await client.send();
    return client;
  };
  const unseen: string[] = [];
  try {
    onProgress(`Probing ${target.url}: GET ${fast} alone…`);
    const fastMs = await alone(await open("fast", fast), FAST_LIMIT_MS);
    onProgress(`GET ${slow ?? PROBE_DEFAULTS.slow} alone…`);
    const slowPath = slow ?? PROBE_DEFAULTS.slow;
    const slowOne = await open("slow", slowPath);
    const slowMs = await alone(slowOne, SLOW_LIMIT_MS);
    const isSlow = slowOne.status! < 400 && slowMs >= NOT_SLOW_MS;
    if (!isSlow && slow !== undefined) {
      throw new ProbeFailed(
        `GET ${slow} is not slow: answered ${slowOne.status} in ${
          duration(slowMs)
        }; give a path the server takes a while to answer`,
      );
    }
    const method = isSlow ? "slow" : "idle";
    deadline = isSlow ? 4 * slowMs + 10_000 : now() + 2 * idleMs + 10_000;
    onProgress(
      isSlow
        ? `GET ${slowPath}: ${duration(slowMs)}, GET ${fast}: ${
          duration(fastMs)
        }; now one ${slowPath} more at a time, each followed by ${fast}`
        : `GET ${slowPath} is not slow (${slowOne.status} in ${
          duration(slowMs)
        }): loading the server with connections that send nothing instead`,
    );

    // One load more at a time, each followed by the fast request, until
    // the fast one waits for the load: the server is full.
    const steps: ProbeStep[] = [];
    const loads: Client[] = [];
    const fastOnes: Client[] = [];
    for (let load = 1; load <= max; load++) {
      if (loads.some((client) => client.request.endedMs != null)) {
        unseen.push(
          `The first ${slowPath} was answered before the probe could send more, so it saw at most ${loads.length} in flight.`,
        );
        break;
      }
      loads.push(
        await open(isSlow ? "slow" : "idle", isSlow ? slowPath : fast),
      );
      const fastOne = await open("fast", fast);
      fastOnes.push(fastOne);
      const step = await decide(fastOne, loads, isSlow ? left() : idleMs, now);
      steps.push(step);
      const full = waited(step);
      onProgress(
        `${step.load} ${isSlow ? slowPath : "idle connections"} open: ${fast} ${
          full ? "waited" : `answered in ${duration(fastOne.waitMs())}`
        }`,
      );
      if (full) break;
    }
    await settle([...loads, ...fastOnes], left(), onProgress, unseen);

    // One connection that sends nothing: does it hold the fast request?
    let idle = isSlow ? null : steps[0];
    if (isSlow && left() > 0) {
      onProgress(`One connection that sends nothing, then ${fast}…`);
      const quiet = await open("idle", fast);
      const fastOne = await open("fast", fast);
      idle = await decide(fastOne, [quiet], Math.min(idleMs, left()), now);
      await settle([quiet, fastOne], left(), onProgress, unseen);
    }
    if (clients.some((client) => client.request.endedMs == null)) {
      unseen.push(
        "Some requests were still unanswered when its time was up: it closed them, after sending each its request.",
      );
    }
    const run: ProbeRun = {
      method,
      slowPath,
      fastPath: fast,
      slowMs: isSlow ? slowMs : null,
      fastMs,
      max,
      steps,
      idle,
      unseen,
    };
    return {
      url: target.url,
      slowPath,
      fastPath: fast,
      ...verdictOf(run),
      tookMs: Math.round(now()),
      requests: clients.map((client) => client.request),
    };
  } finally {
    // Gentle to the end: an idle connection gets its request before it is
    // closed, and nothing is closed before that request is written.
    await Promise.all(clients.map((client) => client.finish()));
  }
}

/**
 * The report as probe.ts prints it: the verdict's sentence, the timeline,
 * what it means, and what the probe could not see.
 *
 * @param found What {@linkcode probe} returned.
 * @returns Lines of text, without line ends.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "@std/assert";
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hi"));
 * const found = await probe(`http://127.0.0.1:${server.addr.port}/`, { max: 2 });
 * assertStringIncludes(report(found).join("\n"), "All at once");
 * await server.shutdown();
 * ```
 */
export function report(found: ProbeReport): string[] {
  const labels = labelsOf(found.requests);
  const rows = found.requests.map((request, i) => {
    const label = labels[i];
    const ended = request.answeredMs ?? request.endedMs ?? found.tookMs;
    const sentMs = request.sentMs ?? ended;
    return {
      path: label,
      openedMs: request.openedMs,
      sentMs,
      answeredMs: ended,
    };
  });
  const width = Math.max(...rows.map((r) => r.path.length));
  const axisMs = Math.max(...rows.map((r) => r.answeredMs));
  const method = found.method === "slow"
    ? `with ${found.slowPath} (${duration(found.slowMs!)} alone)`
    : `with connections that send nothing (${found.slowPath} is not slow)`;
  const limit = found.atLeast ? ` (at least: all it tried)` : "";
  return [
    found.sentence,
    "",
    ...rows.map((r) => row(r, axisMs, width)),
    axis(axisMs, width),
    `  █ sent to answered   ░ connection open, nothing sent`,
    "",
    `verdict: ${found.verdict}, ${found.atOnce} at once${limit}, measured ${method}, in ${
      duration(found.tookMs)
    }`,
    `an idle connection holds it: ${
      found.idleHolds === null ? "not seen" : found.idleHolds ? "yes" : "no"
    }`,
    "",
    ...found.meaning,
    ...found.unseen.map((note) => `Note: ${note}`),
  ];
}

// ===========================================================================
// The measurements: one connection each, the steps, the waits.
// ===========================================================================

/** A failure of the server or of reaching it: said in one line. */
class ProbeFailed extends Error {}

interface Target {
  hostname: string;
  port: number;
  host: string;
  url: string;
}

/** The server's address, from a URL: http:// only, its path unused. */
function targetOf(url: string | URL): Target {
  // 127.0.0.1:7878 or localhost:7878, without its scheme: say how to write it.
  const text = String(url);
  const hint = text.includes("://") ? "" : `; did you mean http://${text}/?`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`Not a URL: ${JSON.stringify(text)}${hint}`);
  }
  if (parsed.protocol !== "http:") {
    throw new TypeError(
      `Only http:// URLs can be probed, not ${parsed.protocol}//${hint}`,
    );
  }
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(parsed.port || 80);
  return { hostname, port, host: parsed.host, url: `${parsed.origin}/` };
}

/** The options with their defaults, checked. */
function checkOptions(options: ProbeOptions) {
  const { slow, fast = PROBE_DEFAULTS.fast, onProgress = () => {} } = options;
  const { max = PROBE_DEFAULTS.max, idleMs = PROBE_DEFAULTS.idleMs } = options;
  for (const [name, path] of [["slow", slow], ["fast", fast]]) {
    if (path !== undefined && !/^\/[!-~]*$/.test(path)) {
      throw new TypeError(
        `${name} must be a path such as /sleep, not "${path}"`,
      );
    }
  }
  for (const [name, value] of Object.entries({ max, idleMs })) {
    const [least, most] = RANGES[name as keyof typeof RANGES];
    if (!Number.isInteger(value) || value < least || value > most) {
      throw new RangeError(
        `${name} must be a whole number from ${least} to ${most}, not ${value}`,
      );
    }
  }
  return { slow, fast, max, idleMs, onProgress };
}

/**
 * Waits for the answer of a request sent alone and returns how long it
 * took; fails in one line if it got none within `limitMs`.
 */
async function alone(client: Client, limitMs: number): Promise<number> {
  const { request } = client;
  const what = `GET ${request.path}`;
  if (await until([client.ended], limitMs) === "late") {
    throw new ProbeFailed(
      `The server did not answer ${what} within ${duration(limitMs)}`,
    );
  }
  if (client.problem) throw new ProbeFailed(`${what}: ${client.problem}`);
  return client.waitMs();
}

/**
 * Waits until the fast request is answered or one of `loads` is let go
 * of, or `limitMs` has passed, and returns the step as it stands then.
 */
async function decide(
  fastOne: Client,
  loads: Client[],
  limitMs: number,
  now: () => number,
): Promise<ProbeStep> {
  const sentMs = fastOne.request.sentMs!;
  const inFlight = loads.filter((c) =>
    (c.request.endedMs ?? Infinity) > sentMs
  );
  const outcome = await until(
    [fastOne.answered, ...inFlight.map((c) => c.ended)],
    limitMs,
  );
  const letGo = inFlight.map((c) => c.request.endedMs ?? Infinity)
    .filter((ms) => ms >= sentMs);
  const first = Math.min(...letGo);
  return {
    load: inFlight.length,
    fast: fastOne.request,
    loadEndedMs: first < Infinity ? first : outcome === "late" ? now() : null,
  };
}

/**
 * Releases the idle ones of `clients` (sends their requests) and waits for
 * every answer, for at most `limitMs`.
 */
async function settle(
  clients: Client[],
  limitMs: number,
  onProgress: (line: string) => void,
  unseen: string[],
) {
  await Promise.all(clients.map((client) => client.send()));
  const waiting = clients.filter((client) => client.request.endedMs == null);
  if (waiting.length) {
    onProgress(`Waiting for ${waiting.length} to be answered…`);
  }
  if (await until(waiting.map((c) => c.ended), limitMs, "all") === "late") {
    unseen.push(
      `${waiting.length} requests were not all answered in the time the probe gives itself.`,
    );
  }
}

/**
 * Resolves once the first (or `all`) of `promises` has, or with "late"
 * after `ms`; clears its timer either way.
 */
async function until(
  promises: Promise<unknown>[],
  ms: number,
  how: "first" | "all" = "first",
): Promise<"late" | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), ms);
  });
  const done = how === "all" ? Promise.all(promises) : Promise.race(promises);
  try {
    return await Promise.race([done.then(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One connection of the probe and its one request. It reads from the
 * start, so that it sees the server answer or close even an idle one, and
 * closes once the answer is whole or the server has closed; finish()
 * closes it otherwise, after sending its request.
 */
class Client {
  status: number | undefined;
  /** Why it got no answer, if it did not. */
  problem: string | undefined;
  /** Resolves when the answer's head has come, or the connection ended. */
  readonly answered: Promise<void>;
  /** Resolves when the server has answered in whole or closed it. */
  readonly ended: Promise<void>;
  #answered = Promise.withResolvers<void>();
  #closed = false;

  private constructor(
    readonly request: ProbeRequest,
    private readonly conn: Deno.Conn,
    private readonly target: Target,
    private readonly now: () => number,
  ) {
    this.answered = this.#answered.promise;
    this.ended = this.#read();
  }

  /** Opens a connection for one request; says in one line why it can't. */
  static async open(
    target: Target,
    kind: ProbeRequest["kind"],
    path: string,
    now: () => number,
  ): Promise<Client> {
    const { hostname, port } = target;
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ hostname, port });
    } catch (error) {
      const where = `${hostname}:${port}`;
      if (error instanceof Deno.errors.ConnectionRefused) {
        throw new ProbeFailed(
          `Nothing listens on ${where}: connection refused`,
        );
      }
      if (error instanceof Deno.errors.ConnectionReset) {
        throw new ProbeFailed(`${where} reset the connection`);
      }
      if (error instanceof Deno.errors.NotCapable) {
        throw new ProbeFailed(
          `No permission to connect to ${where}: run with --allow-net=${hostname}`,
        );
      }
      throw new ProbeFailed(
        `Cannot connect to ${where}: ${(error as Error).message}`,
      );
    }
    const request = { path, kind, openedMs: now(), sentMs: null };
    return new Client(request, conn, target, now);
  }

  /** How long from sending to the answer (or the end). */
  waitMs(): number {
    const { sentMs, answeredMs, endedMs } = this.request;
    return Math.round((Number(answeredMs ?? endedMs) - Number(sentMs)) * 10) /
      10;
  }

  /** Sends its request, unless sent already or the server has closed. */
  async send(): Promise<void> {
    const { request } = this;
    if (request.sentMs !== null || request.endedMs != null) return;
    const bytes = new TextEncoder().encode(
      `GET ${request.path} HTTP/1.1\r\nHost: ${this.target.host}\r\n` +
        "User-Agent: probe.ts\r\nConnection: close\r\n\r\n",
    );
    request.sentMs = this.now();
    try {
      for (let written = 0; written < bytes.length;) {
        written += await this.conn.write(bytes.subarray(written));
      }
    } catch {
      // The server closed it meanwhile: the reader says so.
    }
  }

  /** Sends its request if it has not, waits a little for its answer, closes. */
  async finish(): Promise<void> {
    await this.send();
    await until([this.ended], 1000);
    this.#close();
  }

  #close() {
    if (this.#closed) return;
    this.#closed = true;
    this.conn.close();
  }

  async #read(): Promise<void> {
    const { request, now } = this;
    const decoder = new TextDecoder();
    let head = "";
    let bodyLeft = Infinity;
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        if (request.answeredMs !== undefined) {
          bodyLeft -= n;
          if (bodyLeft <= 0) break;
          continue;
        }
        head += decoder.decode(buffer.subarray(0, n), { stream: true });
        if (!"HTTP/".startsWith(head.slice(0, 5))) {
          this.problem = `the answer is not HTTP: ${
            JSON.stringify(head.split(/\r?\n/)[0].slice(0, 40))
          }`;
          break;
        }
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) continue;
        request.answeredMs = now();
        this.status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(head)?.[1]);
        this.#answered.resolve();
        const length = /^content-length: *(\d+)/im.exec(head)?.[1];
        bodyLeft = (length === undefined ? Infinity : Number(length)) -
          new TextEncoder().encode(head.slice(end + 4)).length;
        if (bodyLeft <= 0) break;
      }
    } catch (error) {
      if (!this.#closed) {
        this.problem = error instanceof Deno.errors.ConnectionReset
          ? "the server reset the connection"
          : (error as Error).message;
      }
    }
    request.endedMs = now();
    if (request.answeredMs === undefined) {
      request.answeredMs = null;
      this.problem ??= "the server closed the connection without an answer";
    }
    this.#answered.resolve();
    // Closed by the server, or answered in whole; an idle connection the
    // server closed had nothing sent on it to lose.
    this.#close();
  }
}

// ===========================================================================
// The command line.
// ===========================================================================

const USAGE = `Usage: probe.ts URL [options]

Says what the HTTP server at URL does with a slow request: one at a time,
a pool of N, or all at once; and whether a connection that sends nothing
holds it.

Options:
  --slow=PATH     the slow request (default ${PROBE_DEFAULTS.slow}; without one, idle
                  connections load the server instead)
  --fast=PATH     the fast request (default ${PROBE_DEFAULTS.fast})
  --max=N         the most slow requests at once to try (default ${PROBE_DEFAULTS.max})
  --idle-ms=N     how long an idle connection may hold it (default ${PROBE_DEFAULTS.idleMs})
  --json          one JSON object instead of the report
  --help          this`;

if (import.meta.main) {
  const fail = (message: string, code: number): never => {
    console.error(`error: ${message}`);
    Deno.exit(code);
  };
  const args = parseArgs(Deno.args, {
    string: ["slow", "fast", "max", "idle-ms"],
    boolean: ["json", "help"],
    unknown: (arg) =>
      !arg.startsWith("-") ||
      fail(`Unknown option "${arg}"; see --help`, 2),
  });
  if (args.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const [url, ...extra] = args._.map(String);
  if (url === undefined || extra.length) {
    fail("Give one URL, such as http://127.0.0.1:7878/; see --help", 2);
  }
  const number = (flag: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    const [least, most] = RANGES[flag === "max" ? "max" : "idleMs"];
    if (!/^\d+$/.test(value) || +value < least || +value > most) {
      fail(`--${flag} must be a whole number from ${least} to ${most}`, 2);
    }
    return Number(value);
  };
  const json = args.json;
  const progress = !json || Deno.stderr.isTerminal();
  try {
    const found = await probe(url, {
      slow: args.slow,
      fast: args.fast,
      max: number("max", args.max),
      idleMs: number("idle-ms", args["idle-ms"]),
      onProgress: progress
        ? (line) => (json ? console.error : console.log)(line)
        : undefined,
    });
    if (json) {
      const { requests: _requests, ...fields } = found;
      console.log(JSON.stringify(fields));
    } else {
      console.log(`\n${report(found).join("\n")}`);
    }
  } catch (error) {
    if (
      error instanceof ProbeFailed || error instanceof TypeError ||
      error instanceof RangeError
    ) fail((error as Error).message, error instanceof ProbeFailed ? 1 : 2);
    throw error;
  }
}
