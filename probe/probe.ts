#!/usr/bin/env -S deno run --allow-net
/**
 * What any HTTP/1.x server does with a slow request: one at a time, a pool
 * of N, or all at once, and, where it cannot tell, unknown and why. It
 * measures from outside, over fresh connections, the server you wrote in
 * any language, and says which, with the evidence drawn as `deno task demo`
 * draws it:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 probe/probe.ts http://127.0.0.1:7878/
 * deno task probe http://127.0.0.1:8080/ --slow=/slow --json
 * ```
 *
 * It sends the fast request alone and the slow one alone, then one slow
 * request more at a time, each followed by the fast one, while the fast one
 * is answered at once; when it waits for a slow one to end, or is refused,
 * the server is full. Then as many connections that send nothing as the
 * server served at once, and the fast one again: do they hold it? A server
 * without a slow route is loaded with such idle connections instead. It is
 * gentle: it closes no connection before it has sent a whole request on it
 * (an idle one is released by sending its request, on Ctrl-C too), and
 * waits for every answer. docs/probe.md has the method and its limits;
 * verdict.js reads the figures, here and in the lab.
 *
 * @module
 */

// Run from a URL or JSR with no deno.json, so the import names its registry.
// deno-lint-ignore no-import-prefix
import { parseArgs } from "jsr:@std/cli@^1.0.32/parse-args";
import {
  canTell,
  duration,
  fullAt,
  inFlight,
  isSlowRoute,
  NOT_SLOW_MS,
  outcomeOf,
  type ProbeRequest,
  probeRowLabels,
  type ProbeRun,
  refused,
  verdictOf,
} from "./verdict.js";
import { axis, rows, type Timing } from "./timeline.ts";

// ===========================================================================
// The library: probe() and report().
// ===========================================================================

/**
 * What {@linkcode probe} sends and how far it goes; each defaults to
 * {@linkcode PROBE_DEFAULTS}.
 */
export interface ProbeOptions {
  /**
   * The slow request's path. Given, it must be slow (answered 2xx or 3xx,
   * in 50 ms or more); left out, `/sleep` is tried, and without it idle
   * connections load the server instead.
   */
  slow?: string;
  /** The fast request's path: it must be answered 2xx or 3xx. */
  fast?: string;
  /** The most slow requests (or idle connections) in flight at once. */
  max?: number;
  /** How long an idle connection may keep the fast request waiting, in ms. */
  idleMs?: number;
  /** How long the fast request alone may take before the probe gives up, in ms. */
  fastLimitMs?: number;
  /** Called with a line on each step, saying what the probe waits for. */
  onProgress?: (line: string) => void;
  /**
   * Stops the probe (Ctrl-C): it sends its request on every connection that
   * has sent none, closes them, and rejects with the signal's reason.
   */
  signal?: AbortSignal;
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
  fastLimitMs: 10_000,
} as const;

/**
 * What {@linkcode probe} found: the fields of `--json` (verdict.js
 * computes them, for the lab too; JSR needs their types written here), what
 * it probed, and the evidence.
 */
