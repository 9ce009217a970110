/**
 * A web server that shows, in one loop, the difference between serving
 * clients one at a time and serving them all at once.
 *
 * It is a Deno port of the final project of the Rust async book: the Rust
 * book's `hello.html` / `404.html` server, made async, with a `/sleep` route
 * that answers slowly. Start it in one mode, open `/sleep` in one browser tab
 * and `/` in another, and watch which one answers first:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read main.ts serial
 * deno run --allow-net=127.0.0.1 --allow-read main.ts concurrent
 * ```
 *
 * Read {@linkcode serve} first: its loop is the whole lesson.
 *
 * @module
 */

// This file is meant to be copied on its own, where no deno.json maps bare
// specifiers, so the import names its registry and version in full.
// deno-lint-ignore no-import-prefix
import { STATUS_TEXT, type StatusCode } from "jsr:@std/http@^1.1.3/status";

/** How the accept loop treats each connection it accepts. */
export type Mode = "serial" | "concurrent";

/** The two pages the server sends, as bytes ready to write. */
export interface Pages {
  /** Sent for `/`, `/sleep` and `/block`. */
  hello: Uint8Array;
  /** Sent, with status 404, for any other path. */
  notFound: Uint8Array;
}

/**
 * The part of a {@linkcode Deno.Conn} that {@linkcode handle} uses, so that
 * any connection-like object (an in-memory one in tests, say) can be served.
 */
export type Connection = Pick<Deno.Conn, "read" | "write" | "close">;

/** Options for {@linkcode handle}. */
export interface HandleOptions {
  /** The pages to send; see {@linkcode loadPages}. */
  pages: Pages;
  /**
   * How long `/sleep` waits, and `/block` keeps the thread busy, before it
   * answers, in milliseconds.
   */
  sleepMs: number;
  /**
   * How long a client has to send its whole request head, in milliseconds
   * (checked every 50 ms). A client that takes longer is answered 408 and
   * disconnected.
   */
  headTimeoutMs: number;
  /** The largest request head accepted, in bytes; a larger one gets 431. */
  maxHeadBytes: number;
  /** Where the one line per connection goes. Defaults to `console.log`. */
  log?: (line: string) => void;
  /**
   * Aborted when the server stops accepting. A connection that has not sent
   * a whole request head by then is closed without an answer.
   */
  shutdown?: AbortSignal;
  /**
   * Aborted when the server's grace period is over. A request still being
   * served is dropped and its connection closed.
   */
  abort?: AbortSignal;
}

/** Options for {@linkcode serve}. */
export interface ServeOptions
  extends Omit<HandleOptions, "shutdown" | "abort"> {
  /** Whether the accept loop awaits each connection or detaches it. */
  mode: Mode;
  /**
   * In concurrent mode, how many connections may be served at once. At the
   * limit the loop waits for one to finish before it accepts again, like
   * `for_each_concurrent(limit)` in Rust; a limit of 1 is serial mode.
   */
  maxInFlight: number;
  /**
   * No line per connection. The server's own events (a failed accept, a
   * shutdown) are still logged.
   */
  quiet?: boolean;
  /**
   * Once `signal` is aborted, how long requests in flight may take to
   * finish, in milliseconds, before they are dropped.
   */
  graceMs: number;
  /**
   * Stops the server: the listener is closed, and `serve()` resolves once
   * the requests in flight are done or the grace period is over.
   */
  signal?: AbortSignal;
}

/** The defaults of the command line, which are also sensible for `serve()`. */
export const DEFAULTS = {
  mode: "concurrent",
  maxInFlight: Infinity,
  hostname: "127.0.0.1",
  port: 7878,
  sleepMs: 5000,
  headTimeoutMs: 5000,
  maxHeadBytes: 8192,
  graceMs: 10_000,
} as const satisfies Omit<ServeOptions, "pages"> & {
  hostname: string;
  port: number;
};

