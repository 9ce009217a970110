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
 * @returns A promise that resolves once `options.signal` is aborted and every
 * connection is closed: the requests in flight done, or dropped after `graceMs`.
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
export async function serve(
  listener: Deno.Listener,
  options: ServeOptions,
): Promise<void> {
  using server = new Server(options, listener);
  for await (const conn of server.listener) {
    if (server.mode === "serial") {
      // The loop waits here until this client is done. Meanwhile nothing
      // accepts: later clients wait in the kernel's backlog.
      await handle(conn, server);
    } else {
      // No await. Unlike a Rust future, which does nothing until polled, a
      // promise's work starts when it is called: handle() runs up to its
      // first await (the first read), so this client is being served when
      // the loop goes back to accept the next. No spawn is needed, and a
      // forgotten await gives no warning.
      handle(conn, server);
      // With a limit, a full house waits for one client to finish first.
      if (server.open.size >= server.maxInFlight) await server.open.oneEnded();
    }
  }
  await server.open.allEnded();
}

/**
 * Reads one HTTP/1.x request from `conn`, answers it (the routes are just
 * below) and closes `conn`. Logs one line: the request, the status and the
 * time taken, or what went wrong.
 *
 * @param conn The accepted connection; closed before the promise settles.
 * @param options The pages; the rest default to {@linkcode DEFAULTS}.
 * @returns A promise that resolves when the connection is closed. It never
 * rejects (a client that vanished or stalled is logged instead), so it can be
 * left unawaited.
 * @throws {TypeError} At once, before reading, for missing pages or a limit
 * that is not a number.
 * @throws {RangeError} At once, for a limit out of range.
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
export function handle(
  conn: Connection,
  options: HandleOptions,
): Promise<void> {
  // serve() passes its Server; on its own, handle() makes one for this
  // connection, which checks the options here and ends with it.
  if (options instanceof Server) return handleOn(options, conn);
  const server = new Server(options);
  return handleOn(server, conn).finally(() => server[Symbol.dispose]());
}

/** handle(), on a server that owns the connection while it is open. */
async function handleOn(server: Server, conn: Connection): Promise<void> {
  const open = server.open.add(conn);
  let outcome: string;
  try {
    outcome = String(await answer(server, open));
  } catch (error) {
    outcome = open.ended ? ENDED[open.ended] : `failed: ${describe(error)}`;
  } finally {
    closeQuietly(conn);
    server.open.remove(open);
  }
  const elapsedMs = Math.round(performance.now() - open.started);
  server.report(`${open.requestLine} ${outcome} (${elapsedMs} ms)`);
}