export interface ProbeReport {
  /**
   * One at a time, a pool of `atOnce`, every request it tried at once, or
   * what it could not tell (the sentence says why).
   */
  verdict: "serial" | "pool" | "concurrent" | "unknown";
  /**
   * The most slow requests (or idle connections) in flight while the fast
   * request was still served; null when unknown.
   */
  atOnce: number | null;
  /** Whether every request it tried went together: `atOnce` is a lower bound. */
  atLeast: boolean;
  /**
   * How many of its requests the server refused: an answer outside 2xx and
   * 3xx, a reset, or a close with no answer.
   */
  refused: number;
  /** The most slow requests seen served together, from their answers' times. */
  slowAtOnce: number | null;
  /** Loaded with slow requests, or (no slow route) idle connections. */
  method: "slow" | "idle";
  /** The slow request alone, to its last byte, in ms; null without a slow route. */
  slowMs: number | null;
  /** The fast request alone, to its first byte, in ms. */
  fastMs: number;
  /**
   * Whether connections that send nothing (one, or as many as a pool
   * serves) kept the fast request from being served; null when not seen.
   */
  idleHolds: boolean | null;
  /** The verdict in one sentence, with its evidence. */
  sentence: string;
  /** What it means, and what to do about it. */
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

/** One request of a probe, in ms from its start: see verdict.js. */
export interface ProbedRequest {
  /** Its path. */
  path: string;
  /** `idle`: a connection that sent nothing until the probe released it. */
  kind: "slow" | "fast" | "idle";
  /** When its connection was opened. */
  openedMs: number;
  /** When its request was sent, or null if never. */
  sentMs: number | null;
  /** When its answer's first byte came; null for none, undefined unanswered. */
  answeredMs?: number | null;
  /** When its answer's last byte came, or, with none, when it closed. */
  endedMs?: number | null;
  /** Its answer's status, once seen. */
  status?: number | null;
}

/** The slow request alone must be answered within this, in ms. */
const SLOW_LIMIT_MS = 60_000;
/**
 * A connection must be accepted within this, in ms: on a working server it
 * takes a millisecond, and the kernel resends a lost SYN after 1 s and 3 s.
 */
const CONNECT_LIMIT_MS = 3_000;
/** How long a connection closed at the end may still be answered, in ms. */
const FINISH_MS = 1_000;
/** Options are checked against these: [least, most]. */
const RANGES = {
  max: [1, 256],
  idleMs: [100, 60_000],
  fastLimitMs: [100, 600_000],
} as const;

/**
 * Probes the HTTP server at `url` and says what it does with a slow
 * request. It ends within 4 × S + 10 s for a slow request that takes S
 * (2 × idleMs + 10 s without one), or, while the server answers its slow
 * requests one after another, 2 × S after the last answer, so that it
 * leaves none queued; and it says what it could not see.
 *
 * @param url The server, `http://host:port/`; its path is not used.
 * @param options What to send; see {@linkcode ProbeOptions}.
 * @returns The verdict and the evidence.
 * @throws {TypeError} For a URL that is not http://, a path without a `/`.
 * @throws {RangeError} For a `max` or `idleMs` out of range.
 * @throws {Error} In one line, for a server that cannot be probed: refused,
 * reset, not HTTP, not accepting, a fast request it does not serve, a slow
 * route that is not slow, or no answer.
 *
 * @example Probe a server that answers every request at once: no slow
 * route, so it cannot tell how many requests at once
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hi"));
 * const found = await probe(`http://127.0.0.1:${server.addr.port}/`, { max: 4 });
 * assertEquals([found.method, found.verdict, found.idleHolds], ["idle", "unknown", false]);
 * await server.shutdown();
 * ```
 */
export async function probe(
  url: string | URL,
  options: ProbeOptions = {},
): Promise<ProbeReport> {
  const { slow, fast, max, idleMs, fastLimitMs, onProgress, signal } =
    checkOptions(options);
  const session = new Session(targetOf(url), onProgress, signal);
  try {
    const { target } = session;
    onProgress(
      `Probing ${target.url}: GET ${fast} alone, waiting for its answer (at most ${
        duration(fastLimitMs)
      })…`,
    );
    const fastAlone = await session.alone("fast", fast, fastLimitMs);
    let fastMs = fastAlone.waitMs();
    if (refused(fastAlone.request)) {
      throw new ProbeFailed(
        `GET ${fast} was answered ${fastAlone.status}; give a path the server serves (2xx or 3xx) with --fast=PATH`,
      );
    }
    const slowPath = slow ?? PROBE_DEFAULTS.slow;
    onProgress(
      `GET ${fast}: ${
        duration(fastMs)
      }. GET ${slowPath} alone, waiting for its answer's last byte (at most ${
        duration(SLOW_LIMIT_MS)
      })…`,
    );
    const slowAlone = await session.alone("slow", slowPath, SLOW_LIMIT_MS);
    const slowMs = slowAlone.wholeMs();
    const slowStatus = slowAlone.status;
    const isSlow = isSlowRoute(slowMs, slowStatus);
    if (!isSlow && slow !== undefined) {
      throw new ProbeFailed(
        `GET ${slow} is not slow: answered ${slowStatus} in ${
          duration(slowMs)
        }; give a path the server takes ${NOT_SLOW_MS} ms or more to answer, with 2xx or 3xx`,
      );
    }
    const spanMs = isSlow ? slowMs : idleMs;
    if (!canTell(fastMs, spanMs)) {
      // The first request to a server may pay for its start: once more.
      onProgress(
        `GET ${fast} took ${duration(fastMs)}: once more, alone…`,
      );
      const again = await session.alone("fast", fast, fastLimitMs);
      fastMs = Math.min(fastMs, again.waitMs());
    }
    const run: ProbeRun = {
      method: isSlow ? "slow" : "idle",
      slowPath,
      fastPath: fast,
      fastMs,
      slowMs,
      slowStatus,
      idleMs,
      max,
      requests: [],
      steps: [],
      idle: null,
      unseen: [],
    };
    if (canTell(fastMs, spanMs)) {
      session.deadline = isSlow
        ? 4 * slowMs + 10_000
        : session.now() + 2 * idleMs + 10_000;
      const settled = await ramp(session, run);
      if (isSlow && settled && session.left() > 0) {
        await idleCheck(session, run);
      }
    }
    run.requests = session.clients.map((client) => client.request);
    return {
      url: target.url,
      slowPath,
      fastPath: fast,
      ...verdictOf(run),
      tookMs: Math.round(session.now()),
      requests: run.requests,
    };
  } finally {
    await session.finish();
  }
}

/**
 * The report as probe.ts prints it: the verdict's sentence, the timeline
 * (steps drawn alike folded), the verdict's figures, what it means, and
 * what the probe could not see.
 *
 * @param found What {@linkcode probe} returned.
 * @returns Lines of text, without line ends.
 *
 * @example
 * ```ts
 * import { assertStringIncludes } from "@std/assert";
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hi"));
 * const found = await probe(`http://127.0.0.1:${server.addr.port}/`, { max: 2 });
 * assertStringIncludes(report(found).join("\n"), "verdict: unknown");
 * await server.shutdown();
 * ```
 */
export function report(found: ProbeReport): string[] {
  const labels = probeRowLabels(found.requests);
  // One group a step: the requests it opened, the fast one last.
  const groups: Timing[][] = [];
  let group: Timing[] = [];
  found.requests.forEach((request, i) => {
    const ended = request.endedMs ?? request.answeredMs ?? found.tookMs;
    group.push({
      path: labels[i],
      openedMs: request.openedMs,
      sentMs: request.sentMs ?? ended,
      answeredMs: ended,
    });
    if (i === 1 || request.kind === "fast") {
      groups.push(group);
      group = [];
    }
  });
  if (group.length) groups.push(group);
  const timings = groups.flat();
  const width = Math.max(...timings.map((t) => t.path.length));
  const axisMs = Math.max(...timings.map((t) => t.answeredMs));
  const method = found.method === "slow"
    ? `with ${found.slowPath} (${duration(Number(found.slowMs))} alone)`
    : `with connections that send nothing (${found.slowPath} is not slow)`;
  const figures = found.verdict === "unknown" ? [] : [
    `${found.atOnce} at once${
      found.atLeast ? " (at least: all it tried)" : ""
    }`,
  ];
  if (found.slowAtOnce !== null && found.slowAtOnce !== found.atOnce) {
    figures.push(`${found.slowPath} ${found.slowAtOnce} at a time`);
  }
  if (found.refused) figures.push(`${found.refused} refused`);
  const holds = { true: "yes", false: "no", null: "not seen" }[
    String(found.idleHolds) as "true" | "false" | "null"
  ];
  return [
    found.sentence,
    "",
    ...rows(groups, axisMs, width),
    axis(axisMs, width),
    `  █ from sent to the answer's last byte   ░ connection open, nothing sent`,
    "",
    `verdict: ${
      [found.verdict, ...figures].join(", ")
    }; measured ${method}, in ${duration(found.tookMs)}`,
    `connections that send nothing hold it: ${holds}`,
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
  const { fastLimitMs = PROBE_DEFAULTS.fastLimitMs } = options;
  for (const [name, path] of [["slow", slow], ["fast", fast]]) {
    if (path !== undefined && !/^\/[!-~]*$/.test(path)) {
      throw new TypeError(
        `${name} must be a path such as /sleep, not "${path}"`,
      );
    }
  }
  for (const [name, value] of Object.entries({ max, idleMs, fastLimitMs })) {
    const [least, most] = RANGES[name as keyof typeof RANGES];
    if (!Number.isInteger(value) || value < least || value > most) {
      throw new RangeError(
        `${name} must be a whole number from ${least} to ${most}, not ${value}`,
      );
    }
  }
  const { signal } = options;
  return { slow, fast, max, idleMs, fastLimitMs, onProgress, signal };
}

/**
 * One probe's connections, clock and time limit. Whoever starts the probe
 * owns it: {@linkcode Session.finish} sends every connection its request
 * and closes it.
 */
class Session {
  readonly clients: Client[] = [];
  /** When the probe's time is up, in ms from its start. */
  deadline = Infinity;
  readonly #t0 = performance.now();

  constructor(
    readonly target: Target,
    readonly onProgress: (line: string) => void,
    readonly signal: AbortSignal | undefined,
  ) {
    signal?.throwIfAborted();
  }

  /** Milliseconds since the probe began. */
  now = (): number => performance.now() - this.#t0;

  /** How long the probe has left. */
  left(): number {
    return Math.max(0, this.deadline - this.now());
  }

  /** Waits for the first (or all) of `promises`, or `ms`, or Ctrl-C. */
  wait(promises: Promise<unknown>[], ms: number, all = false) {
    return until(promises, ms, all, this.signal);
  }

  /**
   * Opens a connection and sends its request (an idle one's, later). Once
   * the probe is under way, a connection the server does not take is a
   * refusal, not a failure.
   */
  async open(
    kind: ProbeRequest["kind"],
    path: string,
    limitMs = this.left(),
    refusable = true,
  ): Promise<Client> {
    const { now, signal } = this;
    const client = await Client.open(
      this.target,
      { kind, path, now, refusable, signal },
      Math.min(CONNECT_LIMIT_MS, limitMs),
    );
    this.clients.push(client);
    if (kind !== "idle") await client.send();
    return client;
  }

  /**
   * Sends a request alone and waits for its whole answer; fails in one line
   * if it got none within `limitMs`.
   */
  async alone(
    kind: "fast" | "slow",
    path: string,
    limitMs: number,
  ): Promise<Client> {
    const client = await this.open(kind, path, limitMs, false);
    if (await this.wait([client.ended], limitMs) === "late") {
      throw new ProbeFailed(
        `The server did not answer GET ${path} within ${duration(limitMs)}`,
      );
    }
    if (client.problem) throw new ProbeFailed(`GET ${path}: ${client.problem}`);
    return client;
  }

  /**
   * Releases the idle ones of `clients` (sends their requests) and waits for
   * every answer while the probe has time, which `onAnswer` may extend;
   * says whether all came, and notes in `unseen` if not.
   */
  async settle(
    clients: Client[],
    unseen: string[],
    onAnswer?: () => void,
  ): Promise<boolean> {
    await Promise.all(clients.map((client) => client.send()));
    const open = () => clients.filter((c) => c.request.endedMs === undefined);
    if (!open().length) return true;
    const longer = onAnswer ? ", and longer while answers keep coming" : "";
    this.onProgress(
      `Waiting for ${open().length} more answer${
        open().length === 1 ? "" : "s"
      } (at most ${duration(this.left())}${longer})…`,
    );
    while (open().length) {
      if (await this.wait(open().map((c) => c.ended), this.left()) === "late") {
        unseen.push(
          `${open().length} of its requests were still unanswered when its time was up: it closed them after sending each its request, so the server may still be working on them.`,
        );
        return false;
      }
      onAnswer?.();
    }
    return true;
  }

  /**
   * Gentle to the end: every connection gets its request before it is
   * closed, and nothing is closed before that request is written.
   */
  async finish(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.finish()));
  }
}