/**
 * Accepts connections on `listener` and answers each with
 * {@linkcode handle}: in `"serial"` mode one connection at a time, in
 * `"concurrent"` mode all of them at once, on one thread.
 *
 * A failed accept (out of file descriptors, say) is logged and retried after
 * a short pause; it does not end the loop.
 *
 * @param listener Where connections come from; `serve()` closes it when it stops.
 * @param options The mode, the pages and the limits; see {@linkcode ServeOptions}.
 * @returns A promise that resolves once `options.signal` is aborted and every
 * request in flight has finished or been dropped after the grace period.
 *
 * @example Serve until aborted
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const controller = new AbortController();
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = serve(listener, {
 *   ...DEFAULTS,
 *   mode: "serial",
 *   pages: await loadPages(),
 *   signal: controller.signal,
 * });
 * const response = await fetch(`http://127.0.0.1:${listener.addr.port}/`);
 * assertEquals(response.status, 200);
 * await response.body?.cancel();
 * controller.abort();
 * await served;
 * ```
 */
export async function serve(
  listener: Deno.Listener,
  options: ServeOptions,
): Promise<void> {
  const { mode, maxInFlight, quiet, graceMs, signal, ...limits } = options;
  const endOfGrace = new AbortController();
  const handleOptions: HandleOptions = {
    ...limits,
    log: quiet ? () => {} : limits.log,
    shutdown: signal,
    abort: endOfGrace.signal,
  };
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    report(
      options.log,
      `Stopping: no new connections; requests in flight have ${graceMs} ms to finish`,
    );
    closeQuietly(listener);
    graceTimer = setTimeout(() => endOfGrace.abort(), graceMs);
  };
  if (signal?.aborted) stop();
  else signal?.addEventListener("abort", stop, { once: true });

  const inFlight = new Set<Promise<void>>();
  try {
    for await (const conn of acceptEach(listener, options.log, signal)) {
      if (mode === "serial") {
        // The loop waits here until this client is done. Meanwhile nothing
        // accepts: later clients wait in the kernel's backlog.
        await handle(conn, handleOptions);
      } else {
        // No await: handle() runs until its first await (the first read),
        // and the loop goes straight back to accept the next client. The
        // event loop then serves them all, each whenever its socket or its
        // timer is ready. The promise is kept only so that a shutdown can
        // wait for it; handle() never rejects, so nothing can go unhandled.
        const handling = handle(conn, handleOptions);
        inFlight.add(handling);
        handling.then(() => inFlight.delete(handling));
        // With a limit, a full house makes the loop wait for one client to
        // finish before it accepts another; the rest queue in the backlog.
        if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
      }
    }
    await Promise.all(inFlight);
  } finally {
    clearTimeout(graceTimer);
    signal?.removeEventListener("abort", stop);
  }
}

/**
 * Reads one HTTP/1.x request from `conn`, answers it and closes `conn`.
 *
 * - `GET /` answers 200 with the hello page.
 * - `GET /sleep` waits `sleepMs` on a timer, which blocks nothing else, then
 *   answers like `/`.
 * - `GET /block` keeps the thread busy for `sleepMs`, which blocks everything
 *   else, then answers like `/`.
 * - Any other path answers 404 with the not-found page.
 * - `HEAD` answers as `GET` would, without the body; other methods get 405.
 * - A malformed request gets 400, a head over `maxHeadBytes` gets 431 and a
 *   head that is not complete within `headTimeoutMs` gets 408.
 *
 * One line per connection goes to `options.log`: the request, the status and
 * the time taken, or what went wrong.
 *
 * @param conn The accepted connection; it is closed before the promise settles.
 * @param options The pages, the limits and the log; see {@linkcode HandleOptions}.
 * @returns A promise that resolves when the connection is done. It never
 * rejects: a failure (a client that vanished, say) is logged instead, so the
 * promise can be left unawaited.
 *
 * @example Answer one connection
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const responding = fetch(`http://127.0.0.1:${listener.addr.port}/nowhere`);
 * const conn = await listener.accept();
 * await handle(conn, { ...DEFAULTS, pages: await loadPages() });
 * const response = await responding;
 * assertEquals(response.status, 404);
 * await response.body?.cancel();
 * listener.close();
 * ```
 */
export async function handle(
  conn: Connection,
  options: HandleOptions,
): Promise<void> {
  const started = performance.now();
  const request: { line?: string } = {};
  const dropConnection = () => closeQuietly(conn);
  options.abort?.addEventListener("abort", dropConnection, { once: true });
  let outcome: string;
  try {
    outcome = String(await answer(conn, options, request));
  } catch (error) {
    outcome = `failed: ${describe(error)}`;
  } finally {
    options.abort?.removeEventListener("abort", dropConnection);
    closeQuietly(conn);
  }
  const elapsedMs = Math.round(performance.now() - started);
  report(options.log, `${request.line ?? "-"} ${outcome} (${elapsedMs} ms)`);
}