/** The routes. Returns the status sent, or why none was. */
async function answer(
  server: Server,
  open: Open,
): Promise<StatusCode | string> {
  const head = await readHead(open, server);
  if (head === "closed") return "closed by the client before a whole request";
  if (head === "too large") return await server.send(open, 431);
  const parsed = parseHead(head);
  open.requestLine = parsed.line ?? "-";
  if (parsed.error) return await server.send(open, parsed.error);
  const withBody = parsed.method === "GET";
  const respond = (page: keyof Pages) => server.send(open, page, withBody);
  switch (parsed.path) {
    case "/":
      return await respond("hello");
    case "/lab":
      return await respond("lab");
    case "/sleep":
      // A timer: in concurrent mode the thread serves other clients
      // meanwhile; in serial mode the loop is waiting for this one.
      await delay(server.sleepMs, { signal: server.dropped });
      return await respond("hello");
    case "/block":
      // No await: nothing else runs meanwhile, not even the accept loop.
      blockFor(server.sleepMs);
      return await respond("hello");
    default:
      return await respond("notFound"); // with status 404
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

/** The pages the server sends, as bytes ready to write. */
export interface Pages {
  /** Sent for `/`, `/sleep` and `/block`. */
  hello: Uint8Array;
  /** Sent, with status 404, for any other path. */
  notFound: Uint8Array;
  /** Sent for `/lab`: the experiment, run in the browser. */
  lab: Uint8Array;
}
const PAGE_FILES = {
  hello: "hello.html",
  notFound: "404.html",
  lab: "lab.html",
} as const satisfies Record<keyof Pages, string>;

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
  /** How long a write may make no progress, in ms; then the connection ends. */
  sendTimeoutMs?: number;
  /** The largest request head accepted, in bytes; a larger one gets 431. */
  maxHeadBytes?: number;
  /** Where the one line per connection goes. Defaults to `console.log`. */
  log?: (line: string) => void;
  /** Once aborted, the request is dropped: its connection is closed. */
  signal?: AbortSignal;
}

/** Options for {@linkcode serve}; all but `mode` and `pages` have defaults. */
export interface ServeOptions extends HandleOptions {
  /** Whether the accept loop awaits each connection or detaches it. */
  mode: Mode;
  /** Concurrent mode: how many are served at once; 1 is serial mode. */
  maxInFlight?: number;
  /** No line per connection; the server's own events are still logged. */
  quiet?: boolean;
  /** Once stopped, how long requests in flight have to finish, in ms. */
  graceMs?: number;
  /**
   * Stops the server: no new connections, those still waiting for their
   * head closed, `graceMs` for the rest. A string reason is logged.
   */
  signal?: AbortSignal;
  /**
   * Once aborted, after `signal`, the grace period ends at once: what is
   * still in flight is dropped. main.ts aborts it on a second Ctrl-C.
   */
  drop?: AbortSignal;
  /** Parallel mode: this worker's number, named in `Server-Timing`. */
  worker?: number;
}

/** The default of every option, for the library and the command line. */
export const DEFAULTS = {
  mode: "concurrent",
  hostname: "127.0.0.1",
  port: 7878,
  sleepMs: 5000,
  headTimeoutMs: 5000,
  sendTimeoutMs: 5000,
  maxHeadBytes: 8192,
  maxInFlight: Infinity,
  graceMs: 10_000,
  workers: navigator.hardwareConcurrency,
} as const;

/** The range of each numeric option, for the library and the command line. */
const RANGES = {
  port: [0, 65535],
  sleepMs: [0, 2 ** 31 - 1], // the longest delay setTimeout() takes
  headTimeoutMs: [1, 2 ** 31 - 1],
  sendTimeoutMs: [1, 2 ** 31 - 1],
  graceMs: [0, 2 ** 31 - 1],
  maxHeadBytes: [64, 2 ** 20],
  maxInFlight: [1, Infinity],
  workers: [1, 1024],
} as const;
type Range = readonly [number, number];

/** Throws unless `value` is a whole number (or Infinity) in `[min, max]`. */
function checkRange(name: string, value: unknown, [min, max]: Range): number {
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(`${name} must be a number, not ${value}`);
  }
  const whole = Number.isInteger(value) || value === Infinity;
  if (!whole || value < min || value > max) {
    throw new RangeError(`${name} must be from ${min} to ${max}, not ${value}`);
  }
  return value;
}

/**
 * The options of serve() or handle(), each filled in from DEFAULTS and
 * checked: the one place that does both, so that a script that skips type
 * checking gets an error at once, not a loop that never ends.
 */
function settle(options: Partial<ServeOptions>) {
  const { pages } = options;
  if (
    !Object.keys(PAGE_FILES).every((p) =>
      pages?.[p as keyof Pages] instanceof Uint8Array
    )
  ) {
    throw new TypeError("pages must be three Uint8Arrays; see loadPages()");
  }
  const number = (name: keyof typeof RANGES & keyof ServeOptions) =>
    checkRange(name, options[name] ?? DEFAULTS[name], RANGES[name]);
  return {
    pages: pages as Pages,
    sleepMs: number("sleepMs"),
    headTimeoutMs: number("headTimeoutMs"),
    sendTimeoutMs: number("sendTimeoutMs"),
    maxHeadBytes: number("maxHeadBytes"),
    maxInFlight: number("maxInFlight"),
    graceMs: number("graceMs"),
    log: options.log ?? console.log,
    quiet: options.quiet ?? false,
  };
}

// ---------------------------------------------------------------------------
// The server: what serve() owns

/**
 * What one serve() call owns, or one handle() call made on its own: the
 * options, settled; the responses, built once; every connection it has
 * open, with the one timer that ends those out of time; and the stop.
 * It has the shape of {@linkcode HandleOptions}, so that serve() can pass
 * it to handle().
 */
class Server implements Disposable {
  readonly mode: Mode | undefined;
  readonly pages: Pages;
  readonly sleepMs: number;
  readonly maxHeadBytes: number;
  readonly maxInFlight: number;
  readonly headTimeoutMs: number;
  readonly #sendTimeoutMs: number;
  readonly #log: (line: string) => void;
  readonly #quiet: boolean;
  readonly #responses: Responses;
  /** Every connection accepted and not yet closed: those in flight. */
  readonly open = new OpenConnections();
  /** Aborted when what is still in flight is dropped: a /sleep ends. */
  readonly #drop = new AbortController();
  readonly dropped = this.#drop.signal;
  /** One timer for every connection: one each would cost more than they do. */
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #cleanups: (() => void)[] = [];

