#!/usr/bin/env -S deno run --allow-net=127.0.0.1 --allow-read
// Run as ./main.ts, the line above gives the permissions. It allows every
// read, where deno.json's tasks allow only `.`: it may start in any folder.
// This file is meant to be copied on its own, where no deno.json maps bare
// specifiers, so each import names its registry and version in full:
// deno-lint-ignore-file no-import-prefix
/**
 * One accept loop, two servers: `await handle(conn)` serves one client at a
 * time, a detached `handle(conn)` serves them all at once (and parallel mode
 * runs that loop in a worker per CPU). A Deno port of the Rust async book's
 * final project.
 *
 * @module
 */

import { delay } from "jsr:@std/async@^1.5.0/delay";
import { parseArgs } from "jsr:@std/cli@^1.0.32/parse-args";
import { STATUS_TEXT, type StatusCode } from "jsr:@std/http@^1.1.3/status";
import { levenshteinDistance } from "jsr:@std/text@^1.0.19/levenshtein-distance";

// ===========================================================================
// 1. The lesson: serve(), handle() and the routes, /block's two cures among
// them. Read this first; the sections after it are what they call, and a
// first reading may skip all of them but the next, which says what serve()
// and handle() take.
// ===========================================================================

/**
 * Accepts connections on `listener` and answers each with {@linkcode handle}:
 * in `"serial"` mode one at a time, in `"concurrent"` mode all at once.
 *
 * @param listener Where connections come from; closed when the server stops.
 * @param options The mode and the pages; the rest default to {@linkcode DEFAULTS}.
 * @returns A promise that resolves once stopped and every connection is
 * closed, and rejects at once, before accepting, for a mistake in `options`.
 *
 * @example Serve until stopped
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const stop = new AbortController();
 * const pages = await loadPages();
 * const served = serve(listener, { mode: "serial", pages, stop: stop.signal, log() {} });
 * const response = await fetch(`http://127.0.0.1:${listener.addr.port}/`);
 * assertEquals(await response.bytes(), pages.hello);
 * stop.abort();
 * await served;
 * ```
 */
export async function serve(
  listener: Deno.Listener,
  options: ServeOptions,
): Promise<void> {
  // `using`: whatever the server started is let go when serve() returns.
  using server = new Server(listener, options);
  // open: the connections being handled now, with the options for each.
  const { mode, maxInFlight, open } = server;
  // As `for await (const conn of listener)`, but an accept that fails (out
  // of file descriptors, say) is logged and tried again, not the end.
  for await (const conn of server.accepted()) {
    if (mode === "serial") {
      // The loop waits here until this client is done. Meanwhile nothing
      // accepts: later clients wait in the kernel's backlog.
      await handleConnection(conn, open);
    } else {
      // No await, and `void` says it is meant (deno lint flags a call left
      // bare). Unlike a Rust future, which does nothing until polled, a
      // promise's work starts when it is called: it runs up to its first
      // await (the first read), so this client is being served when the
      // loop goes back to accept the next. No spawn is needed.
      void handleConnection(conn, open);
      // With a limit, a full house waits for one client to finish first.
      if (open.size >= maxInFlight) await open.oneClosed();
    }
  }
  await open.allClosed();
}

/**
 * Reads one HTTP/1.x request from `conn`, answers it (the routes are just
 * below), closes `conn` and logs one line: the request, the status and the
 * time from the request's first byte to its answer, or what went wrong.
 *
 * @param conn The accepted connection; closed by the time the promise
 * settles, whether it resolves or rejects.
 * @param options The pages; the rest default to {@linkcode DEFAULTS}.
 * @returns A promise that resolves once `conn` is closed. It never rejects
 * for what a client does (a client that vanished or stalled is logged), so
 * it can be left unawaited; it rejects at once, before reading, for a
 * mistake in `options`.
 *
 * @example Answer one connection
 * ```ts
 * import { assertEquals, assertMatch } from "@std/assert";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const responding = fetch(`http://127.0.0.1:${listener.addr.port}/nowhere`);
 * const logs: string[] = [];
 * const conn = await listener.accept();
 * await handle(conn, { pages: await loadPages(), log: (l) => logs.push(l) });
 * const response = await responding;
 * assertEquals(response.status, 404);
 * await response.body?.cancel();
 * assertMatch(logs[0], /^GET \/nowhere 404 \(\d+ ms\)$/);
 * listener.close();
 * ```
 */
export async function handle(
  conn: Connection,
  options: HandleOptions,
): Promise<void> {
  // On its own, the connection is the only one in its list.
  using open = newOpenConnections(conn, options);
  await handleConnection(conn, open);
}

/** handle(), for a connection that joins the list `open` of serve() or handle(). */
async function handleConnection(conn: Connection, open: OpenConnections) {
  const exchange = open.add(conn);
  let outcome: Outcome;
  try {
    outcome = await answer(exchange);
  } catch (error) {
    // A stop, a stalled write or a client gone: the log says which.
    const { ended } = exchange;
    outcome = { none: ended ? ENDED[ended] : `failed: ${errorText(error)}` };
  }
  // The request's time, from its first byte to its answer: not the drain.
  const end = exchange.answered ?? performance.now();
  const elapsedMs = Math.round(end - (exchange.started ?? exchange.accepted));
  const what = "status" in outcome ? outcome.status : outcome.none;
  const line = `${exchange.methodAndTarget} ${what} (${elapsedMs} ms)`;
  try {
    if ("status" in outcome && outcome.unread) await drain(conn);
  } catch {
    // A client gone while drained already has its answer.
  } finally {
    closeQuietly(conn);
    open.remove(exchange);
  }
  open.log(line);
  open.trace?.(`#${exchange.number} done: ${line}`);
}

/** The status answer() sent, and if the client may send more; or why none. */
type Outcome = { status: StatusCode; unread: boolean } | { none: string };

/** The routes: reads the request, answers it, and says what it did. */
async function answer(exchange: Exchange): Promise<Outcome> {
  const head = await readHead(exchange);
  if (head === "closed") {
    return { none: "closed by the client before a whole request" };
  }
  const request = exchange.request = parseHead(head);
  const { open } = exchange;
  open.trace?.(`#${exchange.number} head: ${exchange.methodAndTarget}`);
  const unread = head.unread || request.bodyFollows;
  if (request.error) {
    return { status: await send(exchange, request.error), unread };
  }
  const { sleepMs, drop, pages } = open.options;
  if (request.path === "/sleep") {
    // A timer: in concurrent mode the thread serves other clients
    // meanwhile; in serial mode the loop is waiting for this one.
    await delay(sleepMs, { signal: drop });
  } else if (request.path === "/block") {
    // No await: nothing else runs meanwhile, not even the accept loop.
    spin(sleepMs); // the async book's warning
  } else if (request.path === "/block-sliced") {
    // The first cure: the same spin in slices, each followed by an await
    // of a timer, in whose wait the loop accepts, reads and writes for
    // the others. An await of a resolved promise would not do: it goes
    // on in a microtask, before the loop has had its turn.
    for (let left = sleepMs; left > 0; left -= SLICE_MS) {
      spin(Math.min(left, SLICE_MS));
      await delay(0, { signal: drop });
    }
  } else if (request.path === "/block-worker") {
    // The second cure: the same spin on a thread of its own, which this
    // request starts; this thread only awaits its answer.
    if (!await spinInWorker(sleepMs, drop)) {
      return { status: await send(exchange, 503), unread };
    }
  }
  const page = await pageFor(request.path, pages, drop);
  return { status: await send(exchange, page), unread };
}

/** Keeps the thread busy for `ms`: CPU-bound work, with no await. */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** How long /block-sliced spins between two awaits, in ms. */
const SLICE_MS = 10;

