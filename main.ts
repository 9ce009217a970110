/**
 * One accept loop, two servers: `await handle(conn)` serves one client at a
 * time, a detached `handle(conn)` serves them all at once (and parallel mode
 * runs that loop in a worker per CPU). A Deno port of the Rust async book's
 * final project. Read {@linkcode serve} first.
 *
 * @module
 */

// This file is meant to be copied on its own, where no deno.json maps bare
// specifiers, so each import names its registry and version in full.
// deno-lint-ignore no-import-prefix
import { delay } from "jsr:@std/async@^1.5.0/delay";
// deno-lint-ignore no-import-prefix
import { parseArgs } from "jsr:@std/cli@^1.0.32/parse-args";
// deno-lint-ignore no-import-prefix
import { STATUS_TEXT, type StatusCode } from "jsr:@std/http@^1.1.3/status";

/**
 * Accepts connections on `listener` and answers each with {@linkcode handle}:
 * in `"serial"` mode one at a time, in `"concurrent"` mode all at once.
 *
 * @param listener Where connections come from; closed when the server stops.
 * @param options The mode and the pages; the rest default to {@linkcode DEFAULTS}.
 * @returns A promise that resolves once `options.signal` is aborted and the
 * requests in flight are done, or dropped after `graceMs`.
 * @throws {TypeError} For an unknown mode or missing pages.
 * @throws {RangeError} For a limit out of range (a negative timeout, say).
 *
 * @example Serve until aborted
 * ```ts
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const stop = new AbortController();
 * const pages = await loadPages();
 * const served = serve(listener, { mode: "serial", pages, signal: stop.signal, log() {} });
 * const response = await fetch(`http://127.0.0.1:${listener.addr.port}/`);
 * console.assert(response.status === 200, await response.text());
 * stop.abort();
 * await served;
 * ```
 */
export async function serve(listener: Deno.Listener, options: ServeOptions) {
  const { mode, maxInFlight, handleOptions, done } = start(listener, options);
  const inFlight = new InFlight();
  for await (const conn of connections(listener, options)) {
    if (mode === "serial") {
      // The loop waits here until this client is done. Meanwhile nothing
      // accepts: later clients wait in the kernel's backlog.
      await handle(conn, handleOptions);
    } else {
      // No await. Unlike a Rust future, which does nothing until polled, an
      // async function runs as soon as it is called, up to its first await
      // (the first read): this client is being served when the loop goes
      // back to accept the next. No spawn is needed, and a forgotten await
      // gives no warning.
      inFlight.add(handle(conn, handleOptions));
      // With a limit, a full house waits for one client to finish first.
      if (inFlight.size >= maxInFlight) await inFlight.oneDone();
    }
  }
  await inFlight.allDone();
  done();
}

/**
 * Reads one HTTP/1.x request from `conn`, answers it (the routes are just
 * below) and closes `conn`. Logs one line: the request, the status and the
 * time taken, or what went wrong.
 *
 * @param conn The accepted connection; closed before the promise settles.
 * @param options The pages; the rest default to {@linkcode DEFAULTS}.
 * @returns A promise that resolves when the connection is done. It never
 * rejects (a client that vanished is logged instead), so it can be left
 * unawaited.
 *
 * @example Answer one connection
 * ```ts
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const responding = fetch(`http://127.0.0.1:${listener.addr.port}/nowhere`);
 * const logs: string[] = [];
 * const conn = await listener.accept();
 * await handle(conn, { pages: await loadPages(), log: (l) => logs.push(l) });
 * console.assert((await responding).status === 404, logs[0]);
 * listener.close();
 * ```
 */
export async function handle(conn: Connection, options: HandleOptions) {
  const started = performance.now();
  const request: { line?: string } = {};
  let outcome: string;
  try {
    outcome = String(await answer(conn, options, request));
  } catch (error) {
    outcome = options.abort?.aborted
      ? "dropped at the end of the grace period"
      : `failed: ${describe(error)}`;
  } finally {
    closeQuietly(conn);
  }
  const elapsedMs = Math.round(performance.now() - started);
  report(options.log, `${request.line ?? "-"} ${outcome} (${elapsedMs} ms)`);
}