  /**
   * Settles `options` (throwing on a mistake) and, given a listener, arms
   * the stop: `options.signal` closes the listener and the connections still
   * waiting for their head, and gives the rest `graceMs`. Without one, as
   * for handle(), `options.signal` drops the request at once.
   */
  constructor(options: ServeOptions | HandleOptions, listener?: Deno.Listener) {
    const settled = settle(options);
    // Only a server with a listener has a loop, and so a mode.
    const { mode, worker, drop }: Partial<ServeOptions> = listener
      ? options
      : {};
    if (listener && !isMode(mode)) {
      throw new TypeError(`mode must be "serial" or "concurrent", not ${mode}`);
    }
    this.mode = mode;
    this.pages = settled.pages;
    this.sleepMs = settled.sleepMs;
    this.maxHeadBytes = settled.maxHeadBytes;
    this.maxInFlight = settled.maxInFlight;
    this.headTimeoutMs = settled.headTimeoutMs;
    this.#sendTimeoutMs = settled.sendTimeoutMs;
    this.#log = settled.log;
    this.#quiet = settled.quiet;
    const metrics = worker === undefined
      ? mode && `mode;desc=${mode}`
      : `mode;desc=parallel, worker;desc=${worker}`;
    this.#responses = new Responses(settled.pages, metrics);
    this.#timer = setInterval(() => this.#endLate(), 50);
    const { signal } = options;
    if (listener === undefined) {
      this.listener = noConnections();
      this.#onAbort(signal, () => this.#dropAll());
      return;
    }
    this.listener = acceptsRetried(listener, this);
    this.#onAbort(signal, () => this.#stop(listener, signal!, settled.graceMs));
    this.#onAbort(drop, () => {
      this.#stop(listener, drop!, settled.graceMs);
      this.#dropAll(`on ${drop!.reason}`);
    });
  }

  /**
   * The listener's connections, but a failed accept (out of file
   * descriptors, say) is logged and retried after a pause.
   */
  readonly listener: AsyncIterable<Deno.Conn>;

  /** Logs a line about one connection, unless quiet. */
  report(line: string): void {
    if (!this.#quiet) report(this.#log, line);
  }

  /** Logs one of the server's own events. */
  event(line: string): void {
    report(this.#log, line);
  }

  /**
   * Writes a response, however few bytes each write takes, and returns
   * its status. A write that takes nothing for the send timeout ends the
   * connection (see #endLate()).
   */
  async send(
    open: Open,
    what: keyof Pages | ErrorStatus,
    withBody = true,
  ): Promise<StatusCode> {
    const { status, bytes } = this.#responses.get(what, open, withBody);
    let written = 0;
    while (written < bytes.length) {
      open.waiting = "write";
      open.deadline = performance.now() + this.#sendTimeoutMs;
      written += await open.conn.write(
        written ? bytes.subarray(written) : bytes,
      );
    }
    open.waiting = undefined;
    return status;
  }

  /** Ends what ran out of time: a head not complete, a write stalled. */
  #endLate(): void {
    const now = performance.now();
    this.open.forEach((open) => {
      if (open.waiting === undefined || now < open.deadline) return;
      if (open.waiting === "write") return end(open, "stalled");
      // A pending read ends only when its connection closes: answer 408
      // first. The read then fails, and handle() logs why.
      open.ended ??= "timeout";
      this.send(open, 408)
        .catch(() => {}) // a client too slow to send a head may be gone too
        .finally(() => closeQuietly(open.conn));
    });
  }

  #stopped = false;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;

  #stop(listener: Deno.Listener, signal: AbortSignal, graceMs: number): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.event(stoppingLine(signal.reason, graceMs));
    closeQuietly(listener);
    this.open.forEach((open) => {
      if (open.waiting === "head") end(open, "shutdown");
    });
    this.#graceTimer = setTimeout(
      () => this.#dropAll(`after the grace period of ${graceMs} ms`),
      graceMs,
    );
  }

  /** Ends every connection still open, whatever it is doing. */
  #dropAll(why?: string): void {
    clearTimeout(this.#graceTimer);
    const count = this.open.size;
    if (why !== undefined && count > 0) {
      this.event(`Dropping ${plural(count, "request")} still in flight ${why}`);
    }
    this.open.forEach((open) => end(open, "dropped"));
    this.#drop.abort();
  }

  #onAbort(signal: AbortSignal | undefined, then: () => void): void {
    if (signal === undefined) return;
    if (signal.aborted) return then();
    signal.addEventListener("abort", then, { once: true });
    this.#cleanups.push(() => signal.removeEventListener("abort", then));
  }

  [Symbol.dispose](): void {
    clearInterval(this.#timer);
    clearTimeout(this.#graceTimer);
    this.#cleanups.forEach((cleanup) => cleanup());
  }
}

/** A connection its server has open, and what it is waiting for. */
class Open {
  readonly started = performance.now();
  /** Where it stands in its OpenConnections, or -1 once removed. */
  index = -1;
  waiting: "head" | "write" | undefined;
  /** When the wait ends it (see Server's #endLate()). */
  deadline = Infinity;
  /** Why the server ended it, if it did. */
  ended: End | undefined;
  /** Method and target, once read: the start of its log line. */
  requestLine = "-";
  constructor(readonly conn: Connection) {}
}

/** Why a server ended a connection. */
type End = "timeout" | "shutdown" | "stalled" | "dropped";

/** What handle() logs for a connection its server ended. */
const ENDED = {
  timeout: "408",
  shutdown: "closed at shutdown before a whole request",
  stalled: "closed: a write made no progress for the send timeout",
  dropped: "dropped before it was done",
} as const satisfies Record<End, string>;

/** Marks `open` as ended by the server, for `why`, and closes it. */
function end(open: Open, why: End): void {
  open.ended ??= why;
  closeQuietly(open.conn);
}

/**
 * The connections a server has open. A plain array with swap-remove, not a
 * Set: with thousands of adds and deletes a second, a Set kept connections
 * alive long enough for V8 to promote them, and resident memory doubled.
 */
class OpenConnections {
  readonly #all: Open[] = [];
  #wake: (() => void) | undefined;

  get size(): number {
    return this.#all.length;
  }

  add(conn: Connection): Open {
    const open = new Open(conn);
    open.index = this.#all.push(open) - 1;
    return open;
  }

  /** Takes `open` off the list: the last one takes its place. */
  remove(open: Open): void {
    const last = this.#all.pop()!;
    if (last !== open) {
      last.index = open.index;
      this.#all[open.index] = last;
    }
    open.index = -1;
    this.#wake?.();
  }

  /** Resolves once the next connection is closed; only the loop waits. */
  oneEnded(): Promise<void> {
    return new Promise((resolve) => this.#wake = resolve);
  }

  async allEnded(): Promise<void> {
    while (this.size > 0) await this.oneEnded();
  }

  /**
   * Calls `visit` with each, the last first, so that one taken off the list
   * meanwhile moves one already visited into its place. No copy of the
   * list: the timer visits thousands of waiting connections 20 times a
   * second, and copies would make V8 grow its young generation.
   */
  forEach(visit: (open: Open) => void): void {
    for (let i = this.#all.length - 1; i >= 0; i--) visit(this.#all[i]);
  }
}

/**
 * The connections `for await (const conn of listener)` gives, but a failed
 * accept (out of file descriptors, say) is logged and retried after a pause
 * that doubles each time, so that a flood does not make the loop spin.
 */
async function* acceptsRetried(listener: Deno.Listener, server: Server) {
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
      server.event(
        `Accept failed: ${describe(error)}; trying again in ${pauseMs} ms`,
      );
      await delay(pauseMs, { signal: server.dropped }).catch(() => {});
    }
  }
}

/** What a server without a listener (handle() on its own) accepts. */
async function* noConnections(): AsyncGenerator<Deno.Conn> {}

// ---------------------------------------------------------------------------
// Reading the request head

/**
 * Reads up to the blank line that ends the head, or says why it can't,
 * with the head timeout running (see Server's #endLate()). Throws once the
 * server has ended the connection (see Open's `ended`).
 */
async function readHead(
  open: Open,
  { maxHeadBytes, headTimeoutMs }: Server,
): Promise<Uint8Array | "closed" | "too large"> {
  // Most heads are a few hundred bytes: start small and grow up to the
  // limit, so that thousands of waiting connections cost little memory.
  let buffer = new Uint8Array(Math.min(256, maxHeadBytes));
  let length = 0;
  open.waiting = "head";
  open.deadline = open.started + headTimeoutMs;
  try {
    while (true) {
      if (length === buffer.length) {
        if (length >= maxHeadBytes) return "too large";
        const larger = new Uint8Array(Math.min(length * 2, maxHeadBytes));
        larger.set(buffer);
        buffer = larger;
      }
      const read = await open.conn.read(
        length ? buffer.subarray(length) : buffer,
      );
      if (open.ended) throw new Deno.errors.Interrupted(open.ended);
      if (read === null) return "closed";
      // The blank line may straddle two reads, so look back a little.
      const searchFrom = Math.max(0, length - 3);
      length += read;
      const end = findHeadEnd(buffer, searchFrom);
      if (end !== -1) return buffer.subarray(0, end);
    }
  } finally {
    open.waiting = undefined;
  }
}

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
// Parsing the head: RFC 9112, for a server that reads no bodies

/** A request line and field lines as RFC 9112 spells them, CR optional. */
const REQUEST_LINE =
  /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([!-~]+) HTTP\/(\d)\.(\d)\r?$/;
const FIELD_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\t -~\u0080-\uffff]*)\r?$/;