/**
 * spin() in a Worker started for it, ended once it is done or `drop` is
 * aborted (then the promise rejects, as /sleep's delay does); false if no
 * Worker can run here. Its code is a `data:` URL, which needs no read
 * permission, so it runs however main.ts was started (from a folder, a copy
 * or a URL). It inherits this thread's permissions and uses none.
 */
async function spinInWorker(ms: number, drop?: AbortSignal): Promise<boolean> {
  let worker: Worker;
  try {
    worker = new Worker(SPINNER, { type: "module" });
  } catch {
    return false;
  }
  const spun = Promise.withResolvers<boolean>();
  worker.onmessage = () => spun.resolve(true);
  worker.onerror = (event) => {
    event.preventDefault(); // fail this request, not the process
    spun.resolve(false);
  };
  using _dropped = onAbort(drop, () => spun.reject(drop!.reason));
  try {
    worker.postMessage(ms);
    return await spun.promise;
  } finally {
    worker.terminate();
  }
}

/** The Worker's module: spin() for the time it is sent, then say so. */
const SPINNER = "data:text/javascript," + encodeURIComponent(
  `onmessage = ({ data }) => { (${spin})(data); postMessage(0); };`,
);

// ===========================================================================
// 2. What serve() and handle() take: their options, the connection, the
// pages and loadPages(). Read it to use main.ts from your own script; the
// defaults themselves are in section 5.
// ===========================================================================

/**
 * How the accept loop treats each connection: `"serial"` or `"concurrent"`.
 *
 * @example The mode from the arguments
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const [arg = "concurrent"] = ["serial"]; // as Deno.args might give it
 * const mode: Mode = arg === "serial" ? "serial" : "concurrent";
 * assertEquals(mode, "serial");
 * ```
 */
export type Mode = "serial" | "concurrent";

/**
 * Options for {@linkcode handle}; all but `pages` have defaults
 * ({@linkcode DEFAULTS}); `deno run main.ts --help` says what each means.
 *
 * @example Short limits, for a test
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const options: HandleOptions = { pages: await loadPages(), sleepMs: 10 };
 * assertEquals(options.headTimeoutMs ?? DEFAULTS.headTimeoutMs, 5000);
 * ```
 */
export interface HandleOptions {
  /** The pages to send; see {@linkcode loadPages}. */
  pages: Pages;
  /** How long `/sleep` waits, and `/block` and its cures spin, in ms. */
  sleepMs?: number;
  /** How long a client has to send its request head, in ms; then 408. */
  headTimeoutMs?: number;
  /** How long a write may make no progress, in ms; then the connection ends. */
  sendTimeoutMs?: number;
  /** The largest request head accepted, in bytes; a larger one gets 431. */
  maxHeadBytes?: number;
  /** Where the one line per connection goes. Defaults to `console.log`. */
  log?: (line: string) => void;
  /** Once aborted, a connection still waiting for its head is closed. */
  stop?: AbortSignal;
  /** Once aborted, the request is dropped: its connection closed at once. */
  drop?: AbortSignal;
}

/**
 * Options for {@linkcode serve}; all but `mode` and `pages` have defaults.
 *
 * @example Concurrent, at most 100 at once, quiet
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const pages = await loadPages();
 * const options: ServeOptions = { mode: "concurrent", pages, maxInFlight: 100, quiet: true };
 * assertEquals(options.graceMs ?? DEFAULTS.graceMs, 10_000);
 * ```
 */
export interface ServeOptions extends HandleOptions {
  /** Whether the accept loop awaits each connection or detaches it. */
  mode: Mode;
  /** Concurrent mode: how many are served at once; 1 is serial mode. */
  maxInFlight?: number;
  /** No line per connection; the server's own events are still logged. */
  quiet?: boolean;
  /** Logs each connection by number as it is accepted, read and done. */
  trace?: boolean;
  /** Once stopped, how long requests in flight have to finish, in ms. */
  graceMs?: number;
  /** Stops the server: no new connections, `graceMs` for those in flight. */
  stop?: AbortSignal;
  /** Once aborted, what is still in flight is dropped at once. */
  drop?: AbortSignal;
}

/**
 * What {@linkcode handle} needs of a connection: a socket, or a fake one.
 *
 * @example A Deno.Conn is one
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * const written = (conn: Connection) => conn.write(new Uint8Array(3));
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using _client = await Deno.connect({ port: listener.addr.port });
 * using conn = await listener.accept();
 * assertEquals(await written(conn), 3);
 * ```
 */
export type Connection =
  & Pick<Deno.Conn, "read" | "write" | "close">
  & Partial<Pick<Deno.Conn, "closeWrite">>;

/**
 * The pages the server sends: the book's two as bytes ready to write, and
 * where the lab is, if it is there. See {@linkcode loadPages}.
 *
 * @example The book's two pages, without the lab (`/lab` answers 404)
 * ```ts
 * import { assert } from "@std/assert";
 *
 * const { hello, notFound }: Pages = await loadPages();
 * assert(hello.byteLength > 0 && notFound.byteLength > 0);
 * ```
 */
export interface Pages {
  /** Sent for `/`, `/sleep`, `/block` and its cures (hello.html). */
  hello: Uint8Array;
  /** Sent, with status 404, for any other path (404.html). */
  notFound: Uint8Array;
  /**
   * Where the lab is read from (main.ts's folder, as a URL), if it has
   * `lab/index.html`: `/lab` is that page, and `/lab/NAME` or `/probe/NAME`
   * (`.html` or `.js`) that file, read when asked for. Without it, `/lab`
   * answers 404 and says why.
   */
  lab?: string;
}

/**
 * Loads the pages beside this module, wherever it is: a folder (`file:`), a
 * web server (`http:`, `https:`) or JSR. The book's two pages are enough:
 * without `lab/index.html`, the lab is left out and `/lab` answers 404.
 *
 * @param folder Where the pages are, as a URL ending in `/`.
 * @returns The pages.
 * @throws {Error} One line with the URL of `hello.html` or `404.html`, if
 * either cannot be loaded.
 *
 * @example Load the pages next to main.ts
 * ```ts
 * import { assertStringIncludes } from "@std/assert";
 *
 * const pages = await loadPages();
 * const hello = new TextDecoder().decode(pages.hello);
 * assertStringIncludes(hello, "<h1>Hello!</h1>");
 * ```
 */
export async function loadPages(
  folder: URL = new URL("./", import.meta.url),
): Promise<Pages> {
  const cannot = (file: string, why: string) =>
    new Error(`Cannot load ${new URL(file, folder)}: ${why}`);
  const read = (file: string) =>
    readFile(new URL(file, folder)).catch((error) => {
      throw cannot(file, error.message);
    });
  const need = async (file: string) =>
    await read(file) ?? Promise.reject(cannot(file, "not found"));
  const pages = {
    hello: await need(BOOK.hello),
    notFound: await need(BOOK.notFound),
  };
  // Without its page there is no lab, and /lab says so.
  return await read(LAB_PAGE) ? { ...pages, lab: folder.href } : pages;
}

/** A file's bytes, from a folder, a web server or JSR; undefined if not there. */
async function readFile(url: URL, signal?: AbortSignal) {
  try {
    const response = await fetch(url, { signal });
    if (response.ok) return await response.bytes();
    await response.body?.cancel();
    if (response.status !== 404) {
      throw new Error(`${response.status} ${response.statusText}`);
    }
  } catch (error) {
    // Deno's fetch() says "(os error 2)" for a file that is not there.
    if (!/\(os error 2\)/.test((error as Error).message)) throw error;
  }
}

// ===========================================================================
// 3. One connection, from its first read to its close: reading and parsing
// the request head (RFC 9112, for a server that reads no bodies), writing
// the response, and draining what the client still sends. Skip it unless
// you want the HTTP details.
// ===========================================================================