/** The routes. Returns the status sent, or why none was. */
async function answer(
  conn: Connection,
  options: HandleOptions,
  request: { line?: string },
): Promise<StatusCode | string> {
  const head = await readHead(conn, options);
  if (head === "too large") return await respondWithStatus(conn, 431);
  if (typeof head === "string") return NO_HEAD[head];
  const parsed = parseHead(head);
  request.line = parsed.line;
  if (parsed.invalid) return await respondWithStatus(conn, 400);
  if (parsed.method !== "GET" && parsed.method !== "HEAD") {
    return await respondWithStatus(conn, 405);
  }
  const withBody = parsed.method === "GET";
  const { pages, sleepMs = DEFAULTS.sleepMs } = options;
  switch (parsed.path) {
    case "/":
      return await respond(conn, 200, pages.hello, withBody);
    case "/sleep":
      // A timer: the thread serves every other client meanwhile.
      await delay(sleepMs, { signal: options.abort });
      return await respond(conn, 200, pages.hello, withBody);
    case "/block":
      // No await: nothing else runs meanwhile, not even the accept loop.
      blockFor(sleepMs);
      return await respond(conn, 200, pages.hello, withBody);
    default:
      return await respond(conn, 404, pages.notFound, withBody);
  }
}

/** Keeps the thread busy for `ms` milliseconds: the async book's warning. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Spin: this is the point.
  }
}

// ---------------------------------------------------------------------------
// Options

/** How the accept loop treats each connection it accepts. */
export type Mode = "serial" | "concurrent";
const isMode = (mode: unknown) => mode === "serial" || mode === "concurrent";

/** The two pages the server sends, as bytes ready to write. */
export interface Pages {
  /** Sent for `/`, `/sleep` and `/block`. */
  hello: Uint8Array;
  /** Sent, with status 404, for any other path. */
  notFound: Uint8Array;
}

/** What {@linkcode handle} needs of a connection: a socket, or a fake one. */
export type Connection = Pick<Deno.Conn, "read" | "write" | "close">;

/** Options for {@linkcode handle}; all but `pages` have defaults. */
export interface HandleOptions {
  /** The pages to send; see {@linkcode loadPages}. */
  pages: Pages;
  /** How long `/sleep` waits, and `/block` spins, in milliseconds. */
  sleepMs?: number;
  /** How long a client has to send its request head, in ms; then 408. */
  headTimeoutMs?: number;
  /** The largest request head accepted, in bytes; a larger one gets 431. */
  maxHeadBytes?: number;
  /** Where the one line per connection goes. Defaults to `console.log`. */
  log?: (line: string) => void;
  /** Once aborted, a connection still waiting for its head is closed. */
  shutdown?: AbortSignal;
  /** Once aborted, a request still being served is dropped. */
  abort?: AbortSignal;
}

/** Options for {@linkcode serve}; all but `mode` and `pages` have defaults. */
export interface ServeOptions
  extends Omit<HandleOptions, "shutdown" | "abort"> {
  /** Whether the accept loop awaits each connection or detaches it. */
  mode: Mode;
  /** Concurrent mode: how many are served at once; 1 is serial mode. */
  maxInFlight?: number;
  /** No line per connection; the server's own events are still logged. */
  quiet?: boolean;
  /** Once stopped, how long requests in flight have to finish, in ms. */
  graceMs?: number;
  /** Stops the server; a string reason (`abort("SIGINT")`) is logged. */
  signal?: AbortSignal;
}

/** The default of every option, for the library and the command line. */
export const DEFAULTS = {
  mode: "concurrent",
  hostname: "127.0.0.1",
  port: 7878,
  sleepMs: 5000,
  headTimeoutMs: 5000,
  maxHeadBytes: 8192,
  maxInFlight: Infinity,
  graceMs: 10_000,
  workers: navigator.hardwareConcurrency,
} as const;

/** The range of each numeric option. */
const RANGES = {
  port: [0, 65535],
  sleepMs: [0, 2 ** 31 - 1], // the longest delay setTimeout() takes
  headTimeoutMs: [1, 2 ** 31 - 1],
  graceMs: [0, 2 ** 31 - 1],
  maxHeadBytes: [64, 2 ** 20],
  maxInFlight: [1, Infinity],
  workers: [1, 1024],
} as const;

/** Throws unless `value` is a whole number (or Infinity) in `[min, max]`. */
function checkRange(name: string, value: unknown, [min, max]: Range) {
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(`${name} must be a number, not ${value}`);
  }
  const whole = Number.isInteger(value) || value === Infinity;
  if (!whole || value < min || value > max) {
    throw new RangeError(`${name} must be from ${min} to ${max}, not ${value}`);
  }
}
type Range = readonly [number, number];

/**
 * Fills in the defaults and checks every option, so that a script that
 * skips type checking gets an error at once, not a loop that never ends.
 */