/** The methods RFC 9110 defines, and PATCH (RFC 5789): others get 501. */
const KNOWN_METHODS: readonly string[] = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
];

/** A request to route, or the error status to answer, with its line if read. */
type ParsedHead =
  | { error?: undefined; line: string; method: string; path: string }
  | { error: ErrorStatus; line?: string };

/**
 * Parses a head as RFC 9112 asks of a server that reads no bodies: HTTP/1.1
 * and later 1.x need exactly one Host; Content-Length must be one number;
 * chunked is the only transfer coding understood, so any other gets 501.
 */
function parseHead(head: Uint8Array): ParsedHead {
  const [requestLine, ...fieldLines] = decoder.decode(head).split("\n")
    .slice(0, -2); // the empty line that ends the head, and what follows it
  const match = REQUEST_LINE.exec(requestLine);
  if (match === null) return { error: 400 };
  const [, method, target, major, minor] = match;
  const line = `${method} ${target}`;
  // HTTP/1.2 and later minor versions are read as 1.1 (RFC 9110 §2.5).
  if (major !== "1") return { line, error: 505 };

  let hosts = 0;
  const lengths: string[] = [];
  const codings: string[] = [];
  for (const fieldLine of fieldLines) {
    const field = FIELD_LINE.exec(fieldLine);
    if (field === null) return { line, error: 400 };
    const [, name, value] = field;
    // Only three names matter; most fields are skipped by their length.
    if (name.length === 4 && name.toLowerCase() === "host") hosts++;
    else if (name.length === 14 && name.toLowerCase() === "content-length") {
      lengths.push(...value.split(","));
    } else if (
      name.length === 17 && name.toLowerCase() === "transfer-encoding"
    ) codings.push(...value.split(","));
  }
  const path = pathOf(target);
  if (
    hosts > 1 || (minor !== "0" && hosts === 0) || !path ||
    !validLength(lengths) || (codings.length > 0 && lengths.length > 0)
  ) return { line, error: 400 };
  const codingError = checkCodings(codings);
  if (codingError) return { line, error: codingError };
  if (method !== "GET" && method !== "HEAD") {
    return { line, error: KNOWN_METHODS.includes(method) ? 405 : 501 };
  }
  return { line, method, path };
}