/**
 * One load more at a time, each followed by the fast request, until the
 * fast one waits for the load or is refused: the server is full. Then every
 * answer, for as long as a server answering its slow requests one after
 * another needs (2 × S after each), so that none is left queued. Says
 * whether every answer came.
 */
async function ramp(session: Session, run: ProbeRun): Promise<boolean> {
  const { slowPath, fastPath: fast, slowMs, idleMs, max, steps } = run;
  const isSlow = run.method === "slow";
  const name = (count: number) =>
    isSlow
      ? slowPath
      : `connection${count === 1 ? "" : "s"} that send${
        count === 1 ? "s" : ""
      } nothing`;
  session.onProgress(
    isSlow
      ? `GET ${slowPath}: ${
        duration(slowMs)
      }. Now one ${slowPath} more at a time, each followed by ${fast}, waiting for ${fast}'s answer or a ${slowPath}'s end…`
      : `GET ${slowPath} is not slow (${run.slowStatus} in ${
        duration(slowMs)
      }): loading the server with connections that send nothing instead, each followed by ${fast}, waiting up to ${
        duration(idleMs)
      } for ${fast}'s answer…`,
  );
  const loads: Client[] = [];
  for (let load = 1; load <= max && session.left() > 0; load++) {
    if (loads.some((client) => client.request.endedMs != null)) break;
    loads.push(
      await session.open(isSlow ? "slow" : "idle", isSlow ? slowPath : fast),
    );
    const fastOne = await session.open("fast", fast);
    const step = { loads: loads.map((c) => c.request), fast: fastOne.request };
    steps.push(step);
    const limitMs = isSlow ? session.left() : Math.min(idleMs, session.left());
    await decide(session, fastOne, loads, limitMs);
    const outcome = outcomeOf(step);
    const answer = outcome === "refused"
      ? `refused (${fastOne.status || fastOne.problem}): full`
      : outcome === "waited"
      ? `waited${
        typeof fastOne.request.answeredMs === "number"
          ? ` ${duration(fastOne.waitMs())}`
          : ""
      }: full`
      : `answered in ${duration(fastOne.waitMs())}`;
    session.onProgress(
      `${inFlight(step).length} ${name(inFlight(step).length)} ${
        isSlow ? "in flight" : "open"
      }: ${fast} ${answer}`,
    );
    if (fullAt([step])) break;
  }
  const extend = () =>
    session.deadline = Math.max(session.deadline, session.now() + 2 * slowMs);
  return await session.settle(
    [...session.clients],
    run.unseen,
    isSlow ? extend : undefined,
  );
}