function checked(options: ServeOptions): Required<ServeOptions> {
  const { mode, pages } = options;
  if (!isMode(mode)) {
    throw new TypeError(`mode must be "serial" or "concurrent", not ${mode}`);
  }
  if (
    !(pages?.hello instanceof Uint8Array) ||
    !(pages.notFound instanceof Uint8Array)
  ) throw new TypeError("pages must be two Uint8Arrays; see loadPages()");
  const given = Object.entries(options).filter(([, v]) => v !== undefined);
  const all: Required<ServeOptions> = {
    ...DEFAULTS,
    log: console.log,
    quiet: false,
    signal: new AbortController().signal,
    ...Object.fromEntries(given),
    mode,
    pages,
  };
  for (const [name, range] of Object.entries(RANGES)) {
    // The port and the workers are the command line's, not serve()'s.
    if (name === "port" || name === "workers") continue;
    checkRange(name, all[name as keyof ServeOptions], range);
  }
  return all;
}

// ---------------------------------------------------------------------------
// Reading the request head

/** Why no request head could be read. */
type NoHead = "closed" | "too large" | HeadWaitEnd;

/** Reads up to the blank line that ends the head, or says why it can't. */
async function readHead(
  conn: Connection,
  options: HandleOptions,
): Promise<Uint8Array | NoHead> {
  const { maxHeadBytes = DEFAULTS.maxHeadBytes } = options;
  checkRange("maxHeadBytes", maxHeadBytes, RANGES.maxHeadBytes); // or no end
  // Most heads are a few hundred bytes: start small and grow up to the
  // limit, so that thousands of waiting connections cost little memory.
  let buffer = new Uint8Array(Math.min(256, maxHeadBytes));
  let length = 0;
  const wait = startHeadWait(conn, options);
  try {
    while (true) {
      if (length === buffer.length) {
        if (length >= maxHeadBytes) return "too large";
        const larger = new Uint8Array(Math.min(length * 2, maxHeadBytes));
        larger.set(buffer);
        buffer = larger;
      }
      let read: number | null;
      try {
        read = await conn.read(length ? buffer.subarray(length) : buffer);
      } catch (error) {
        if (wait.ended) return wait.ended; // closed by checkHeadWaits()
        throw error;
      }
      if (wait.ended) return wait.ended;
      if (read === null) return "closed";
      // The blank line may straddle two reads, so look back a little.
      const searchFrom = Math.max(0, length - 3);
      length += read;
      const end = findHeadEnd(buffer, searchFrom);
      if (end !== -1) return buffer.subarray(0, end);
    }
  } finally {
    stopHeadWait(wait);
  }
}

/** What to log when no head came; a 408 is sent by checkHeadWaits(). */
const NO_HEAD = {
  closed: "closed by the client before a whole request",
  shutdown: "closed at shutdown before a whole request",
  timeout: 408,
} as const;

/**
 * The index just past the first empty line (CRLF or bare LF), or -1. Past
 * what was read, the buffer is still all zeros, so the search needs no end.
 */
function findHeadEnd(bytes: Uint8Array, from: number): number {
  for (
    let i = bytes.indexOf(LF, from);
    i !== -1;
    i = bytes.indexOf(LF, i + 1)
  ) {
    if (bytes[i + 1] === LF) return i + 2;
    if (bytes[i + 1] === CR && bytes[i + 2] === LF) return i + 3;
  }
  return -1;
}

const LF = 0x0a;
const CR = 0x0d;

// ---------------------------------------------------------------------------
// Parsing the head

/** A request line and field lines as RFC 9112 spells them, CR optional. */
const REQUEST_LINE =
  /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([!-~]+) HTTP\/1\.([01])\r?$/;
const FIELD_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[\t -~\u0080-\uffff]*\r?$/;

/** The request, or `invalid` with as much of the request line as was read. */
type ParsedHead =
  | { invalid?: false; line: string; method: string; path: string }
  | { invalid: true; line?: string };

/** Parses a head; HTTP/1.1 needs exactly one `Host` (RFC 9112). */
function parseHead(head: Uint8Array): ParsedHead {
  const [requestLine, ...fieldLines] = decoder.decode(head).split("\n")
    .slice(0, -2); // the empty line that ends the head, and what follows it
  const match = REQUEST_LINE.exec(requestLine);
  if (match === null) return { invalid: true };
  const [, method, target, minorVersion] = match;
  const line = `${method} ${target}`;

  let hosts = 0;
  for (const fieldLine of fieldLines) {
    const field = FIELD_LINE.exec(fieldLine);
    if (field === null) return { invalid: true, line };
    if (field[1].length === 4 && field[1].toLowerCase() === "host") hosts++;
  }
  const path = pathOf(target);
  if (hosts > 1 || (minorVersion === "1" && hosts === 0) || !path) {
    return { invalid: true, line };
  }
  return { line, method, path };
}