/** Whether Content-Length's values, if any, are one number (RFC 9110 §8.6). */
function validLength(values: string[]): boolean {
  const numbers = values.map((value) =>
    /^[\t ]*0*(\d+?)[\t ]*$/.exec(value)?.[1] // 007 is 7
  );
  return !numbers.includes(undefined) && new Set(numbers).size <= 1;
}

/**
 * 501 for a transfer coding other than chunked, 400 for chunked twice or an
 * empty list (RFC 9112 §6.1); undefined when all is well.
 */
function checkCodings(values: string[]): 400 | 501 | undefined {
  if (values.length === 0) return;
  const codings = values
    .map((v) =>
      v.split(";", 1)[0].replace(/^[\t ]+|[\t ]+$/g, "").toLowerCase()
    )
    .filter((coding) => coding !== ""); // a list may have empty elements
  if (codings.some((coding) => coding !== "chunked")) return 501;
  if (codings.length !== 1) return 400;
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

/** The statuses sent with a short plain-text body that names them. */
type ErrorStatus = 400 | 405 | 408 | 431 | 501 | 505;
const ERROR_STATUSES = [400, 405, 408, 431, 501, 505] as const;
const PAGE_STATUSES = { hello: 200, notFound: 404, lab: 200 } as const;

/**
 * A server's responses, built once when it starts: only the time in the
 * `Server-Timing` field, the last of the head, is written per request.
 */
class Responses {
  readonly #built = new Map<keyof Pages | ErrorStatus, Built>();

  /** @param metrics Server-Timing's metrics before `handle`, if any. */
  constructor(pages: Pages, metrics: string | undefined) {
    const timing = `Server-Timing: ${metrics ? `${metrics}, ` : ""}handle;dur=`;
    for (const page of Object.keys(PAGE_STATUSES) as (keyof Pages)[]) {
      const status = PAGE_STATUSES[page];
      this.#built.set(page, built(status, HTML, pages[page], timing));
    }
    for (const status of ERROR_STATUSES) {
      const body = encoder.encode(`${status} ${STATUS_TEXT[status]}\n`);
      this.#built.set(status, built(status, TEXT, body, timing));
    }
  }

  /** The bytes to send to `open` now: its time so far, then the body. */
  get(what: keyof Pages | ErrorStatus, open: Open, withBody: boolean) {
    const { status, head, body } = this.#built.get(what)!;
    const dur = (performance.now() - open.started).toFixed(1);
    const bytes = this.#take(
      head.length + dur.length + END_OF_HEAD.length +
        (withBody ? body.length : 0),
    );
    bytes.set(head);
    encoder.encodeInto(dur, bytes.subarray(head.length));
    bytes.set(END_OF_HEAD, head.length + dur.length);
    if (withBody) {
      bytes.set(body, head.length + dur.length + END_OF_HEAD.length);
    }
    return { status, bytes };
  }

  /**
   * `length` bytes, carved from a larger buffer: a buffer of its own for
   * each response cost more than filling it. A slab lives until the last
   * write from it is done.
   */
  #take(length: number): Uint8Array {
    if (this.#used + length > this.#slab.length) {
      this.#slab = new Uint8Array(Math.max(SLAB_BYTES, length));
      this.#used = 0;
    }
    this.#used += length;
    return this.#slab.subarray(this.#used - length, this.#used);
  }
  #slab = new Uint8Array(0);
  #used = 0;
}
const SLAB_BYTES = 64 * 1024;
interface Built {
  status: StatusCode;
  head: Uint8Array;
  body: Uint8Array;
}