/**
 * As many connections that send nothing as the server served slow requests
 * at once (one, if all at once), then the fast request: do they hold it?
 */
async function idleCheck(session: Session, run: ProbeRun): Promise<void> {
  const full = fullAt(run.steps);
  const count = full ? Math.max(1, inFlight(full.step).length) : 1;
  const limitMs = Math.min(run.idleMs, session.left());
  session.onProgress(
    `${count} connection${
      count === 1 ? " that sends" : "s that send"
    } nothing, then ${run.fastPath}, waiting up to ${
      duration(limitMs)
    } for its answer…`,
  );
  const quiet: Client[] = [];
  for (let i = 0; i < count; i++) {
    quiet.push(await session.open("idle", run.fastPath));
  }
  const fastOne = await session.open("fast", run.fastPath);
  run.idle = { loads: quiet.map((c) => c.request), fast: fastOne.request };
  await decide(session, fastOne, quiet, limitMs);
  await session.settle([...quiet, fastOne], run.unseen);
}

/**
 * Waits until the fast request is answered or one of the loads in flight
 * is let go of, or `limitMs` has passed. An answer framed by its close
 * shows its end only with the close, which may come after the fast answer
 * though its last byte came before: such answers, begun but not ended, get
 * as long again as the fast one took to show it.
 */