/** The path of a target in origin (`/a?b`) or absolute form, if either. */
function pathOf(target: string): string | undefined {
  if (target.startsWith("/")) return target.split("?", 1)[0];
  if (/^https?:\/\//i.test(target) && URL.canParse(target)) {
    return new URL(target).pathname;
  }
}

const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// Writing the response

const HTML = "text/html; charset=utf-8";
const TEXT = "text/plain; charset=utf-8";
const encoder = new TextEncoder();

/** Writes a whole HTML response, with or without its body. */
function respond(
  conn: Connection,
  status: StatusCode,
  page: Uint8Array,
  withBody: boolean,
): Promise<StatusCode> {
  const response = pageResponse(status, page);
  const headLength = response.length - page.length;
  return send(
    conn,
    withBody ? response : response.subarray(0, headLength),
    status,
  );
}

/**
 * The response for a page, built on its first request and kept with the
 * page: the pages are fixed once loaded, so nothing needs building twice.
 */
function pageResponse(status: StatusCode, page: Uint8Array): Uint8Array {
  let byStatus = pageResponses.get(page);
  if (byStatus === undefined) {
    byStatus = new Map();
    pageResponses.set(page, byStatus);
  }
  let response = byStatus.get(status);
  if (response === undefined) {
    response = responseBytes(status, HTML, page);
    byStatus.set(status, response);
  }
  return response;
}
const pageResponses = new WeakMap<Uint8Array, Map<StatusCode, Uint8Array>>();

/** Answers with a short plain-text body that names the status. */
function respondWithStatus(conn: Connection, status: ErrorStatus) {
  return send(conn, STATUS_RESPONSES[status], status);
}
type ErrorStatus = 400 | 405 | 408 | 431;
const STATUS_RESPONSES = Object.fromEntries(
  ([400, 405, 408, 431] as const).map((status) => {
    const body = encoder.encode(`${status} ${STATUS_TEXT[status]}\n`);
    return [status, responseBytes(status, TEXT, body)];
  }),
) as Record<ErrorStatus, Uint8Array>;