/**
 * Reads the request head, routes it and writes the response. Returns the
 * status sent, or why none was. `request.line` is filled in as soon as the
 * request line is known, so that a failure after that can name the request.
 */
async function answer(
  conn: Connection,
  options: HandleOptions,
  request: { line?: string },
): Promise<StatusCode | string> {
  const head = await readHead(conn, options);
  switch (head) {
    case "closed":
      return "closed by the client before a whole request";
    case "shutdown":
      return "closed at shutdown before a whole request";
    case "timeout":
      return 408; // answered by endHeadWait()
    case "too large":
      return await respondWithStatus(conn, 431);
  }
  const parsed = parseHead(head);
  if (parsed === undefined) return await respondWithStatus(conn, 400);
  const { method, target, path } = parsed;
  request.line = `${method} ${target}`;
  if (method !== "GET" && method !== "HEAD") {
    return await respondWithStatus(conn, 405, "Allow: GET, HEAD\r\n");
  }
  const withBody = method === "GET";
  const { hello, notFound } = options.pages;
  switch (path) {
    case "/":
      return await respond(conn, 200, HTML, hello, withBody);
    case "/sleep":
      await sleep(options.sleepMs, options.abort);
      if (options.abort?.aborted) {
        return "dropped at the end of the grace period";
      }
      return await respond(conn, 200, HTML, hello, withBody);
    case "/block":
      blockFor(options.sleepMs);
      return await respond(conn, 200, HTML, hello, withBody);
    default:
      return await respond(conn, 404, HTML, notFound, withBody);
  }
}

/**
 * Keeps the thread busy for `ms` milliseconds without ever awaiting: the
 * async book's warning made concrete. While this runs, nothing else does,
 * not even the accept loop, so it stalls a concurrent server as surely as
 * `/sleep` stalls a serial one.
 */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Spin: this is the point.
  }
}

/** Why no request head could be read. */
type NoHead = "closed" | "too large" | HeadWaitEnd;

/**
 * Reads from `conn` until the blank line that ends a request head, however
 * the bytes are split across reads, but no longer than `headTimeoutMs` and
 * not past a shutdown. Returns the head, without what follows it, or why
 * there is none.
 */
async function readHead(
  conn: Connection,
  { headTimeoutMs, maxHeadBytes, shutdown }: HandleOptions,
): Promise<Uint8Array | NoHead> {
  // Most heads are a few hundred bytes: start small and grow up to the
  // limit, so that thousands of waiting connections cost little memory.
  let buffer = new Uint8Array(Math.min(FIRST_READ_BYTES, maxHeadBytes));
  let length = 0;
  const wait = startHeadWait(conn, headTimeoutMs, shutdown);
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
        read = await conn.read(buffer.subarray(length));
      } catch (error) {
        if (wait.ended) return wait.ended; // closed by endHeadWait()
        throw error;
      }
      if (wait.ended) return wait.ended;
      if (read === null) return "closed";
      // The blank line may straddle two reads, so look back a little.
      const searchFrom = Math.max(0, length - 3);
      length += read;
      const end = findHeadEnd(buffer.subarray(0, length), searchFrom);
      if (end !== -1) return buffer.subarray(0, end);
    }
  } finally {
    stopHeadWait(wait);
  }
}

/** Why a connection stopped waiting for its head before it came. */
type HeadWaitEnd = "timeout" | "shutdown";

/** A connection waiting for its request head. */
interface HeadWait {
  conn: Connection;
  deadline: number;
  shutdown: AbortSignal | undefined;
  /** Set once the wait is ended from outside, by {@linkcode endHeadWait}. */
  ended?: HeadWaitEnd;
}

/**
 * Every connection still waiting for its head, checked by one timer every
 * {@linkcode HEAD_WAIT_CHECK_MS}. With thousands of connections waiting, a
 * timer, an abort listener and a promise race of their own each would cost
 * more memory than the connections themselves.
 */
const headWaits = new Set<HeadWait>();
let headWaitTimer: ReturnType<typeof setInterval> | undefined;