async function decide(
  session: Session,
  fastOne: Client,
  loads: Client[],
  limitMs: number,
): Promise<void> {
  const step = { loads: loads.map((c) => c.request), fast: fastOne.request };
  const flying = inFlight(step);
  const inAir = loads.filter((c) => flying.includes(c.request));
  await session.wait(
    [fastOne.answered, ...inAir.map((c) => c.ended)],
    limitMs,
  );
  if (typeof fastOne.request.answeredMs !== "number") return;
  const begun = inAir.filter((c) =>
    c.request.answeredMs != null && c.request.endedMs == null
  );
  if (begun.length) {
    await session.wait(begun.map((c) => c.ended), fastOne.waitMs(), true);
  }
}

/**
 * Resolves once the first (or `all`) of `promises` has, or with "late"
 * after `ms`; rejects with the reason of `signal` once it is aborted;
 * clears its timer either way.
 */
async function until(
  promises: Promise<unknown>[],
  ms: number,
  all: boolean,
  signal: AbortSignal | undefined,
): Promise<"late" | undefined> {
  signal?.throwIfAborted();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stop = () => {};
  const late = new Promise<"late">((resolve, reject) => {
    timer = setTimeout(() => resolve("late"), ms);
    stop = () => reject(signal?.reason);
    signal?.addEventListener("abort", stop, { once: true });
  });
  const done = all ? Promise.all(promises) : Promise.race(promises);
  try {
    return await Promise.race([done.then(() => undefined), late]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", stop);
  }
}

/** How {@linkcode Client.open} opens a connection for one request. */
interface Opening {
  kind: ProbeRequest["kind"];
  path: string;
  now: () => number;
  /** Whether a connection the server does not take is a refusal. */
  refusable: boolean;
  signal: AbortSignal | undefined;
}

/**
 * One connection of the probe and its one request. It reads from the
 * start, so that it sees the server answer or close even an idle one, and
 * closes once the answer is whole or the server has closed; finish()
 * closes it otherwise, after sending its request.
 */
class Client {
  /** The answer's status, once its head has come. */
  status: number | null = null;
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
    private readonly conn: Deno.Conn | null,
    private readonly target: Target,
    private readonly now: () => number,
  ) {
    this.answered = this.#answered.promise;
    this.ended = conn ? this.#read(conn) : Promise.resolve();
  }

  /**
   * Opens a connection for one request, within `limitMs`; says in one line
   * why it can't, or, when the probe is under way, makes that a refusal.
   */
  static async open(
    target: Target,
    { kind, path, now, refusable, signal }: Opening,
    limitMs: number,
  ): Promise<Client> {
    const { hostname, port } = target;
    const request: ProbeRequest = { path, kind, openedMs: now(), sentMs: null };
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), limitMs);
    try {
      const conn = await Deno.connect({
        hostname,
        port,
        signal: signal
          ? AbortSignal.any([signal, timeout.signal])
          : timeout.signal,
      });
      request.openedMs = now();
      return new Client(request, conn, target, now);
    } catch (error) {
      signal?.throwIfAborted();
      const failure = connectFailure(
        error,
        target,
        timeout.signal.aborted,
        limitMs,
      );
      if (!refusable) throw failure;
      Object.assign(request, { answeredMs: null, endedMs: now() });
      const client = new Client(request, null, target, now);
      client.problem = failure.message;
      return client;
    } finally {
      clearTimeout(timer);
    }
  }

  /** How long from sending to the answer's first byte. */
  waitMs(): number {
    const { sentMs, answeredMs } = this.request;
    return Math.round((Number(answeredMs) - Number(sentMs)) * 10) / 10;
  }

  /** How long from sending to the answer's last byte. */
  wholeMs(): number {
    const { sentMs, endedMs } = this.request;
    return Math.round((Number(endedMs) - Number(sentMs)) * 10) / 10;
  }

  /** Sends its request, unless sent already or the server has closed. */
  async send(): Promise<void> {
    const { request, conn } = this;
    if (!conn || request.sentMs !== null || request.endedMs != null) return;
    const bytes = new TextEncoder().encode(
      `GET ${request.path} HTTP/1.1\r\nHost: ${this.target.host}\r\n` +
        "User-Agent: probe.ts\r\nConnection: close\r\n\r\n",
    );
    request.sentMs = this.now();
    try {
      for (let written = 0; written < bytes.length;) {
        written += await conn.write(bytes.subarray(written));
      }
    } catch {
      // The server closed it meanwhile: the reader says so.
    }
  }

  /** Sends its request if it has not, waits a little for its answer, closes. */
  async finish(): Promise<void> {
    await this.send();
    await until([this.ended], FINISH_MS, false, undefined);
    this.#close();
  }

  #close() {
    if (this.#closed || !this.conn) return;
    this.#closed = true;
    this.conn.close();
  }

  async #read(conn: Deno.Conn): Promise<void> {
    const { request, now } = this;
    const decoder = new TextDecoder();
    let head = "";
    let bodyLeft = Infinity;
    let chunked = false;
    let tail = "";
    let lastByteMs: number | undefined;
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        lastByteMs = now();
        request.answeredMs ??= lastByteMs;
        const bytes = buffer.subarray(0, n);
        if (this.status !== null) {
          bodyLeft -= n;
          tail = (tail + decoder.decode(bytes)).slice(-7);
          if (bodyLeft <= 0 || (chunked && tail.endsWith("\r\n0\r\n\r\n"))) {
            break;
          }
          continue;
        }
        head += decoder.decode(bytes, { stream: true });
        if (!"HTTP/".startsWith(head.slice(0, 5))) {
          this.problem = `the answer is not HTTP: ${
            JSON.stringify(head.split(/\r?\n/)[0].slice(0, 40))
          }`;
          break;
        }
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) continue;
        const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(head)?.[1]);
        this.status = request.status = Number.isInteger(status) ? status : 0;
        this.#answered.resolve();
        const body = head.slice(end + 4);
        const length = /^content-length: *(\d+)/im.exec(head)?.[1];
        chunked = /^transfer-encoding:.*chunked/im.test(head);
        const empty = this.status < 200 || [204, 304].includes(this.status);
        bodyLeft = empty
          ? 0
          : (length === undefined ? Infinity : Number(length)) -
            new TextEncoder().encode(body).length;
        tail = `\r\n${body}`.slice(-7);
        if (bodyLeft <= 0 || (chunked && tail.endsWith("\r\n0\r\n\r\n"))) break;
      }
    } catch (error) {
      if (!this.#closed) {
        this.problem = error instanceof Deno.errors.ConnectionReset
          ? "the server reset the connection"
          : (error as Error).message;
      }
    }
    // Closed by the probe, unanswered: it waits no more, and that is not the
    // server's answer.
    if (!this.#closed || request.answeredMs !== undefined) {
      request.endedMs = lastByteMs ?? now();
      if (request.answeredMs === undefined) {
        request.answeredMs = null;
        this.problem ??= "the server closed the connection without an answer";
      }
    }
    this.#answered.resolve();
    // Closed by the server, or answered in whole; an idle connection the
    // server closed had nothing sent on it to lose.
    this.#close();
  }
}