/** Head and body in one buffer, so that the usual case is one write. */
function responseBytes(status: StatusCode, type: string, body: Uint8Array) {
  const head = encoder.encode(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\n` +
      `Content-Type: ${type}\r\n` +
      `Content-Length: ${body.byteLength}\r\n` +
      (status === 405 ? "Allow: GET, HEAD\r\n" : "") +
      "Connection: close\r\n\r\n",
  );
  const response = new Uint8Array(head.byteLength + body.byteLength);
  response.set(head);
  response.set(body, head.byteLength);
  return response;
}

/** Writes all of `bytes`, however few each write takes; returns `status`. */
async function send<S>(conn: Connection, bytes: Uint8Array, status: S) {
  let written = await conn.write(bytes);
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
  return status;
}

// ---------------------------------------------------------------------------
// Limits: the head timeout, the accept back-off, the limit in flight, the stop

/** A connection waiting for its head: its place in the list, or -1. */
interface HeadWait {
  conn: Connection;
  deadline: number;
  shutdown: AbortSignal | undefined;
  index: number;
  ended?: HeadWaitEnd;
}
type HeadWaitEnd = "timeout" | "shutdown";

/**
 * Every connection waiting for its head, checked by one timer every 50 ms:
 * a timer, an abort listener and a promise race for each would cost more
 * memory than thousands of waiting connections themselves. A running
 * server holds the timer, so that it is not set and cleared again for
 * every connection (about 4 µs each time). A plain array, not a Set: with
 * thousands of adds and deletes a second, a Set kept connections alive
 * long enough for V8 to promote them, and resident memory doubled.
 */
const headWaits: HeadWait[] = [];
let headWaitTimer: ReturnType<typeof setInterval> | undefined;
let serversHoldingTimer = 0;

function startHeadWait(conn: Connection, options: HandleOptions): HeadWait {
  const timeoutMs = options.headTimeoutMs ?? DEFAULTS.headTimeoutMs;
  const deadline = performance.now() + timeoutMs;
  const { shutdown } = options;
  const wait = { conn, deadline, shutdown, index: headWaits.length };
  headWaits.push(wait);
  updateHeadWaitTimer();
  return wait;
}

/** Takes `wait` off the list, if it is on it: the last one takes its place. */
function stopHeadWait(wait: HeadWait): void {
  if (wait.index === -1) return;
  const last = headWaits.pop()!;
  if (last !== wait) {
    last.index = wait.index;
    headWaits[wait.index] = last;
  }
  wait.index = -1;
  updateHeadWaitTimer();
}

/** Runs the timer while a server runs or a connection waits, only then. */
function updateHeadWaitTimer(): void {
  if (headWaits.length > 0 || serversHoldingTimer > 0) {
    headWaitTimer ??= setInterval(checkHeadWaits, 50);
  } else {
    clearInterval(headWaitTimer);
    headWaitTimer = undefined;
  }
}

/**
 * Ends the waits that ran out of time or met a shutdown. A pending read
 * stops only when its connection is closed, so a client out of time is
 * answered 408 first; its read then fails, and readHead() returns `ended`.
 */
function checkHeadWaits(): void {
  const now = performance.now();
  // Backwards: stopping a wait moves the last one, already checked, here.
  for (let i = headWaits.length - 1; i >= 0; i--) {
    const wait = headWaits[i];
    if (wait.shutdown?.aborted) wait.ended = "shutdown";
    else if (now >= wait.deadline) wait.ended = "timeout";
    else continue;
    stopHeadWait(wait);
    if (wait.ended === "shutdown") closeQuietly(wait.conn);
    else {
      respondWithStatus(wait.conn, 408)
        .catch(() => {}) // a client too slow to send a head may be gone too
        .finally(() => closeQuietly(wait.conn));
    }
  }
}

/**
 * The connections `for await (const conn of listener)` gives, but a failed
 * accept (out of file descriptors, say) is logged and retried after a pause
 * that doubles each time, so that a flood does not make the loop spin.
 */
async function* connections(listener: Deno.Listener, options: ServeOptions) {
  let pauseMs = 0;
  while (true) {
    try {
      yield await listener.accept();
      pauseMs = 0;
    } catch (error) {
      if (
        error instanceof Deno.errors.BadResource ||
        error instanceof Deno.errors.Interrupted
      ) return; // closed by a stop
      pauseMs = Math.min(Math.max(pauseMs * 2, 10), 1000);
      const retry = `trying again in ${pauseMs} ms`;
      report(options.log, `Accept failed: ${describe(error)}; ${retry}`);
      await delay(pauseMs, { signal: options.signal }).catch(() => {});
    }
  }
}

/** The requests in flight, counted: waiting for one costs O(1). */
class InFlight {
  size = 0;
  #wake: (() => void) | undefined;
  #done = () => {
    this.size--;
    this.#wake?.();
  };

  /** Counts `handling` until it settles (handle() never rejects). */
  add(handling: Promise<void>): void {
    this.size++;
    handling.then(this.#done);
  }

  /** Resolves once the next request is done; only the loop waits. */
  oneDone(): Promise<void> {
    return new Promise((resolve) => this.#wake = resolve);
  }

  async allDone(): Promise<void> {
    while (this.size > 0) await this.oneDone();
  }
}

/**
 * Checks the options and arms the stop: closing the listener ends the loop,
 * connections waiting for a head are closed, requests in flight get
 * `graceMs` before they are dropped. Call `done()` at the end.
 */
function start(listener: Deno.Listener, options: ServeOptions) {
  const { mode, maxInFlight, graceMs, signal, ...all } = checked(options);
  const endOfGrace = new AbortController();
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    const why = typeof signal.reason === "string" ? ` on ${signal.reason}` : "";
    const grace = `requests in flight have ${graceMs} ms to finish`;
    report(all.log, `Stopping${why}: no new connections; ${grace}`);
    closeQuietly(listener);
    graceTimer = setTimeout(() => endOfGrace.abort(), graceMs);
  };
  if (signal.aborted) stop();
  else signal.addEventListener("abort", stop, { once: true });
  serversHoldingTimer++;
  updateHeadWaitTimer();
  const handleOptions: HandleOptions = {
    ...all,
    log: all.quiet ? () => {} : all.log,
    shutdown: signal,
    abort: endOfGrace.signal,
  };
  const done = () => {
    serversHoldingTimer--;
    updateHeadWaitTimer();
    clearTimeout(graceTimer);
    signal.removeEventListener("abort", stop);
  };
  return { mode, maxInFlight, handleOptions, done };
}

// ---------------------------------------------------------------------------
// Small helpers

/** Closes `resource`, which may already be closed. */
function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed: by the client going away, or by a stop.
  }
}

/** Logs a line; a log that fails (`| head`, a full disk) loses it. */
function report(log: HandleOptions["log"], line: string): void {
  try {
    (log ?? console.log)(line);
  } catch {
    // Nowhere left to report to; throwing would end the process.
  }
}

/**
 * One line about an error: the message for the network's and the system's
 * (an errno `code`, or a `Deno.errors` class), the stack for a bug.
 */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const expected = "code" in error ||
    Object.values(Deno.errors).some((kind) => error instanceof kind);
  return expected ? error.message : error.stack ?? error.message;
}

/**
 * Reads `hello.html` and `404.html` from the folder that holds this module,
 * whatever the working directory.
 *
 * @param folder The folder to read them from, as a URL ending in `/`.
 * @returns The two pages, as bytes.
 *
 * @example Load the pages next to main.ts
 * ```ts
 * const pages = await loadPages();
 * console.assert(pages.hello.byteLength > 0);
 * ```
 */
export async function loadPages(
  folder: URL = new URL("./", import.meta.url),
): Promise<Pages> {
  const [hello, notFound] = await Promise.all([
    Deno.readFile(new URL("hello.html", folder)),
    Deno.readFile(new URL("404.html", folder)),
  ]);
  return { hello, notFound };
}

// ---------------------------------------------------------------------------
// Parallel mode: the concurrent loop on every CPU

/**
 * Runs serve() in concurrent mode in `options.workers` Workers: threads with
 * an event loop each, listening on `probe`'s port with SO_REUSEPORT, so that
 * the kernel gives each new connection to one of them. `probe` holds the
 * port until they all listen. A worker that fails ends them all (a bug).
 * Resolves with the exit code once they have stopped.
 */
async function serveInWorkers(
  probe: Deno.TcpListener,
  { pages, signal: stop, ...options }: ParallelOptions,
  startLine: string,
): Promise<number> {
  const port = probe.addr.port;
  const failed = Promise.withResolvers<string>();
  const workers = Array.from({ length: options.workers }, (_, i) => {
    const worker = new Worker(import.meta.url, { type: "module" });
    const said = { listening: wait(), stopped: wait() };
    // A worker says "listening", later "stopped", or else why it failed.
    worker.onmessage = ({ data }) =>
      (said[data as Said] ?? failed).resolve(data);
    worker.onerror = (event) => {
      event.preventDefault(); // end this worker, not the process
      failed.resolve(`Worker ${i + 1} failed: ${event.message}`);
    };
    worker.postMessage({ id: i + 1, options: { ...options, port }, pages });
    stop.addEventListener("abort", () => worker.postMessage(stop.reason));
    return { worker, ...said };
  });
  const all = (word: Said) =>
    Promise.race([
      failed.promise,
      Promise.all(workers.map((w) => w[word].promise)).then(() => ""),
    ]);
  let failure = await all("listening");
  probe.close();
  if (!failure) print(startLine);
  failure ||= await all("stopped");
  workers.forEach(({ worker }) => worker.terminate());
  if (failure) console.error(`error: ${failure}`);
  return failure ? 1 : 0;
}
type ParallelOptions = CommandLine & { pages: Pages; signal: AbortSignal };
type Said = "listening" | "stopped";
const wait = () => Promise.withResolvers<string>();

/** In a worker of parallel mode: serve() until the main thread says stop. */
function serveInWorker(): void {
  // A worker's global scope talks to its parent as a Worker object does.
  const parent = globalThis as unknown as Worker;
  const stop = new AbortController();
  parent.onmessage = async ({ data }) => {
    if (!data.options) return stop.abort(data); // the reason, as in main()
    const { id, options, pages } = data;
    const { hostname, port } = options;
    let listener;
    try {
      listener = Deno.listen({ hostname, port, reusePort: true });
    } catch (error) {
      const why = `a second listener on ${port}: ${describe(error)}`;
      return parent.postMessage(
        `Parallel mode needs SO_REUSEPORT, which Deno sets on Linux only (${why})`,
      );
    }
    parent.postMessage("listening");
    await serve(listener, {
      ...options,
      mode: "concurrent",
      pages,
      log: (line) => print(`${localTime()} worker ${id}: ${line}`),
      signal: stop.signal,
    });
    parent.postMessage("stopped");
  };
}

/** Why parallel mode cannot start here, if it cannot. */
function whyNoParallelMode(): string | undefined {
  // Deno.listenDatagram is there only with the unstable network APIs on,
  // as Deno.listen's reusePort needs: without them, it ends the process.
  if (!("listenDatagram" in Deno)) {
    return "Parallel mode needs Deno.listen's reusePort, still unstable: add --unstable-net after deno run";
  }
  const self = import.meta.filename; // undefined for a remote module
  const read = self &&
    Deno.permissions.querySync({ name: "read", path: self });
  if (read && read.state !== "granted") {
    return `Parallel mode starts its workers from ${self}: add it to --allow-read`;
  }
}

// ---------------------------------------------------------------------------
// The command line

/** What the command line chooses; see {@linkcode ServeOptions}. */
export type CommandLine =
  & Required<
    Pick<ServeOptions, "sleepMs" | "headTimeoutMs" | "graceMs" | "maxInFlight">
  >
  & { quiet: boolean }
  & { mode: Mode | "parallel"; hostname: string; port: number }
  & { workers: number; help: boolean };

/** The help that `--help` prints. */
export const HELP = `Usage: main.ts [serial|concurrent|parallel] [options]

Serves hello.html and 404.html, a slow /sleep and a CPU-bound /block.
  serial       the accept loop awaits each connection: one client at a time
  concurrent   the accept loop detaches each connection: all at once (default)
  parallel     concurrent, in a worker thread per CPU on one port (Linux only;
               needs deno run --unstable-net and main.ts in --allow-read)

Options (--name=value and --name value both work):
  --port N             the port; 0 takes any free one (default ${DEFAULTS.port})
  --hostname H         the address, such as ::1 (default ${DEFAULTS.hostname})
  --sleep-ms N         how long /sleep waits and /block spins (default ${DEFAULTS.sleepMs})
  --head-timeout-ms N  time to send a request head, then 408 (default ${DEFAULTS.headTimeoutMs})
  --grace-ms N         on Ctrl-C or SIGTERM, time left to requests (default ${DEFAULTS.graceMs})
  --max-in-flight N    at most N connections at once in each loop (default: no limit)
  --workers N          parallel: how many worker threads (default ${DEFAULTS.workers})
  --quiet              no line per connection
  -h, --help           print this help

Examples:
  deno run --allow-net=127.0.0.1 --allow-read main.ts serial --sleep-ms 2000
  deno run --allow-net=[::1] --allow-read main.ts --hostname ::1 --port 0
  deno run --unstable-net --allow-net=127.0.0.1 --allow-read main.ts parallel`;

/** The flags that take a whole number, each named for its option. */
const NUMBER_FLAGS = [
  "port",
  "sleep-ms",
  "head-timeout-ms",
  "grace-ms",
  "max-in-flight",
  "workers",
] as const;

/**
 * Parses the command line; what it leaves out comes from {@linkcode DEFAULTS}.
 *
 * @param args The arguments after `main.ts`, such as `Deno.args`.
 * @returns What they choose.
 * @throws {TypeError} For an unknown argument, a missing value, or choices
 * that contradict each other.
 * @throws {RangeError} For a number out of range, such as a port over 65535.
 *
 * @example Serial mode on any free port
 * ```ts
 * const options = parseCommandLine(["serial", "--port", "0"]);
 * console.assert(options.mode === "serial" && options.port === 0);
 * ```
 */
export function parseCommandLine(args: readonly string[]): CommandLine {
  const flags = parseArgs([...args], {
    string: ["hostname", ...NUMBER_FLAGS],
    boolean: ["help", "quiet"],
    alias: { h: "help" },
    unknown(arg, key) {
      if (key !== undefined) throw new TypeError(`Unknown option "${arg}"`);
    },
  });
  const modes = flags._.map(String);
  const unknown = modes.find((mode) => !isMode(mode) && mode !== "parallel");
  if (unknown) throw new TypeError(`Unknown argument "${unknown}"`);
  if (modes.length > 1) {
    throw new TypeError(`Choose one mode, not ${modes.join(" and ")}`);
  }
  const { maxHeadBytes: _, ...defaults } = DEFAULTS;
  const options: CommandLine = {
    ...defaults,
    mode: (modes[0] ?? DEFAULTS.mode) as CommandLine["mode"],
    hostname: (flags.hostname ?? DEFAULTS.hostname).replace(/^\[(.*)\]$/, "$1"),
    quiet: flags.quiet,
    help: flags.help,
  };
  for (const flag of NUMBER_FLAGS) {
    const value = flags[flag];
    if (value === undefined) continue;
    if (!/^\d+$/.test(value)) {
      const not = value === "" ? "a value" : `a whole number, not "${value}"`;
      throw new TypeError(`--${flag} needs ${not}`);
    }
    const option = flag.replace(/-(.)/g, (_, c) => c.toUpperCase());
    checkRange(`--${flag}`, Number(value), RANGES[option as "port"]);
    options[option as keyof typeof RANGES & keyof CommandLine] = Number(value);
  }
  if (options.hostname === "") throw new TypeError("--hostname needs a value");
  if (options.mode === "serial" && flags["max-in-flight"] !== undefined) {
    throw new TypeError("--max-in-flight does not apply to serial mode");
  }
  if (options.mode !== "parallel" && flags.workers !== undefined) {
    throw new TypeError("--workers is for parallel mode only");
  }
  return options;
}

/**
 * Runs the server from the command line until SIGINT or SIGTERM.
 *
 * @param args The command-line arguments, such as `Deno.args`.
 * @returns The exit code: 0 after a clean stop, 1 when the server cannot
 * start (port in use, bad address, no permission), 2 for a mistake on the
 * command line.
 *
 * @example Serial mode on port 8080
 * ```ts ignore
 * Deno.exit(await main(["serial", "--port=8080"]));
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  let options: CommandLine;
  try {
    options = parseCommandLine(args);
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    print(HELP);
    return 0;
  }
  const { mode, hostname, port, workers } = options;
  const parallel = mode === "parallel";
  const cannot = parallel && whyNoParallelMode();
  if (cannot) {
    console.error(`error: ${cannot}`);
    return 1;
  }
  let pages: Pages, listener: Deno.TcpListener;
  try {
    pages = await loadPages();
  } catch (error) {
    console.error(`error: Cannot read the pages: ${describe(error)}`);
    return 1;
  }
  try {
    // In parallel mode, the workers join this listener's port.
    listener = Deno.listen({ hostname, port, reusePort: parallel });
  } catch (error) {
    console.error(`error: ${whyNotListening(error, options, args)}`);
    return 1;
  }
  const url = `http://${bracketed(hostname)}:${listener.addr.port}/`;
  const how = parallel ? `parallel, ${workers} workers` : mode;
  const started = `Listening on ${url} (${how})`;

  const stop = new AbortController();
  const removeSignalListeners = onSignals(stop);
  const serving = { ...options, pages, signal: stop.signal };
  let code = 0;
  try {
    if (parallel) code = await serveInWorkers(listener, serving, started);
    else {
      print(started);
      await serve(listener, {
        ...serving,
        mode,
        log: (line) => print(`${localTime()} ${line}`),
      });
    }
  } finally {
    removeSignalListeners();
  }
  if (code === 0) print("Stopped");
  return code;
}

const USAGE =
  "Usage: main.ts [serial|concurrent|parallel] [options]; see --help";

/**
 * Aborts `stop` on SIGINT or SIGTERM, and exits 130 on a second one. A
 * terminal sends Ctrl-C to the whole process group, and `deno task` passes
 * it on too, so one press can arrive twice: a repeat within half a second
 * is the same press. Returns a function that removes the listeners.
 */
function onSignals(stop: AbortController): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  let stoppedAt = 0;
  const handlers = signals.map((signal) => () => {
    if (!stop.signal.aborted) {
      stoppedAt = performance.now();
      const again = signal === "SIGINT"
        ? "press Ctrl-C again"
        : "send it again";
      stop.abort(`${signal} (${again} to exit at once)`);
    } else if (performance.now() - stoppedAt > 500) Deno.exit(130);
  });
  signals.forEach((s, i) => Deno.addSignalListener(s, handlers[i]));
  return () =>
    signals.forEach((s, i) => Deno.removeSignalListener(s, handlers[i]));
}