/** One connection while handle() has it; each field says who writes it. */
class Exchange {
  readonly accepted: number = performance.now();
  /** readHead(): when the request's first byte came, if it has. */
  started: number | undefined;
  /** readHead(): the bytes of the head read so far. */
  received: Uint8Array = new Uint8Array(0);
  /** answer(): the request, once its head is read and parsed. */
  request: RequestHead | undefined;
  /** send(): when the answer's last byte was written. */
  answered: number | undefined;
  /** end(): why it was ended early, if it was. */
  ended: keyof typeof ENDED | undefined;
  constructor(
    readonly conn: Connection,
    readonly open: OpenConnections,
    /** Its number in the trace: the order it came in. */
    readonly number: number,
    /** Where it stands in the list of open connections (the list's). */
    public index: number,
  ) {}

  /** Method and target for the log line, or `-` before they are known. */
  get methodAndTarget(): string {
    const request = this.request;
    return request?.method ? `${request.method} ${request.target}` : "-";
  }

  /**
   * Closes the connection for `why`: a pending read or write then fails.
   * The first reason stands, but for a timeout's: its 408 may not get out.
   */
  end(why: keyof typeof ENDED): void {
    if (this.ended === undefined || this.ended === "timeout") this.ended = why;
    closeQuietly(this.conn);
  }
}

/** What the log line says of a connection ended early, by why. */
const ENDED = {
  timeout: "408",
  silent: "closed: sent nothing within the head timeout",
  shutdown: "closed at shutdown before a whole request",
  stalled: "closed: a write made no progress for the send timeout",
  dropped: "dropped before it was done",
} as const;

/** A head as read: its bytes, whether whole, and whether more came after. */
interface Head {
  bytes: Uint8Array;
  /** False when it grew past maxHeadBytes: a 431. */
  whole: boolean;
  /** Whether bytes came after it, or the client is still sending it. */
  unread: boolean;
}

/** The head, or "closed" if the client closed first; if ended early, throws. */
async function readHead(exchange: Exchange): Promise<Head | "closed"> {
  const { conn, open } = exchange;
  const { maxHeadBytes, headTimeoutMs } = open.options;
  open.wait(exchange, "head", headTimeoutMs);
  let buffer = new Uint8Array(Math.min(TUNING.firstHeadBytes, maxHeadBytes));
  try {
    for (let length = 0;;) {
      if (length === buffer.length) {
        // Too large: the client is still sending it.
        if (length >= maxHeadBytes) {
          return { bytes: buffer, whole: false, unread: true };
        }
        const larger = new Uint8Array(Math.min(length * 2, maxHeadBytes));
        larger.set(buffer);
        buffer = larger;
      }
      const read = await conn.read(length ? buffer.subarray(length) : buffer);
      if (exchange.ended) throw new Deno.errors.Interrupted(exchange.ended);
      if (read === null) return "closed";
      exchange.started ??= performance.now();
      // The blank line may straddle two reads, so look back a little.
      const end = findHeadEnd(buffer, Math.max(0, length - 3));
      length += read;
      exchange.received = buffer.subarray(0, length);
      if (end === -1) continue;
      const bytes = buffer.subarray(0, end);
      // After the head: a body, or a second request.
      return { bytes, whole: true, unread: end < length };
    }
  } finally {
    open.ready(exchange);
  }
}

/**
 * The index just past the first empty line (CRLF or bare LF), or -1. Past
 * what was read, the buffer is still all zeros, so the search needs no end.
 */
function findHeadEnd(bytes: Uint8Array, from: number): number {
  for (let i = bytes.indexOf(LF, from); i >= 0; i = bytes.indexOf(LF, i + 1)) {
    if (bytes[i + 1] === LF) return i + 2;
    if (bytes[i + 1] === CR && bytes[i + 2] === LF) return i + 3;
  }
  return -1;
}
const [LF, CR] = [0x0a, 0x0d];

/** A request line and field lines as RFC 9112 spells them, CR optional. */
const REQUEST_LINE =
  /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([!-~]+) HTTP\/(\d)\.(\d)\r?$/;
const FIELD_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\t -~\u0080-\uffff]*)\r?$/;
/**
 * A line that announces a body, read leniently, since a head refused for
 * another line, or for this one, may still be followed by its body.
 */
const ANNOUNCES_BODY =
  /^[\t ]*(transfer-encoding[\t ]*:|content-length[\t ]*:(?![\t ]*0*[\t ]*\r?$))/i;

/** The methods RFC 9110 defines, and PATCH (RFC 5789): others get 501. */
const KNOWN_METHODS = "GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH"
  .split(" ");

/** What parseHead() read: method, target, if a body follows, path or error. */
type RequestHead =
  & { method?: string; target?: string; bodyFollows: boolean }
  & ({ error: ErrorStatus; path?: never } | { error?: never; path: string });

/**
 * Parses a head as RFC 9112 asks of a server that reads no bodies: HTTP/1.1
 * and later 1.x need exactly one Host; Content-Length must be one number;
 * chunked is the only transfer coding understood, so any other gets 501.
 * A head that is not `whole` (too large) gets 431, with what could be read.
 */
function parseHead({ bytes, whole }: Head): RequestHead {
  const lines = decoder.decode(bytes)
    .replace(/^\r?\n/, "") // one empty line before the request line
    .split("\n");
  // The empty line that ends a whole head, and after it; or the cut line.
  lines.splice(whole ? -2 : -1);
  const [requestLine = "", ...fieldLines] = lines;
  const bodyFollows = fieldLines.some((line) => ANNOUNCES_BODY.test(line));
  const match = REQUEST_LINE.exec(requestLine);
  if (match === null) return { error: whole ? 400 : 431, bodyFollows };
  const [, method, target, major, minor] = match;
  const request = { method, target, bodyFollows };
  if (!whole) return { ...request, error: 431 };
  // HTTP/1.2 and later minor versions are read as 1.1 (RFC 9110 §2.5).
  if (major !== "1") return { ...request, error: 505 };

  let hosts = 0;
  const lengths: string[] = [];
  const codings: string[] = [];
  for (const fieldLine of fieldLines) {
    const field = FIELD_LINE.exec(fieldLine);
    if (field === null) return { ...request, error: 400 };
    const [, name, value] = field;
    // Only three names matter; most fields are skipped by their length.
    if (name.length === 4 && name.toLowerCase() === "host") hosts++;
    else if (name.length === 14 && name.toLowerCase() === "content-length") {
      lengths.push(...value.split(","));
    } else if (
      name.length === 17 && name.toLowerCase() === "transfer-encoding"
    ) codings.push(...value.split(","));
  }
  // OPTIONS * asks about the server as a whole (RFC 9112 §3.2.4).
  const path = method === "OPTIONS" && target === "*" ? "*" : pathOf(target);
  if (
    hosts > 1 || (minor !== "0" && hosts === 0) || !path ||
    !validLength(lengths) || (codings.length > 0 && lengths.length > 0)
  ) return { ...request, error: 400 };
  const codingError = checkCodings(codings);
  if (codingError) return { ...request, error: codingError };
  if (method === "GET" || method === "HEAD") return { ...request, path };
  return { ...request, error: KNOWN_METHODS.includes(method) ? 405 : 501 };
}

/** Whether Content-Length's values, if any, are one number (RFC 9110 §8.6). */
function validLength(values: string[]): boolean {
  if (values.length === 0) return true;
  const numbers = values.map((value) =>
    /^[\t ]*0*(\d+?)[\t ]*$/.exec(value)?.[1] // 007 is 7
  );
  return !numbers.includes(undefined) && new Set(numbers).size <= 1;
}

/** 501 for codings but chunked; 400 for two chunked or none (RFC 9112 §6.1). */
function checkCodings(values: string[]): 400 | 501 | undefined {
  if (values.length === 0) return;
  const codings = values
    .map((v) => v.split(";", 1)[0].trim().toLowerCase())
    .filter((coding) => coding !== ""); // a list may have empty elements
  if (codings.some((coding) => coding !== "chunked")) return 501;
  if (codings.length !== 1) return 400;
}