/** Why a connection could not be opened, in one line. */
function connectFailure(
  error: unknown,
  { hostname, port }: Target,
  timedOut: boolean,
  limitMs: number,
): ProbeFailed {
  const where = `${hostname}:${port}`;
  if (timedOut) {
    return new ProbeFailed(
      `${where} did not accept a connection within ${
        duration(limitMs)
      }: a server that listens but does not accept, with its queue full, or a firewall that drops the connection`,
    );
  }
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new ProbeFailed(`Nothing listens on ${where}: connection refused`);
  }
  if (error instanceof Deno.errors.ConnectionReset) {
    return new ProbeFailed(`${where} reset the connection`);
  }
  if (error instanceof Deno.errors.NotCapable) {
    return new ProbeFailed(
      `No permission to connect to ${where}: run with --allow-net=${hostname}`,
    );
  }
  return new ProbeFailed(
    `Cannot connect to ${where}: ${(error as Error).message}`,
  );
}

// ===========================================================================
// The command line.
// ===========================================================================

const USAGE = `Usage: probe.ts URL [options]

Says what the HTTP server at URL does with a slow request: one at a time,
a pool of N, or all at once (or unknown, and why); and whether connections
that send nothing hold it. Ctrl-C stops it gently.

Options:
  --slow=PATH     the slow request (default ${PROBE_DEFAULTS.slow}; without one, idle
                  connections load the server instead)
  --fast=PATH     the fast request (default ${PROBE_DEFAULTS.fast})
  --max=N         the most slow requests at once to try (default ${PROBE_DEFAULTS.max})
  --idle-ms=N     how long an idle connection may hold it (default ${PROBE_DEFAULTS.idleMs})
  --json          one JSON object instead of the report, or {"error": ...}
  --help          this`;