/** Prints a line; a standard output that fails (`> /dev/full`) loses it. */
function print(line: string): void {
  report(console.log, line);
}

/** The local time of day, to the millisecond: `14:03:27.042`. */
function localTime(now = new Date()): string {
  const ms = String(now.getMilliseconds()).padStart(3, "0");
  return `${now.toTimeString().slice(0, 8)}.${ms}`;
}

/** A hostname as a URL or `--allow-net` spells it: IPv6 in brackets. */
function bracketed(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

/**
 * One line saying why `Deno.listen()` failed, without a stack trace; for a
 * missing permission, the command that has it, with the same arguments.
 */
function whyNotListening(
  error: unknown,
  { hostname, port, mode }: CommandLine,
  args: readonly string[],
) {
  const why = error instanceof Error ? error.message : String(error);
  const address = `${bracketed(hostname)}:${port}`;
  if (error instanceof Deno.errors.AddrInUse) {
    return `Address ${address} is already in use; stop what uses it or choose another --port`;
  }
  if (error instanceof Deno.errors.NotCapable) {
    const flags = `${mode === "parallel" ? "--unstable-net " : ""}--allow-net=${
      bracketed(hostname)
    } --allow-read`;
    return `No permission to listen on ${address}; the deno tasks allow only 127.0.0.1, so run: deno run ${flags} main.ts ${
      args.join(" ")
    }`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `The system does not allow listening on ${address}; ports below 1024 need privileges`;
  }
  return `Cannot listen on ${address}: ${why}`;
}

if (import.meta.main) {
  // In a worker of parallel mode, this module is the main module too.
  if ("WorkerGlobalScope" in globalThis) serveInWorker();
  else Deno.exit(await main(Deno.args));
}