/**
 * The path of a target, as sent, in origin form (`/a?b`) or absolute form
 * (`http://host/a?b`), if it is either: one rule for both, so neither has
 * its dot segments removed nor its percent-encoding undone.
 */
function pathOf(target: string): string | undefined {
  if (target.startsWith("/")) return target.split("?", 1)[0];
  const absolute = /^https?:\/\/[^/?#]*(\/[^?#]*)?/i.exec(target);
  if (absolute && URL.canParse(target)) return absolute[1] ?? "/";
}

/** The statuses sent with a short plain-text body that names them. */
type ErrorStatus = 400 | 405 | 408 | 431 | 501 | 503 | 505;

/** Writes a page, or an error status, however few bytes each write takes. */
async function send(exchange: Exchange, page: Page | ErrorStatus) {
  const { conn, open } = exchange;
  const { status, type, body } = typeof page === "number"
    ? textPage(page, `${page} ${STATUS_TEXT[page]}\n`)
    : page;
  const bytes = encodeResponse(exchange, status, type, body);
  for (let written = 0; written < bytes.length;) {
    open.wait(exchange, "write", open.options.sendTimeoutMs);
    written += await conn.write(written ? bytes.subarray(written) : bytes);
  }
  open.ready(exchange);
  exchange.answered = performance.now();
  return status;
}

/**
 * A whole response in one buffer: the head, with Server-Timing's idle and
 * handle times, then the body, but never for HEAD (RFC 9110 §9.3.2).
 */
function encodeResponse(
  { accepted, started = accepted, received, open }: Exchange,
  status: StatusCode,
  type: string,
  body: Uint8Array,
): Uint8Array {
  const idle = (started - accepted).toFixed(1);
  const handling = (performance.now() - started).toFixed(1);
  const head = `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\n` +
    `Content-Type: ${type}; charset=utf-8\r\n` +
    `Content-Length: ${body.byteLength}\r\n` +
    (status === 405 ? "Allow: GET, HEAD\r\n" : "") +
    "Connection: close\r\n" +
    `Server-Timing: ${open.serverTiming}` +
    `idle;dur=${idle}, handle;dur=${handling}\r\n\r\n`;
  const withBody = !asksForHead(received);
  // The head is ASCII: one byte a character.
  const bytes = open.take(head.length + (withBody ? body.byteLength : 0));
  encoder.encodeInto(head, bytes);
  if (withBody) bytes.set(body, head.length);
  return bytes;
}

/** Whether the bytes start `HEAD `: a head too large or slow is judged too. */
function asksForHead(head: Uint8Array): boolean {
  const from = head[0] === LF ? 1 : head[0] === CR && head[1] === LF ? 2 : 0;
  return HEAD_METHOD.every((byte, i) => head[from + i] === byte);
}
const HEAD_METHOD = [..."HEAD "].map((c) => c.charCodeAt(0));

/**
 * After the answer, reads and drops what the client still sends: closing
 * with bytes unread would reset the connection, and a client still sending
 * would lose its answer. The write side is closed first, so that the client
 * sees the response end (RFC 9112 §9.6). Bounded by time (TUNING.drainMs),
 * not bytes, as nginx's lingering close is: a client uploading more than any
 * byte bound still gets its answer, and one sending for ever is closed.
 */
async function drain(conn: Connection): Promise<void> {
  await conn.closeWrite?.();
  using _late = timeout(TUNING.drainMs, () => closeQuietly(conn));
  const buffer = new Uint8Array(16 * 1024);
  while (await conn.read(buffer) !== null);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ===========================================================================
// 4. What serve() keeps: the open connections, their one timer, the stop,
// and the small helpers all sections use. Skip it unless you want to know
// how a server ends every connection it starts, and what that costs.
// ===========================================================================

/** What one serve() keeps besides its loop: its connections and its stop. */
class Server extends DisposableStack {
  readonly mode: Mode;
  readonly maxInFlight: number;
  readonly open: OpenConnections;
  readonly #listener: Deno.Listener;
  readonly #log: (line: string) => void;

  constructor(listener: Deno.Listener, options: ServeOptions) {
    super();
    checkOptions(options, "serve");
    const { mode, maxInFlight, graceMs, quiet, trace, drop, ...rest } = options;
    this.mode = mode;
    this.maxInFlight = maxInFlight ?? DEFAULTS.maxInFlight;
    this.#listener = listener;
    const log = this.#log = safely(options.log ?? console.log);
    const dropping = new AbortController();
    const perConnection: HandleOptions = {
      ...rest,
      log: quiet || trace ? () => {} : log,
      drop: dropping.signal,
    };
    // Parallel mode names each worker by its number (see serveInWorkers).
    const worker = "WorkerGlobalScope" in globalThis ? self.name : "";
    const metrics = worker ? `parallel, worker;desc=${worker}` : mode;
    const timing = `mode;desc=${metrics}, `;
    this.open = this.use(
      new OpenConnections(perConnection, timing, trace ? log : undefined),
    );

    const dropAll = (why: string) => {
      const count = this.open.size;
      if (count > 0 && !dropping.signal.aborted) {
        log(`Dropping ${plural(count, "request")} still in flight ${why}`);
      }
      dropping.abort();
    };
    const grace = graceMs ?? DEFAULTS.graceMs;
    this.use(onAbort(options.stop, () => {
      closeQuietly(listener);
      const why = `after the grace period of ${grace} ms`;
      this.use(timeout(grace, () => dropAll(why)));
    }));
    this.use(onAbort(drop, () => {
      closeQuietly(listener);
      dropAll(`on ${drop!.reason}`);
    }));
  }

  /** The listener's connections; a failed accept is retried, pausing longer. */
  async *accepted(): AsyncGenerator<Deno.Conn> {
    for (let pauseMs = 0;;) {
      try {
        yield await this.#listener.accept();
        pauseMs = 0;
      } catch (error) {
        // Closed by a stop:
        if (error instanceof Deno.errors.BadResource) return;
        if (error instanceof Deno.errors.Interrupted) return;
        pauseMs = Math.min(Math.max(pauseMs * 2, 10), TUNING.maxAcceptPauseMs);
        const again = `trying again in ${pauseMs} ms`;
        this.#log(`Accept failed: ${errorText(error)}; ${again}`);
        await delay(pauseMs);
      }
    }
  }
}

type FilledHandleOptions =
  & HandleOptions
  & Required<Omit<HandleOptions, "log" | "stop" | "drop">>;

/** For handle() alone: bad `options` close `conn` too, so nothing leaks. */
function newOpenConnections(conn: Connection, options: HandleOptions) {
  try {
    return new OpenConnections(options);
  } catch (error) {
    closeQuietly(conn);
    throw error;
  }
}

/**
 * The connections that handle() has open, serve()'s or its own one, with
 * their options: one list, and one timer for all their deadlines (head and
 * send timeouts), rather than a timer and two signal listeners each,
 * because that saves CPU and memory on every connection: see
 * docs/benchmarks.md#the-list-of-open-connections.
 */
class OpenConnections extends DisposableStack {
  readonly options: FilledHandleOptions;
  /** Where each connection's line goes; a log that fails loses it. */
  readonly log: (line: string) => void;
  /**
   * An array where one leaving moves the last into its place, not a Set,
   * because a Set kept them alive long enough for V8 to promote them: see
   * docs/benchmarks.md#the-list-of-open-connections.
   */
  readonly #open: Exchange[] = [];
  /** What each connection waits for, and until when: at its index. */
  readonly #waiting: ("head" | "write" | undefined)[] = [];
  readonly #deadline: number[] = [];
  #count = 0;
  #wake = () => {};
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  constructor(
    options: HandleOptions,
    /** The metrics before `idle` and `handle` in Server-Timing. */
    readonly serverTiming = "",
    /** With serve()'s `trace`: logs each connection by number. */
    readonly trace?: (line: string) => void,
  ) {
    super();
    checkOptions(options, "handle");
    const filled: HandleOptions & Record<string, unknown> = { ...options };
    for (const [name, option] of Object.entries(OPTIONS)) {
      if (option.for === "handle") filled[name] ??= option.default;
    }
    this.options = filled as FilledHandleOptions;
    this.log = safely(options.log ?? console.log);
    this.use(onAbort(options.stop, () => this.#end("head", "shutdown")));
    this.use(onAbort(options.drop, () => this.#end("any", "dropped")));
    this.defer(() => clearTimeout(this.#timer));
  }

  get size(): number {
    return this.#open.length;
  }

  /** Keeps `conn` until remove(), unless already stopped. */
  add(conn: Connection): Exchange {
    const exchange = new Exchange(conn, this, ++this.#count, this.#open.length);
    this.trace?.(`#${exchange.number} accepted`);
    this.#open.push(exchange);
    this.#waiting.push(undefined);
    this.#deadline.push(Infinity);
    const { stop, drop } = this.options;
    if (drop?.aborted) exchange.end("dropped");
    else if (stop?.aborted) exchange.end("shutdown");
    return exchange;
  }

  remove({ index }: Exchange): void {
    const last = this.#open.pop()!;
    const waiting = this.#waiting.pop();
    const deadline = this.#deadline.pop()!;
    if (index < this.#open.length) {
      this.#open[last.index = index] = last;
      this.#waiting[index] = waiting;
      this.#deadline[index] = deadline;
    }
    this.#wake();
  }

  /** Resolves once the next connection is closed; only the loop waits. */
  oneClosed(): Promise<void> {
    return new Promise((resolve) => this.#wake = resolve);
  }

  async allClosed(): Promise<void> {
    while (this.size > 0) await this.oneClosed();
  }

  wait({ index }: Exchange, what: "head" | "write", ms: number): void {
    this.#waiting[index] = what;
    this.#arm(this.#deadline[index] = performance.now() + ms);
  }

  ready({ index }: Exchange): void {
    this.#waiting[index] = undefined;
  }

  #end(what: "head" | "any", why: keyof typeof ENDED): void {
    // From the last, so that one leaving meanwhile moves one seen already.
    for (let i = this.#open.length - 1; i >= 0; i--) {
      if (what === "any" || this.#waiting[i] === what) this.#open[i].end(why);
    }
  }

  /** Makes sure the timer fires by `at`. */
  #arm(at: number): void {
    if (at >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#late(), at - performance.now());
  }

  /** Ends the waits that ran out of time, then waits for the next one. */
  #late(): void {
    this.#timerAt = Infinity; // fired: a wait() from here on arms it again
    const now = performance.now();
    let next = Infinity;
    for (let i = this.#open.length - 1; i >= 0; i--) {
      const waiting = this.#waiting[i];
      if (waiting === undefined) continue;
      const exchange = this.#open[i];
      if (this.#deadline[i] > now) next = Math.min(next, this.#deadline[i]);
      else if (waiting === "write") exchange.end("stalled");
      else if (exchange.started === undefined) {
        // Sent nothing: a browser's spare connection, say. A 408 there
        // could cross a request the browser sends on it just then, so it
        // is closed without one, as nginx does.
        exchange.end("silent");
      } else {
        // A pending read cannot be called off, only ended by a close: so
        // the 408 is sent from here, by send() as every status, and the
        // close that follows ends the read. Racing each read instead cost
        // CPU and memory on every request: see
        // docs/benchmarks.md#the-408-sent-by-the-timer.
        this.#waiting[i] = undefined;
        exchange.ended ??= "timeout";
        send(exchange, 408)
          .catch(() => {}) // a client too slow to send a head may be gone
          .finally(() => closeQuietly(exchange.conn));
      }
    }
    this.#arm(Math.max(next, now + TUNING.timerCoarseMs));
  }

  /**
   * `length` bytes for a response, carved from a larger buffer rather than
   * a buffer each, because that saves CPU on every response: see
   * docs/benchmarks.md#the-slab. From the second response on, a slab of
   * TUNING.slabBytes, freed once its last write is done.
   */
  take(length: number): Uint8Array {
    if (this.#used + length > this.#slab.length) {
      const size = this.#slab.length
        ? Math.max(TUNING.slabBytes, length)
        : length;
      this.#slab = new Uint8Array(size);
      this.#used = 0;
    }
    this.#used += length;
    return this.#slab.subarray(this.#used - length, this.#used);
  }
  #slab = new Uint8Array(0);
  #used = 0;
}

/** Calls `then` once `signal` is aborted (now, if it is) until disposed of. */
function onAbort(signal: AbortSignal | undefined, then: () => void) {
  if (signal?.aborted) then();
  else signal?.addEventListener("abort", then);
  return { [Symbol.dispose]: () => signal?.removeEventListener("abort", then) };
}

/** Calls `then` after `ms`, unless disposed of first. */
function timeout(ms: number, then: () => void): Disposable {
  const timer = setTimeout(then, ms);
  return { [Symbol.dispose]: () => clearTimeout(timer) };
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed: by the client going away, or by a stop.
  }
}

/**
 * `log`, but a log that fails (`| head`, a full disk) loses the line rather
 * than throwing, which would end the process. Every line goes through one.
 */
const safely = (log: (line: string) => void) => (line: string) => {
  try {
    log(line);
  } catch {
    // Nowhere left to say it.
  }
};

const plural = (count: number, noun: string) =>
  `${count} ${noun}${count === 1 ? "" : "s"}`;

/** An error in a line: the message for the system's, the stack for a bug. */
function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const expected = "code" in error ||
    Object.values(Deno.errors).some((kind) => error instanceof kind);
  return expected ? error.message : error.stack ?? error.message;
}

// ===========================================================================
// 5. The tables: the pages, the tuning numbers and the options, each fact
// said once, with DEFAULTS and the checks made from them. Skip it unless you
// want to change a default or add a page.
// ===========================================================================

/** The book's two pages, loaded at start-up. */
const BOOK = { hello: "hello.html", notFound: "404.html" } as const;

/** The paths answered with hello.html; any other is the lab's, or 404.html. */
const HELLO_PATHS = ["/", "/sleep", "/block", "/block-sliced", "/block-worker"];

/** The lab, by one rule (see Pages.lab): it grows without a change here. */
const LAB_PAGE = "lab/index.html";
const LAB_FOLDERS = ["lab", "probe"]; // the lab imports the probe's verdict
const LAB_FILE = new RegExp(
  `^/((?:${LAB_FOLDERS.join("|")})/[\\w-]+\\.(html|js))$`,
);
const HTML = "text/html";

/** What main.ts reads: the book's pages, and the lab's folders. */
const READ_PATHS = [...Object.values(BOOK), ...LAB_FOLDERS];

/** Sent for `/lab` where there is no lab: a 404 that says why. */
const NO_LAB =
  `404 Not Found: no lab here, since ${LAB_PAGE} is not beside main.ts\n`;

/** A response to send: its status, the type of its body, and the body. */
interface Page {
  status: StatusCode;
  type: string;
  body: Uint8Array;
}
function textPage(status: StatusCode, text: string): Page {
  return { status, type: "text/plain", body: encoder.encode(text) };
}

/** The page for `path`: hello.html, a file of the lab, or a 404. */
async function pageFor(
  path: string,
  pages: Pages,
  drop?: AbortSignal,
): Promise<Page> {
  if (HELLO_PATHS.includes(path)) {
    return { status: 200, type: HTML, body: pages.hello };
  }
  if (path === "/lab" && !pages.lab) return textPage(404, NO_LAB);
  const file = path === "/lab" ? LAB_PAGE : LAB_FILE.exec(path)?.[1];
  const body = file && pages.lab &&
    await readFile(new URL(file, pages.lab), drop);
  if (!body) return { status: 404, type: HTML, body: pages.notFound };
  const type = file!.endsWith(".js") ? "text/javascript" : HTML;
  return { status: 200, type, body };
}

/**
 * The plumbing's tuning. Only drainMs changes what a client may see: one
 * still sending its body that long after the answer is cut off.
 */
const TUNING = {
  firstHeadBytes: 256, // grown as needed, so an idle connection costs little
  slabBytes: 64 * 1024, // responses are carved from buffers of this size
  timerCoarseMs: 50, // the deadline timer runs at most this often
  drainMs: 2000, // after the answer, a client's extra bytes are dropped this long
  maxAcceptPauseMs: 1000, // the longest pause before an accept is retried
  samePressMs: 500, // a second Ctrl-C this soon is the first, sent twice
} as const;

/** An option with a default; see {@linkcode OPTIONS}. */
interface Option {
  default: number | string | boolean;
  for: "handle" | "serve" | "command line";
  range?: readonly [number, number];
  help: string;
}
const MAX_DELAY = 2 ** 31 - 1; // the longest setTimeout() takes

/**
 * Every option with a default, said once: its default, who takes it
 * (handle() takes `"handle"` ones, serve() those and `"serve"` ones), its
 * range if a number, and its line in `--help`. DEFAULTS, the checks of
 * serve() and handle(), the command line and `--help` are made from it.
 */
// deno-fmt-ignore
const OPTIONS = {
  port: { default: 7878, for: "command line", range: [0, 65535],
    help: "the port; 0 takes any free one" },
  hostname: { default: "127.0.0.1", for: "command line",
    help: "the address, such as ::1" },
  sleepMs: { default: 5000, for: "handle", range: [0, MAX_DELAY],
    help: "how long /sleep waits and /block spins" },
  headTimeoutMs: { default: 5000, for: "handle", range: [1, MAX_DELAY],
    help: "time to send a request head, then 408" },
  sendTimeoutMs: { default: 5000, for: "handle", range: [1, MAX_DELAY],
    help: "time a write may make no progress, then close" },
  maxHeadBytes: { default: 8192, for: "handle", range: [64, 2 ** 20],
    help: "the largest request head, then 431" },
  graceMs: { default: 10_000, for: "serve", range: [0, MAX_DELAY],
    help: "on Ctrl-C or SIGTERM, time left to requests" },
  maxInFlight: { default: Infinity, for: "serve", range: [1, Infinity],
    help: "at most N connections at once in each loop" },
  workers: { default: navigator.hardwareConcurrency, for: "command line",
    range: [1, 1024], help: "parallel: how many worker threads" },
  quiet: { default: false, for: "serve", help: "no line per connection" },
  trace: { default: false, for: "serve",
    help: "a line as each connection is accepted, has its head, is done" },
} as const satisfies {
  // One for each of DEFAULTS, whose type checks the default's.
  [N in keyof typeof DEFAULTS]: Option & { default: (typeof DEFAULTS)[N] };
};
type OptionName = keyof typeof OPTIONS;

/** The options that DEFAULTS has no value for, by who takes them. */
const NOT_IN_DEFAULTS = {
  handle: ["pages", "log", "stop", "drop"],
  serve: ["mode"],
};

/**
 * The default of every option, for the library and the command line.
 *
 * @example A fifth of the default sleep
 * ```ts
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(DEFAULTS.sleepMs / 5, 1000);
 * ```
 */
export const DEFAULTS: {
  readonly port: number;
  readonly hostname: string;
  readonly sleepMs: number;
  readonly headTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly maxHeadBytes: number;
  readonly graceMs: number;
  readonly maxInFlight: number;
  readonly workers: number;
  readonly quiet: boolean;
  readonly trace: boolean;
} = Object.fromEntries(
  Object.entries(OPTIONS).map(([name, option]) => [name, option.default]),
) as typeof DEFAULTS;

/**
 * Throws unless `taker` takes every option given (another taker's is an
 * error too) with a value it accepts: an error at once, not an endless loop.
 */
function checkOptions(options: HandleOptions, taker: "handle" | "serve") {
  for (const name in options) {
    const option: Option | undefined = OPTIONS[name as OptionName];
    const owner = option?.for ??
      (["handle", "serve"] as const).find((t) =>
        NOT_IN_DEFAULTS[t].includes(name)
      );
    if (owner === undefined) {
      const known = [...Object.keys(OPTIONS), ...NOT_IN_DEFAULTS.handle];
      const hint = didYouMean(name, known);
      throw new TypeError(`${taker}() has no option "${name}"${hint}`);
    }
    if (owner === "command line" || owner === "serve" && taker === "handle") {
      const where = owner === "serve" ? "serve()" : "the command line";
      throw new TypeError(`${name} is an option of ${where}, not ${taker}()`);
    }
    const value = options[name as keyof HandleOptions];
    if (option && value !== undefined) checkValue(name, value, option);
  }
  const { pages, mode } = options as Partial<ServeOptions>;
  for (const page of ["hello", "notFound"] as const) {
    if (pages?.[page] instanceof Uint8Array) continue;
    throw new TypeError(`pages.${page} must be a Uint8Array; see loadPages()`);
  }
  if (taker === "serve" && mode !== "serial" && mode !== "concurrent") {
    throw new TypeError(
      `mode must be "serial" or "concurrent", not ${quote(mode)}`,
    );
  }
}

/** Returns `value` if it has the option's type and lies in its range. */
function checkValue(name: string, value: unknown, option: Option): unknown {
  const type = typeof option.default;
  if (typeof value !== type || Number.isNaN(value)) {
    throw new TypeError(`${name} must be a ${type}, not ${quote(value)}`);
  }
  if (option.range === undefined) return value;
  const [min, max] = option.range;
  const n = value as number;
  if (!((Number.isInteger(n) || n === Infinity) && n >= min && n <= max)) {
    const range = max === Infinity
      ? `of at least ${min}`
      : `from ${min} to ${max}`;
    throw new RangeError(`${name} must be a whole number ${range}, not ${n}`);
  }
  return value;
}

/** A value as an error message quotes it: strings in quotes. */
const quote = (value: unknown) =>
  typeof value === "string" ? JSON.stringify(value) : String(value);
// ===========================================================================
// 6. Parallel mode: the concurrent loop in a worker thread per CPU, all on
// one port. Skip it unless you want to see Workers and SO_REUSEPORT.
// ===========================================================================

/**
 * Runs serve() in concurrent mode in `options.workers` Workers: threads with
 * an event loop each, listening on `hold`'s port with SO_REUSEPORT, so that
 * the kernel gives each new connection to one of them. `hold` keeps the
 * port until they all listen; a worker that fails ends them all (a bug).
 */
async function serveInWorkers(
  hold: Deno.TcpListener,
  options: CommandLine,
  { pages, stop, drop }: Pick<ServeOptions, "pages" | "stop" | "drop">,
  startLine: string,
): Promise<number> {
  const failed = Promise.withResolvers<string>();
  const workers = Array.from({ length: options.workers }, (_, i) => {
    // Its name is its number, which Server-Timing and the log show.
    const name = String(i + 1);
    const worker = new Worker(import.meta.url, { type: "module", name });
    const said = {
      listening: Promise.withResolvers<string>(),
      stopped: Promise.withResolvers<string>(),
    };
    // A worker says "listening", later "stopped", or else why it failed.
    worker.onmessage = ({ data }) =>
      (said[data as keyof typeof said] ?? failed).resolve(data);
    worker.onerror = (event) => {
      event.preventDefault(); // end this worker, not the process
      failed.resolve(`Worker ${name} failed: ${event.message}`);
    };
    worker.postMessage({ start: { options, port: hold.addr.port, pages } });
    return { worker, ...said };
  });
  const tell = (message: object) =>
    workers.forEach(({ worker }) => worker.postMessage(message));
  stop?.addEventListener("abort", () => tell({ stop: true }));
  drop?.addEventListener("abort", () => tell({ drop: drop.reason }));
  const all = (word: "listening" | "stopped") =>
    Promise.race([
      failed.promise,
      Promise.all(workers.map((w) => w[word].promise)).then(() => ""),
    ]);
  let failure = await all("listening");
  hold.close();
  if (!failure) print(startLine);
  failure ||= await all("stopped");
  workers.forEach(({ worker }) => worker.terminate());
  return failure ? fail(failure) : 0;
}

/** In a worker of parallel mode: serve() until the main thread says stop. */
function serveInWorker(): void {
  // A worker's global scope talks to its parent as a Worker object does.
  const parent = globalThis as unknown as Worker;
  const stop = new AbortController();
  const drop = new AbortController();
  parent.onmessage = async ({ data }) => {
    if ("stop" in data) return stop.abort();
    if ("drop" in data) return drop.abort(data.drop);
    const { options, port, pages } = data.start;
    const { hostname } = options;
    let listener;
    try {
      listener = Deno.listen({ hostname, port, reusePort: true });
    } catch (error) {
      const why = `a second listener on ${port}: ${errorText(error)}`;
      return parent.postMessage(
        `Parallel mode needs SO_REUSEPORT, which Deno sets on Linux only (${why})`,
      );
    }
    parent.postMessage("listening");
    await serve(listener, {
      ...libraryOptions(options),
      ...{ mode: "concurrent", pages },
      log: (line) => log(`worker ${self.name}: ${line}`),
      ...{ stop: stop.signal, drop: drop.signal },
    });
    parent.postMessage("stopped");
  };
}

// ===========================================================================
// 7. The command line: flags, --help, start-up errors and signals. Skip it
// unless you want to run main.ts another way.
// ===========================================================================

/** What the command line chooses: a mode, and every option of DEFAULTS. */
type CommandLine =
  & { mode: Mode | "parallel"; help: boolean }
  & { -readonly [N in OptionName]: (typeof DEFAULTS)[N] };

/** The options of the command line that serve() takes. */
function libraryOptions(options: CommandLine) {
  const { mode: _, help: _h, hostname: _n, port: _p, workers: _w, ...rest } =
    options;
  return rest;
}

/**
 * `; did you mean sleep-ms?` (`prefix` before the name) for a name a few
 * edits from one of `names`, or the start of only one (`sleep`); else "".
 */
function didYouMean(typed: string, names: string[], prefix = ""): string {
  const edits = (name: string) => levenshteinDistance(typed, name);
  const near = names.filter((name) => edits(name) <= 2)
    .sort((a, b) => edits(a) - edits(b));
  const starting = names.filter((name) => name.startsWith(typed));
  const [meant] = near.length ? near : starting.length === 1 ? starting : [];
  return meant ? `; did you mean ${prefix}${meant}?` : "";
}

/** A flag's name on the command line: `sleepMs` is `--sleep-ms`. */
const flagOf = (name: string) =>
  name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

const MODES = ["serial", "concurrent", "parallel"] as const;
const USAGE = `Usage: main.ts [${MODES.join("|")}] [options]`;

/** `--help`, its option lines made from OPTIONS. */
function helpText(): string {
  const line = (flag: string, help: string) => `  ${flag.padEnd(19)}  ${help}`;
  const lines = Object.entries(OPTIONS).map(([name, option]) => {
    const { default: value, help }: Option = option;
    if (typeof value === "boolean") return line(`--${flagOf(name)}`, help);
    const flag = `--${flagOf(name)} ${typeof value === "number" ? "N" : "H"}`;
    const byDefault = value === Infinity ? ": no limit" : ` ${value}`;
    return line(flag, `${help} (default${byDefault})`);
  });
  return `${USAGE}

Serves hello.html and 404.html, a slow /sleep, a CPU-bound /block, its cures
/block-sliced (in slices) and /block-worker (in a Worker), and the experiment
in a browser at /lab.
  serial       the accept loop awaits each connection: one client at a time
  concurrent   the accept loop detaches each connection: all at once (default)
  parallel     concurrent, in a worker thread per CPU on one port (Linux only;
               needs deno run --unstable-net and main.ts in --allow-read)

Options (--name=value and --name value both work):
${lines.join("\n")}
  -h, --help           print this help

Examples:
  deno run --allow-net=127.0.0.1 --allow-read=. main.ts serial --sleep-ms 2000
  deno run '--allow-net=[::1]' --allow-read=. main.ts --hostname ::1 --port 0
  deno run --unstable-net --allow-net=127.0.0.1 --allow-read=. main.ts parallel`;
}

/**
 * Parses the arguments after `main.ts`. Throws a TypeError for what is
 * unknown, missing, not a number or contradictory; a RangeError out of range.
 */
function parseCommandLine(args: readonly string[]): CommandLine {
  const names = Object.keys(OPTIONS) as OptionName[];
  const booleans = [
    "help",
    ...names.filter((n) => OPTIONS[n].default === false),
  ];
  // parseArgs reads --quiet=no as --quiet: only true or false may follow.
  for (const arg of args) {
    const [, flag, value] = /^--(\w+)=(.*)$/.exec(arg) ?? [];
    if (booleans.includes(flag) && !/^(true|false)$/.test(value)) {
      throw new TypeError(`--${flag} takes no value, not "${value}"`);
    }
  }
  const flags = parseArgs(args, {
    boolean: booleans,
    // Strings, not numbers, so that a value missing or mistyped is told apart.
    string: names.filter((n) => !booleans.includes(n)).map(flagOf),
    default: Object.fromEntries(names.map((n) => [flagOf(n), DEFAULTS[n]])),
    alias: { h: "help" },
    unknown(arg, key) {
      if (key === undefined) return true; // a mode, checked below
      const hint = didYouMean(key, [...names.map(flagOf), "help"], "--");
      throw new TypeError(`Unknown option "${arg}"${hint}`);
    },
  });
  // The same mode twice (`deno task serial serial`) is that mode.
  const modes = [...new Set(flags._.map(String))];
  const unknown = modes.find((m) => !(MODES as readonly string[]).includes(m));
  if (unknown) {
    const meant = MODES.find((m) => m === unknown.toLowerCase());
    const hint = meant ? `; did you mean "${meant}"?` : "";
    throw new TypeError(`Unknown mode "${unknown}"${hint}`);
  }
  if (modes.length > 1) {
    // `deno task start serial` gives two: the task's and the user's.
    const task = modes[1] === "concurrent" ? "start" : modes[1];
    throw new TypeError(
      `Choose one mode, not ${modes.join(" and ")}; each deno task already ` +
        `chooses one, so for ${modes[1]} mode run: deno task ${task}`,
    );
  }
  const mode = modes[0] ?? "concurrent";
  const chosen: Record<string, unknown> = { mode, help: flags.help };
  for (const name of names) {
    const flag = `--${flagOf(name)}`;
    const value = flags[flagOf(name)];
    // A string was typed, but for the hostname's default; the rest are not.
    if (typeof value !== "string") chosen[name] = value;
    else if (value === "") throw new TypeError(`${flag} needs a value`);
    else if (name === "hostname") {
      chosen[name] = value.replace(/^\[(.*)\]$/, "$1");
    } else if (Number.isNaN(Number(value)) || value.trim() === "") {
      throw new TypeError(`${flag} needs a number, not "${value}"`);
    } else chosen[name] = checkValue(flag, Number(value), OPTIONS[name]);
  }
  if (mode === "serial" && typeof flags["max-in-flight"] === "string") {
    throw new TypeError("--max-in-flight does not apply to serial mode");
  }
  if (mode !== "parallel" && typeof flags.workers === "string") {
    throw new TypeError("--workers is for parallel mode only");
  }
  return chosen as CommandLine;
}

/**
 * Runs the server from the command line until SIGINT or SIGTERM. Returns
 * the exit code: 0 after a clean stop, 1 when the server cannot start (port
 * in use, bad address, no permission), 2 for a mistake on the command line,
 * 130 when a second signal dropped the requests in flight.
 */
async function main(args: readonly string[]): Promise<number> {
  let options: CommandLine, pages: Pages, listener: Deno.TcpListener;
  try {
    options = parseCommandLine(args);
  } catch (error) {
    return fail(`${(error as Error).message}\n${USAGE}; see --help`, 2);
  }
  if (options.help) {
    print(helpText());
    return 0;
  }
  const { mode, hostname, port, workers, graceMs } = options;
  // Before Deno asks for each permission in turn: one command for all.
  const cannot = missingPermissions(options, args);
  if (cannot) return fail(cannot);
  try {
    pages = await loadPages();
    listener = listen(hostname, port, mode === "parallel");
  } catch (error) {
    return fail(whyNotStarted(error, options));
  }
  const url = `http://${bracketed(hostname)}:${listener.addr.port}/`;
  const how = mode === "parallel"
    ? `parallel, ${plural(workers, "worker")}`
    : mode;
  const lab = pages.lab
    ? `run the experiment at ${url}lab`
    : `${LAB_PAGE} was not found, so the lab is off`;
  const startLine = `Listening on ${url} (${how}); ${lab}`;

  const stop = new AbortController();
  const drop = new AbortController();
  using _signals = onSignals(stop, drop);
  // One line for the whole server, whatever the mode.
  const stopping = `no new connections; requests in flight have ${graceMs} ms`;
  using _stopping = onAbort(
    stop.signal,
    () => log(`Stopping on ${stop.signal.reason}: ${stopping} to finish`),
  );
  const running = { pages, log, stop: stop.signal, drop: drop.signal };
  let code = 0;
  if (mode === "parallel") {
    code = await serveInWorkers(listener, options, running, startLine);
  } else {
    print(startLine);
    await serve(listener, { ...libraryOptions(options), ...running, mode });
  }
  if (drop.signal.aborted) return 130;
  if (code === 0) print("Stopped");
  return code;
}

/** Says on stderr why main() cannot go on, and returns the exit code. */
function fail(message: string, code = 1): number {
  console.error(`error: ${message}`);
  return code;
}

/**
 * Listens on `hostname:port`; in parallel mode with SO_REUSEPORT, for the
 * workers to join. A listener with it could join a port that another
 * server holds with it too, and quietly share its connections: so the port
 * is taken without it first, which fails on a port in use, whoever has it.
 */
function listen(hostname: string, port: number, parallel: boolean) {
  const listener = Deno.listen({ hostname, port });
  if (!parallel) return listener;
  listener.close();
  return Deno.listen({ hostname, port: listener.addr.port, reusePort: true });
}

/**
 * Aborts `stop` on SIGINT or SIGTERM, and `drop` on a second one (main() then
 * exits 130); a repeat within TUNING.samePressMs is one press, sent twice.
 */
function onSignals(stop: AbortController, drop: AbortController): Disposable {
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
    } else if (performance.now() - stoppedAt > TUNING.samePressMs) {
      drop.abort(`a second ${signal}`);
    }
  });
  signals.forEach((s, i) => Deno.addSignalListener(s, handlers[i]));
  const remove = () =>
    signals.forEach((s, i) => Deno.removeSignalListener(s, handlers[i]));
  return { [Symbol.dispose]: remove };
}

/** Prints a line to standard output, which may fail (`> /dev/full`). */
const print = safely(console.log);

/** Prints a line after the local time of day, to the millisecond. */
function log(line: string): void {
  const now = new Date();
  const ms = String(now.getMilliseconds()).padStart(3, "0");
  print(`${now.toTimeString().slice(0, 8)}.${ms} ${line}`);
}

/** A hostname as a URL or `--allow-net` spells it: IPv6 in brackets. */
const bracketed = (hostname: string) =>
  hostname.includes(":") ? `[${hostname}]` : hostname;

/** Why the pages or `Deno.listen()` failed, in one line. */
function whyNotStarted(error: unknown, { hostname, port }: CommandLine) {
  const address = `${bracketed(hostname)}:${port}`;
  if (error instanceof Deno.errors.AddrInUse) {
    return `Address ${address} is already in use; stop what uses it or choose another --port`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `The system does not allow listening on ${address}; ports below 1024 need privileges`;
  }
  const { message } = error as Error;
  if (message.startsWith("Cannot load ")) return message;
  return `Cannot listen on ${address}: ${message}`;
}

/**
 * If main.ts lacks a permission, or parallel mode the unstable flag, one line
 * that names what it cannot do and the one command that has all it needs.
 */
function missingPermissions(
  { hostname, port, mode }: CommandLine,
  args: readonly string[],
): string | undefined {
  const parallel = mode === "parallel";
  const host = bracketed(hostname);
  const folder = import.meta.dirname; // undefined for a remote module
  // Parallel mode starts its workers from this file: it reads it too.
  const files = READ_PATHS.map((file) => `${folder}/${file}`);
  if (parallel) files.push(import.meta.filename!);
  const canRead = folder === undefined ||
    files.every((path) => granted({ name: "read", path }));
  const canListen = granted({ name: "net", host: `${host}:${port}` });
  // Deno.listenDatagram is there only with the unstable network APIs, as
  // reusePort needs: without them, asking for it ends the process.
  const canShare = !parallel || "listenDatagram" in Deno;
  if (canRead && canListen && canShare) return;
  const cannot = [
    canRead || (parallel ? "read the pages and main.ts" : "read the pages"),
    canListen || `listen on ${host}:${port}`,
  ].filter((it) => it !== true);
  const net = `--allow-net=${host}`;
  const here = folder === Deno.cwd();
  const command = [
    "deno run",
    ...(parallel ? ["--unstable-net"] : []),
    hostname.includes(":") ? `'${net}'` : net, // zsh would glob [::1]
    canRead ? readFlagGiven(folder) : `--allow-read=${here ? "." : folder}`,
    here ? "main.ts" : import.meta.filename ?? import.meta.url,
    ...args,
  ];
  const unstable =
    "Parallel mode needs --unstable-net, for Deno.listen's reusePort";
  const why = canShare
    ? `No permission to ${cannot.join(" or ")}`
    : cannot.length
    ? `${unstable}, and permission to ${cannot.join(" and ")}`
    : unstable;
  return `${why}; run: ${command.join(" ")}`;
}

/** The `--allow-read` flag that main.ts was given, as near as it can tell. */
function readFlagGiven(folder?: string): string {
  if (folder === undefined || granted({ name: "read" })) return "--allow-read";
  if (granted({ name: "read", path: "." })) return "--allow-read=.";
  if (granted({ name: "read", path: folder })) return `--allow-read=${folder}`;
  const files = [...READ_PATHS, "main.ts"];
  return `--allow-read=${files.map((file) => `${folder}/${file}`).join(",")}`;
}

/** Whether Deno grants `permission`; a host it cannot parse, it leaves to listen() to report. */
function granted(permission: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(permission).state === "granted";
  } catch {
    return true;
  }
}

if (import.meta.main) {
  // In a worker of parallel mode, this module is the main module too.
  if ("WorkerGlobalScope" in globalThis) serveInWorker();
  else Deno.exit(await main(Deno.args));
}