function startHeadWait(
  conn: Connection,
  timeoutMs: number,
  shutdown: AbortSignal | undefined,
): HeadWait {
  const wait = { conn, deadline: performance.now() + timeoutMs, shutdown };
  headWaits.add(wait);
  headWaitTimer ??= setInterval(checkHeadWaits, HEAD_WAIT_CHECK_MS);
  return wait;
}

function stopHeadWait(wait: HeadWait): void {
  headWaits.delete(wait);
  if (headWaits.size === 0) {
    clearInterval(headWaitTimer);
    headWaitTimer = undefined;
  }
}

function checkHeadWaits(): void {
  const now = performance.now();
  for (const wait of headWaits) {
    if (wait.shutdown?.aborted) endHeadWait(wait, "shutdown");
    else if (now >= wait.deadline) endHeadWait(wait, "timeout");
  }
}

/**
 * Ends a wait from outside. A pending read stops only when its connection
 * is closed, so a client that ran out of time is answered 408 first; its
 * read then fails, and readHead() returns `why` instead of the error.
 */
function endHeadWait(wait: HeadWait, why: HeadWaitEnd): void {
  stopHeadWait(wait);
  wait.ended = why;
  if (why === "shutdown") return closeQuietly(wait.conn);
  respondWithStatus(wait.conn, 408)
    .catch(() => {}) // a client too slow to send a head may be gone too
    .finally(() => closeQuietly(wait.conn));
}

/**
 * Returns the index just past the first empty line in `bytes` (CRLF line
 * ends, or bare LF, which RFC 9112 lets a server accept), or -1.
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

/** A request line and field lines as RFC 9112 spells them. */
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([!-~]+) HTTP\/1\.([01])$/;
const FIELD_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[\t -~\u0080-\uffff]*$/;

/**
 * Parses a request head. Returns `undefined` when it is not a valid HTTP/1.0
 * or HTTP/1.1 request, including an HTTP/1.1 request without exactly one
 * `Host` field, which RFC 9112 says must be answered 400.
 */
function parseHead(
  head: Uint8Array,
): { method: string; target: string; path: string } | undefined {
  const [requestLine, ...fieldLines] = decoder
    .decode(head)
    .split("\n")
    .map((line) => line.endsWith("\r") ? line.slice(0, -1) : line)
    .slice(0, -2); // the empty line that ends the head, and what follows it
  const match = REQUEST_LINE.exec(requestLine);
  if (match === null) return undefined;
  const [, method, target, minorVersion] = match;

  let hosts = 0;
  for (const line of fieldLines) {
    const field = FIELD_LINE.exec(line);
    if (field === null) return undefined;
    if (field[1].toLowerCase() === "host") hosts++;
  }
  if (hosts > 1 || (minorVersion === "1" && hosts === 0)) return undefined;

  const path = pathOf(target);
  return path === undefined ? undefined : { method, target, path };
}

/**
 * The path of a request target in origin form (`/sleep?x=1`) or absolute
 * form (`http://host/sleep`), or `undefined` for any other form.
 */
function pathOf(target: string): string | undefined {
  if (target.startsWith("/")) return target.split("?", 1)[0];
  if (/^https?:\/\//i.test(target) && URL.canParse(target)) {
    return new URL(target).pathname;
  }
  return undefined;
}

const HTML = "text/html; charset=utf-8";
const TEXT = "text/plain; charset=utf-8";

/** Answers with a short plain-text body that names the status. */
function respondWithStatus(
  conn: Connection,
  status: StatusCode,
  extraHeaders = "",
): Promise<StatusCode> {
  const body = encoder.encode(`${status} ${STATUS_TEXT[status]}\n`);
  return respond(conn, status, TEXT, body, true, extraHeaders);
}

/**
 * Writes a whole HTTP/1.1 response, however few bytes each write takes.
 * Returns `status`.
 */