/** A response's head up to the time in its last field, and its body. */
function built(
  status: StatusCode,
  type: string,
  body: Uint8Array,
  timing: string,
): Built {
  const head = encoder.encode(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\n` +
      `Content-Type: ${type}\r\n` +
      `Content-Length: ${body.byteLength}\r\n` +
      (status === 405 ? "Allow: GET, HEAD\r\n" : "") +
      "Connection: close\r\n" + timing,
  );
  return { status, head, body };
}

const HTML = "text/html; charset=utf-8";
const TEXT = "text/plain; charset=utf-8";
const encoder = new TextEncoder();
const END_OF_HEAD = encoder.encode("\r\n\r\n");

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
function report(log: (line: string) => void, line: string): void {
  try {
    log(line);
  } catch {
    // Nowhere left to report to; throwing would end the process.
  }
}

/** `1 request`, `2 requests`. */
function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
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
 * Reads `hello.html`, `404.html` and `lab.html` from the folder that holds
 * this module, whatever the working directory.
 *
 * @param folder The folder to read them from, as a URL ending in `/`.
 * @returns The pages, as bytes.
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
  const entries = await Promise.all(
    Object.entries(PAGE_FILES).map(async ([page, file]) =>
      [page, await Deno.readFile(new URL(file, folder))] as const
    ),
  );
  return Object.fromEntries(entries) as unknown as Pages;
}

// ---------------------------------------------------------------------------
// Parallel mode: the concurrent loop on every CPU

/**
 * Runs serve() in concurrent mode in `options.workers` Workers: threads with
 * an event loop each, listening on `hold`'s port with SO_REUSEPORT, so that
 * the kernel gives each new connection to one of them. `hold` keeps the
 * port until they all listen. A worker that fails ends them all (a bug).
 * Resolves with the exit code once they have stopped.
 */
async function serveInWorkers(
  hold: Deno.TcpListener,
  { pages, signal: stop, drop, ...options }: ParallelOptions,
  startLine: string,
): Promise<number> {
  const port = hold.addr.port;
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
    const start = { worker: i + 1, options: { ...options, port }, pages };
    worker.postMessage({ start });
    return { worker, ...said };
  });
  // The workers stop quietly: one line says it for all of them.
  stop.addEventListener("abort", () => {
    print(`${localTime()} ${stoppingLine(stop.reason, options.graceMs)}`);
    workers.forEach(({ worker }) => worker.postMessage({ stop: stop.reason }));
  });
  drop.addEventListener("abort", () => {
    workers.forEach(({ worker }) => worker.postMessage({ drop: drop.reason }));
  });
  const all = (word: Said) =>
    Promise.race([
      failed.promise,
      Promise.all(workers.map((w) => w[word].promise)).then(() => ""),
    ]);
  let failure = await all("listening");
  hold.close();
  if (!failure) print(startLine);
  failure ||= await all("stopped");
  workers.forEach(({ worker }) => worker.terminate());
  if (failure) console.error(`error: ${failure}`);
  return failure ? 1 : 0;
}
type ParallelOptions = CommandLine & {
  pages: Pages;
  signal: AbortSignal;
  drop: AbortSignal;
};
type Said = "listening" | "stopped";
const wait = () => Promise.withResolvers<string>();

/** In a worker of parallel mode: serve() until the main thread says stop. */
function serveInWorker(): void {
  // A worker's global scope talks to its parent as a Worker object does.
  const parent = globalThis as unknown as Worker;
  const stop = new AbortController();
  const drop = new AbortController();
  parent.onmessage = async ({ data }) => {
    if ("stop" in data) return stop.abort(data.stop);
    if ("drop" in data) return drop.abort(data.drop);
    const { worker, options, pages } = data.start;
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
      worker,
      log: (line) => {
        // The main thread says Stopping, once for every worker.
        if (!line.startsWith(STOPPING)) {
          print(`${localTime()} worker ${worker}: ${line}`);
        }
      },
      signal: stop.signal,
      drop: drop.signal,
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
    Pick<
      ServeOptions,
      "sleepMs" | "headTimeoutMs" | "sendTimeoutMs" | "graceMs" | "maxInFlight"
    >
  >
  & { quiet: boolean }
  & { mode: Mode | "parallel"; hostname: string; port: number }
  & { workers: number; help: boolean };

/** The help that `--help` prints. */
export const HELP = `Usage: main.ts [serial|concurrent|parallel] [options]

Serves hello.html and 404.html, a slow /sleep, a CPU-bound /block, and the
experiment in a browser at /lab.
  serial       the accept loop awaits each connection: one client at a time
  concurrent   the accept loop detaches each connection: all at once (default)
  parallel     concurrent, in a worker thread per CPU on one port (Linux only;
               needs deno run --unstable-net and main.ts in --allow-read)

Options (--name=value and --name value both work):
  --port N             the port; 0 takes any free one (default ${DEFAULTS.port})
  --hostname H         the address, such as ::1 (default ${DEFAULTS.hostname})
  --sleep-ms N         how long /sleep waits and /block spins (default ${DEFAULTS.sleepMs})
  --head-timeout-ms N  time to send a request head, then 408 (default ${DEFAULTS.headTimeoutMs})
  --send-timeout-ms N  time a write may make no progress, then close (default ${DEFAULTS.sendTimeoutMs})
  --grace-ms N         on Ctrl-C or SIGTERM, time left to requests (default ${DEFAULTS.graceMs})
  --max-in-flight N    at most N connections at once in each loop (default: no limit)
  --workers N          parallel: how many worker threads (default ${DEFAULTS.workers})
  --quiet              no line per connection
  -h, --help           print this help

Examples:
  deno run --allow-net=127.0.0.1 --allow-read main.ts serial --sleep-ms 2000
  deno run '--allow-net=[::1]' --allow-read main.ts --hostname ::1 --port 0
  deno run --unstable-net --allow-net=127.0.0.1 --allow-read main.ts parallel`;

/** The flags that take a whole number, each named for its option. */
const NUMBER_FLAGS = [
  "port",
  "sleep-ms",
  "head-timeout-ms",
  "send-timeout-ms",
  "grace-ms",
  "max-in-flight",
  "workers",
] as const;
const BOOLEAN_FLAGS = ["help", "quiet"] as const;

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
  // parseArgs reads --quiet=no as --quiet: only true or false may follow.
  for (const arg of args) {
    const [, flag, value] = /^--(\w+)=(.*)$/.exec(arg) ?? [];
    if (
      BOOLEAN_FLAGS.includes(flag as "quiet") &&
      value !== "true" && value !== "false"
    ) throw new TypeError(`--${flag} takes no value, not "${value}"`);
  }
  const flags = parseArgs([...args], {
    string: ["hostname", ...NUMBER_FLAGS],
    boolean: BOOLEAN_FLAGS,
    alias: { h: "help" },
    unknown(arg, key) {
      if (key !== undefined) throw new TypeError(`Unknown option "${arg}"`);
    },
  });
  const modes = flags._.map(String);
  const unknown = modes.find((mode) => !isMode(mode) && mode !== "parallel");
  if (unknown) throw new TypeError(`Unknown argument "${unknown}"`);
  if (modes.length > 1) {
    // `deno task start serial` gives two: the task's and the user's.
    throw new TypeError(
      `Choose one mode, not ${
        modes.join(" and ")
      }; each deno task already chooses one, so for ${
        modes.at(-1)
      } mode run: deno task ${
        modes.at(-1) === "concurrent" ? "start" : modes.at(-1)
      }`,
    );
  }
  const options: CommandLine = {
    mode: (modes[0] ?? DEFAULTS.mode) as CommandLine["mode"],
    hostname: (flags.hostname ?? DEFAULTS.hostname).replace(/^\[(.*)\]$/, "$1"),
    port: DEFAULTS.port,
    sleepMs: DEFAULTS.sleepMs,
    headTimeoutMs: DEFAULTS.headTimeoutMs,
    sendTimeoutMs: DEFAULTS.sendTimeoutMs,
    graceMs: DEFAULTS.graceMs,
    maxInFlight: DEFAULTS.maxInFlight,
    workers: DEFAULTS.workers,
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
    const option = flag.replace(/-(.)/g, (_, c) => c.toUpperCase()) as
      & keyof typeof RANGES
      & keyof CommandLine;
    options[option] = checkRange(`--${flag}`, Number(value), RANGES[option]);
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
 * command line, 130 when a second signal dropped the requests in flight.
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
    listener = listen(hostname, port, parallel);
  } catch (error) {
    console.error(`error: ${whyNotListening(error, options, args)}`);
    return 1;
  }
  const url = `http://${bracketed(hostname)}:${listener.addr.port}/`;
  const how = parallel ? `parallel, ${plural(workers, "worker")}` : mode;
  const started =
    `Listening on ${url} (${how}); run the experiment at ${url}lab`;

  const stop = new AbortController();
  const drop = new AbortController();
  const removeSignalListeners = onSignals(stop, drop);
  const serving = { ...options, pages, signal: stop.signal, drop: drop.signal };
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
  if (drop.signal.aborted) return 130;
  if (code === 0) print("Stopped");
  return code;
}

const USAGE =
  "Usage: main.ts [serial|concurrent|parallel] [options]; see --help";

/**
 * Listens on `hostname:port`; in parallel mode with SO_REUSEPORT, for the
 * workers to join. A listener with it could join a port that another
 * server holds with it too, and quietly share its connections: so the port
 * is taken without it first, which fails on a port in use, whoever has it.
 */
function listen(hostname: string, port: number, parallel: boolean) {
  const listener = Deno.listen({ hostname, port });
  if (!parallel) return listener;
  const { port: chosen } = listener.addr;
  listener.close();
  return Deno.listen({ hostname, port: chosen, reusePort: true });
}

/** What a server logs when it stops: no new connections, and the grace. */
function stoppingLine(reason: unknown, graceMs: number): string {
  const why = typeof reason === "string" ? ` on ${reason}` : "";
  const grace = `requests in flight have ${graceMs} ms to finish`;
  return `${STOPPING}${why}: no new connections; ${grace}`;
}
const STOPPING = "Stopping";

/**
 * Aborts `stop` on SIGINT or SIGTERM, and `drop` on a second one: the
 * requests in flight are dropped, and main() exits 130. A terminal sends
 * Ctrl-C to the whole process group, and `deno task` passes it on too, so
 * one press can arrive twice: a repeat within half a second is the same
 * press. Returns a function that removes the listeners.
 */
function onSignals(stop: AbortController, drop: AbortController) {
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
    } else if (performance.now() - stoppedAt > 500) {
      drop.abort(`a second ${signal}`);
    }
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
 * missing permission, the command that has it: the read permission the
 * user gave, the network one added, and the same arguments.
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
    const net = `--allow-net=${bracketed(hostname)}`;
    const command = [
      "deno run",
      ...(mode === "parallel" ? ["--unstable-net"] : []),
      hostname.includes(":") ? `'${net}'` : net, // zsh would glob [::1]
      readFlagGiven(),
      "main.ts",
      ...args,
    ];
    return `No permission to listen on ${address}; run: ${command.join(" ")}`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `The system does not allow listening on ${address}; ports below 1024 need privileges`;
  }
  return `Cannot listen on ${address}: ${why}`;
}

/** The `--allow-read` flag that gave what main.ts has, as near as it can. */
function readFlagGiven(): string {
  const granted = (path?: string) =>
    Deno.permissions.querySync({ name: "read", path }).state === "granted";
  if (granted()) return "--allow-read";
  if (granted(".")) return "--allow-read=.";
  const folder = import.meta.dirname; // undefined for a remote module
  if (folder === undefined || granted(folder)) {
    return `--allow-read${folder ? `=${folder}` : ""}`;
  }
  const files = [...Object.values(PAGE_FILES), "main.ts"];
  return `--allow-read=${files.map((file) => `${folder}/${file}`).join(",")}`;
}

if (import.meta.main) {
  // In a worker of parallel mode, this module is the main module too.
  if ("WorkerGlobalScope" in globalThis) serveInWorker();
  else Deno.exit(await main(Deno.args));
}