if (import.meta.main) {
  const json = Deno.args.includes("--json");
  const fail = (message: string, code: number): never => {
    console.error(`error: ${message}`);
    if (json) console.log(JSON.stringify({ error: message }));
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
  const progress = !json || Deno.stderr.isTerminal();
  // Ctrl-C: the probe releases its idle connections before it exits.
  const interrupted = new AbortController();
  const interrupt = () => interrupted.abort();
  Deno.addSignalListener("SIGINT", interrupt);
  try {
    const found = await probe(url, {
      slow: args.slow,
      fast: args.fast,
      max: number("max", args.max),
      idleMs: number("idle-ms", args["idle-ms"]),
      onProgress: progress
        ? (line) => (json ? console.error : console.log)(line)
        : undefined,
      signal: interrupted.signal,
    });
    if (json) {
      const { requests: _requests, ...fields } = found;
      console.log(JSON.stringify(fields));
    } else {
      console.log(`\n${report(found).join("\n")}`);
    }
  } catch (error) {
    if (interrupted.signal.aborted) {
      fail(
        "Interrupted: every connection it opened was sent its request before it was closed",
        130,
      );
    }
    if (
      error instanceof ProbeFailed || error instanceof TypeError ||
      error instanceof RangeError
    ) fail((error as Error).message, error instanceof ProbeFailed ? 1 : 2);
    throw error;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupt);
  }
}