async function respond(
  conn: Connection,
  status: StatusCode,
  contentType: string,
  body: Uint8Array,
  withBody: boolean,
  extraHeaders = "",
): Promise<StatusCode> {
  const head = encoder.encode(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\n` +
      `Content-Type: ${contentType}\r\n` +
      `Content-Length: ${body.byteLength}\r\n` +
      extraHeaders +
      "Connection: close\r\n\r\n",
  );
  // One buffer, one write in the usual case: head and body in one packet.
  const response = new Uint8Array(
    head.byteLength + (withBody ? body.byteLength : 0),
  );
  response.set(head);
  if (withBody) response.set(body, head.byteLength);
  for (let written = 0; written < response.byteLength;) {
    written += await conn.write(response.subarray(written));
  }
  return status;
}

/**
 * Accepts connections until `listener` is closed. An accept that fails for
 * any other reason (out of file descriptors, say) is logged, and the next
 * one waits a little longer each time, so that a flood of connections does
 * not turn the loop into a busy one.
 */
async function* acceptEach(
  listener: Deno.Listener,
  log: HandleOptions["log"],
  signal: AbortSignal | undefined,
): AsyncGenerator<Deno.Conn> {
  let pauseMs = 0;
  while (true) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      // Closed, by serve() stopping: the end, as for Deno's own iterator.
      if (
        error instanceof Deno.errors.BadResource ||
        error instanceof Deno.errors.Interrupted
      ) return;
      pauseMs = Math.min(
        Math.max(pauseMs * 2, MIN_ACCEPT_PAUSE_MS),
        MAX_ACCEPT_PAUSE_MS,
      );
      report(
        log,
        `Accept failed: ${describe(error)}; trying again in ${pauseMs} ms`,
      );
      await sleep(pauseMs, signal);
      continue;
    }
    pauseMs = 0;
    yield conn;
  }
}

const MIN_ACCEPT_PAUSE_MS = 10;
const MAX_ACCEPT_PAUSE_MS = 1000;
const HEAD_WAIT_CHECK_MS = 50;
const FIRST_READ_BYTES = 256;
const LF = 0x0a;
const CR = 0x0d;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Resolves after `ms` milliseconds, or as soon as `signal` is aborted. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    if (signal?.aborted) wake();
    else signal?.addEventListener("abort", wake, { once: true });
  });
}

/** Closes `resource`, which may already be closed. */
function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed: by the client going away, or by a shutdown.
  }
}

/**
 * Writes a log line. A log that fails (stdout closed by `| head`, say) must
 * not turn into a rejected promise, which would end the process.
 */
function report(log: HandleOptions["log"], line: string): void {
  try {
    (log ?? console.log)(line);
  } catch {
    // There is nowhere left to report to.
  }
}

/**
 * One line about an error. Errors from the network or the system (they
 * carry an errno `code`, or are one of `Deno.errors`) are expected, so their
 * message is enough; anything else is a bug, and its stack says where.
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
 * ```ts ignore
 * const pages = await loadPages();
 * console.log(pages.hello.byteLength);
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

/** What the command line chooses. */
export interface CommandLine {
  /** `serial` or `concurrent`. */
  mode: Mode;
  /** `--max-in-flight=N`; see {@linkcode ServeOptions.maxInFlight}. */
  maxInFlight: number;
  /** `--quiet`: no line per connection. */
  quiet: boolean;
  /** `--hostname=H`: the address to listen on. */
  hostname: string;
  /** `--port=N`: the port to listen on; 0 takes any free one. */
  port: number;
  /** `--sleep-ms=N`; see {@linkcode HandleOptions.sleepMs}. */
  sleepMs: number;
  /** `--head-timeout-ms=N`; see {@linkcode HandleOptions.headTimeoutMs}. */
  headTimeoutMs: number;
  /** `--grace-ms=N`; see {@linkcode ServeOptions.graceMs}. */
  graceMs: number;
  /** `--help` or `-h`: print the usage and stop. */
  help: boolean;
}

/** The command line, as printed by `--help` and after a mistake. */
export const USAGE =
  "Usage: main.ts [serial|concurrent] [--port=N] [--hostname=H] [--sleep-ms=N] [--head-timeout-ms=N] [--grace-ms=N] [--max-in-flight=N] [--quiet]";

const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * Parses the command line. Anything left out takes its value from
 * {@linkcode DEFAULTS}.
 *
 * @param args The arguments after `main.ts`, such as `Deno.args`.
 * @returns What they choose.
 * @throws {TypeError} For an unknown argument, or a value that is not a
 * whole number where one is needed.
 * @throws {RangeError} For a number out of range, such as a port over 65535.
 *
 * @example Serial mode on any free port
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const options = parseCommandLine(["serial", "--port=0"]);
 * assertEquals(options.mode, "serial");
 * assertEquals(options.port, 0);
 * ```
 */
export function parseCommandLine(args: readonly string[]): CommandLine {
  const options: CommandLine = {
    mode: DEFAULTS.mode,
    maxInFlight: DEFAULTS.maxInFlight,
    quiet: false,
    hostname: DEFAULTS.hostname,
    port: DEFAULTS.port,
    sleepMs: DEFAULTS.sleepMs,
    headTimeoutMs: DEFAULTS.headTimeoutMs,
    graceMs: DEFAULTS.graceMs,
    help: false,
  };
  for (const arg of args) {
    if (arg === "serial" || arg === "concurrent") {
      options.mode = arg;
      continue;
    }
    if (arg === "--help" || arg === "-h") {
      options.help = true;
      continue;
    }
    if (arg === "--quiet") {
      options.quiet = true;
      continue;
    }
    const [, name, value] = /^--([a-z-]+)=(.*)$/.exec(arg) ?? [];
    switch (name) {
      case "port":
        options.port = wholeNumber(name, value, 0, 65535);
        break;
      case "hostname":
        if (value === "") throw new TypeError("--hostname needs a value");
        options.hostname = value;
        break;
      case "sleep-ms":
        options.sleepMs = wholeNumber(name, value, 0, LONGEST_TIMER_MS);
        break;
      case "head-timeout-ms":
        options.headTimeoutMs = wholeNumber(name, value, 1, LONGEST_TIMER_MS);
        break;
      case "grace-ms":
        options.graceMs = wholeNumber(name, value, 0, LONGEST_TIMER_MS);
        break;
      case "max-in-flight":
        options.maxInFlight = wholeNumber(
          name,
          value,
          1,
          Number.MAX_SAFE_INTEGER,
        );
        break;
      default:
        throw new TypeError(`Unknown argument "${arg}"`);
    }
  }
  return options;
}

function wholeNumber(
  name: string,
  value: string,
  min: number,
  max: number,
): number {
  if (!/^\d+$/.test(value)) {
    throw new TypeError(`--${name} needs a whole number, not "${value}"`);
  }
  const number = Number(value);
  if (number < min || number > max) {
    throw new RangeError(
      `--${name} must be from ${min} to ${max}, not ${number}`,
    );
  }
  return number;
}

/**
 * Runs the server from the command line until SIGINT or SIGTERM.
 *
 * @param args The command-line arguments, such as `Deno.args`.
 * @returns The exit code: 0 after a clean stop, 1 when the server cannot
 * start (port in use, no permission), 2 for a mistake on the command line.
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
    console.log(USAGE);
    return 0;
  }
  const { mode, hostname, port } = options;

  let pages: Pages;
  try {
    pages = await loadPages();
  } catch (error) {
    console.error(
      `error: Cannot read the pages next to main.ts: ${describe(error)}`,
    );
    return 1;
  }

  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname, port });
  } catch (error) {
    console.error(`error: ${whyNotListening(error, hostname, port)}`);
    return 1;
  }

  const { port: actualPort } = listener.addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  console.log(`Listening on http://${host}:${actualPort}/ (${mode})`);

  const controller = new AbortController();
  const onSignal = () => {
    // A second Ctrl-C means "now", not "when the requests are done".
    if (controller.signal.aborted) Deno.exit(130);
    controller.abort();
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  try {
    await serve(listener, {
      ...options,
      pages,
      maxHeadBytes: DEFAULTS.maxHeadBytes,
      log: (line) =>
        console.log(`${new Date().toISOString().slice(11, 23)} ${line}`),
      signal: controller.signal,
    });
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  }
  console.log("Stopped");
  return 0;
}

/** One line saying why `Deno.listen()` failed, without a stack trace. */
function whyNotListening(
  error: unknown,
  hostname: string,
  port: number,
): string {
  const address = `${hostname}:${port}`;
  if (error instanceof Deno.errors.AddrInUse) {
    return `Address ${address} is already in use; stop what uses it or choose another --port`;
  }
  if (error instanceof Deno.errors.NotCapable) {
    return `No permission to listen on ${address}; run with --allow-net=${hostname}`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `The system does not allow listening on ${address}; ports below 1024 need privileges`;
  }
  return `Cannot listen on ${address}: ${describe(error)}`;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
