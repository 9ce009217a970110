/**
 * What the tests of main.ts share: the responses they expect, an in-memory
 * connection for `handle()`, a server on a free port for `serve()`, main.ts
 * as a process of its own, and a deadline for every test that talks to a
 * server.
 *
 * @module
 */

import { assert } from "@std/assert";
import {
  type Connection,
  handle,
  type HandleOptions,
  loadPages,
  type Mode,
  type Pages,
  serve,
  type ServeOptions,
} from "../main.ts";
import {
  type Address,
  readResponse as readResponseTimed,
  readToEnd as readToEndTimed,
  send as sendTimed,
} from "./clients.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// A deadline for each test

/** How long a test that talks to a server may take, unless it says. */
export const DEADLINE_MS = 60_000;

/**
 * Wraps a test's body so that it fails with "Test did not finish within
 * `ms` ms" instead of stalling the run when a server or client hangs. The
 * timer is cleared however the body ends, so Deno's sanitizers stay on.
 * The deadline is generous: it catches hangs, not slowness.
 */
export function withDeadline(
  fn: (t: Deno.TestContext) => void | Promise<void>,
  ms: number = DEADLINE_MS,
): (t: Deno.TestContext) => Promise<void> {
  return async (t) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Test did not finish within ${ms} ms`)),
        ms,
      );
    });
    try {
      await Promise.race([fn(t), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * Whether this system lacks the Unix signals that stop main.ts gracefully.
 * On Windows, Deno listens only for Ctrl-C and Ctrl-Break, and a signal sent
 * to a process ends it at once, so no graceful stop can be seen: tests that
 * signal main.ts and check how it stopped are ignored there.
 */
export const noSignals: boolean = Deno.build.os === "windows";

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------
// What the server must send

/** The pages main.ts serves, as {@linkcode loadPages} reads them. */
export const pages: Pages = await loadPages();
/** hello.html, as text. */
export const hello: string = decoder.decode(pages.hello);
/** 404.html, as text. */
export const notFound: string = decoder.decode(pages.notFound);

/** The response the server must send, spelled out as a client sees it. */
export function expectedResponse(
  status: string,
  contentType: string,
  body: string,
  { withBody = true, extraHeaders = "" } = {},
): string {
  return `HTTP/1.1 ${status}\r\n` +
    `Content-Type: ${contentType}\r\n` +
    `Content-Length: ${encoder.encode(body).byteLength}\r\n` +
    extraHeaders +
    "Connection: close\r\n\r\n" +
    (withBody ? body : "");
}

/** The Content-Type of the pages. */
export const HTML = "text/html; charset=utf-8";
/** The Content-Type of the status pages, such as 400's. */
export const TEXT = "text/plain; charset=utf-8";
/** 200 with hello.html, without Server-Timing. */
export const OK_HELLO: string = expectedResponse("200 OK", HTML, hello);
/** 404 with 404.html, without Server-Timing. */
export const NOT_FOUND: string = expectedResponse(
  "404 Not Found",
  HTML,
  notFound,
);

/** A status page, such as "400 Bad Request", whose body is its status. */
export function statusPage(status: string, extraHeaders = ""): string {
  return expectedResponse(status, TEXT, `${status}\n`, { extraHeaders });
}

/**
 * A response without its Server-Timing field, whose time differs each
 * time: the tests compare the rest to the letter, and those headed
 * "Server-Timing" check the field itself.
 */
export function untimed(response: string): string {
  return response.replace(/^Server-Timing: [^\r\n]*\r\n/m, "");
}

/** A GET request for `path`, with a Host. */
export function get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
}

// ---------------------------------------------------------------------------
// Clients

/** As {@linkcode sendTimed} in clients.ts, the response {@linkcode untimed}. */
export async function send(
  addr: Address,
  request: string,
): Promise<{ response: Promise<string> }> {
  const { response } = await sendTimed(addr, request);
  return { response: response.then(untimed) };
}

/** As readResponse() in clients.ts, the response {@linkcode untimed}. */
export function readResponse(conn: Deno.Conn): Promise<string> {
  return readResponseTimed(conn).then(untimed);
}

/** As readToEnd() in clients.ts, the response {@linkcode untimed}. */
export function readToEnd(conn: Deno.Conn): Promise<string> {
  return readToEndTimed(conn).then(untimed);
}

/** Throws unless a connection to `addr` is refused: nothing listens. */
export async function assertRefused(addr: Address): Promise<void> {
  try {
    const conn = await Deno.connect(addr);
    conn.close();
  } catch (error) {
    assert(error instanceof Deno.errors.ConnectionRefused, String(error));
    return;
  }
  throw new Error(`Still accepting connections on port ${addr.port}`);
}

// ---------------------------------------------------------------------------
// handle() in memory

/**
 * An in-memory connection that behaves like a slow socket: each read hands
 * out at most `readSize` bytes of the request and each write takes at most
 * `writeSize` bytes. Once the request is used up, a read either reports the
 * end of input or, like a client that keeps its socket open, waits until
 * the connection is closed, or until the server closes its writing side:
 * then the client, having its answer, closes as a browser or curl does.
 * Writes fail with `failWrites` when it is given.
 */
export class MemoryConn implements Connection {
  readonly #input: Uint8Array;
  readonly #readSize: number;
  readonly #writeSize: number;
  readonly #endOfInput: "eof" | "wait";
  readonly #failWrites: Error | undefined;
  #offset = 0;
  #output: number[] = [];
  #wakeReader: (() => void) | undefined;
  /** Whether close() was called. */
  closed = false;
  /** Called once, when the connection is closed. */
  onClose: (() => void) | undefined;

  /** A connection whose client sends `request`, then nothing. */
  constructor(
    request: string | Uint8Array,
    { readSize = 1, writeSize = 7, endOfInput = "wait", failWrites }: {
      readSize?: number;
      writeSize?: number;
      endOfInput?: "eof" | "wait";
      failWrites?: Error;
    } = {},
  ) {
    this.#input = typeof request === "string"
      ? encoder.encode(request)
      : request;
    this.#readSize = readSize;
    this.#writeSize = writeSize;
    this.#endOfInput = endOfInput;
    this.#failWrites = failWrites;
  }

  /** Reads the next few bytes of the request. */
  read(buffer: Uint8Array): Promise<number | null> {
    if (this.closed) return Promise.reject(new Deno.errors.BadResource());
    const remaining = this.#input.byteLength - this.#offset;
    if (remaining > 0) {
      const n = Math.min(this.#readSize, buffer.byteLength, remaining);
      buffer.set(this.#input.subarray(this.#offset, this.#offset + n));
      this.#offset += n;
      return Promise.resolve(n);
    }
    if (this.#endOfInput === "eof" || this.writeClosed) {
      return Promise.resolve(null);
    }
    return new Promise((resolve) => this.#wakeReader = () => resolve(null));
  }

  /** Whether closeWrite() was called: the answer is whole. */
  writeClosed = false;

  /** Closes the writing side, as a socket's closeWrite() does. */
  closeWrite(): Promise<void> {
    if (this.closed) return Promise.reject(new Deno.errors.BadResource());
    this.writeClosed = true;
    this.#wakeReader?.();
    return Promise.resolve();
  }

  /** Takes the first few bytes of `bytes`. */
  write(bytes: Uint8Array): Promise<number> {
    if (this.closed || this.writeClosed) {
      return Promise.reject(new Deno.errors.BadResource());
    }
    if (this.#failWrites) return Promise.reject(this.#failWrites);
    const n = Math.min(this.#writeSize, bytes.byteLength);
    this.#output.push(...bytes.subarray(0, n));
    return Promise.resolve(n);
  }

  /** Closes it, as a socket's close() does: twice is an error. */
  close(): void {
    if (this.closed) throw new Deno.errors.BadResource();
    this.closed = true;
    this.#wakeReader?.();
    this.onClose?.();
  }

  /** Everything written so far, as text, but Server-Timing. */
  get response(): string {
    return untimed(this.timedResponse);
  }

  /** Everything written so far, as text. */
  get timedResponse(): string {
    return decoder.decode(new Uint8Array(this.#output));
  }
}

/**
 * Handles `conn` with short limits (a 50 ms sleep, a 2 s head timeout) and
 * the `overrides`, and returns the log lines. Only handle()'s own options
 * may be given.
 */
export async function handleInMemory(
  conn: MemoryConn,
  overrides: Partial<HandleOptions> = {},
): Promise<string[]> {
  const logs: string[] = [];
  await handle(conn, {
    pages,
    sleepMs: 50,
    headTimeoutMs: 2000,
    log: (line) => logs.push(line),
    ...overrides,
  });
  return logs;
}

// ---------------------------------------------------------------------------
// serve() on a free port

/** A server started by {@linkcode startServer}. */
export interface TestServer extends AsyncDisposable {
  /** Where it listens, on 127.0.0.1. */
  readonly addr: Address;
  /** Its address as a URL, without the final slash. */
  readonly url: string;
  /** Every line it logged so far. */
  readonly logs: string[];
  /** Aborts its stop signal and waits for serve() to resolve. */
  stop(): Promise<void>;
}

/**
 * serve() in `mode` on a free port of 127.0.0.1, with short limits (a
 * 500 ms sleep, a 2 s head timeout, a 5 s grace period) and the
 * `overrides`; stopped and awaited when disposed. Only serve()'s own
 * options may be given.
 */
export function startServer(
  mode: Mode,
  overrides: Partial<ServeOptions> = {},
): TestServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const controller = new AbortController();
  const logs: string[] = [];
  const served = serve(listener, {
    pages,
    mode,
    sleepMs: 500,
    headTimeoutMs: 2000,
    graceMs: 5000,
    log: (line) => logs.push(line),
    stop: controller.signal,
    ...overrides,
  });
  const addr = { hostname: "127.0.0.1", port: listener.addr.port };
  const stop = async () => {
    controller.abort();
    await served;
  };
  return {
    addr,
    url: `http://${addr.hostname}:${addr.port}`,
    logs,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

// ---------------------------------------------------------------------------
// main.ts as a process

/** The project folder, where main.ts, deno.json and the pages are. */
export const folder: string = Deno.realPathSync(
  new URL("../", import.meta.url),
);
const mainUrl = new URL("../main.ts", import.meta.url).href;

/**
 * `deno` arguments that run main.ts with `args` and no deno.json; an empty
 * `allowRead` gives no read permission at all.
 */
export function runMainArgs(
  args: string[],
  allowNet = "127.0.0.1",
  { allowRead = folder, unstableNet = false, main = mainUrl } = {},
): string[] {
  return [
    "run",
    "--no-config",
    ...(unstableNet ? ["--unstable-net"] : []),
    `--allow-net=${allowNet}`,
    ...(allowRead ? [`--allow-read=${allowRead}`] : []),
    // A module served over HTTP is fetched anew, not taken from the cache.
    ...(main.startsWith("http") ? [`--reload=${new URL("/", main)}`] : []),
    main,
    ...args,
  ];
}

/** How {@linkcode mainCommand} runs main.ts. */
export interface MainOptions {
  /** What `--allow-net` allows; 127.0.0.1 unless given. */
  allowNet?: string;
  /** The environment, on top of this process's. */
  env?: Record<string, string>;
  /** What `--allow-read` allows; the project folder unless given. */
  allowRead?: string;
  /** Whether to add `--unstable-net`, which parallel mode needs. */
  unstableNet?: boolean;
  /** The URL of the main.ts to run; the project's unless given. */
  main?: string;
}

/**
 * `deno run main.ts` as a person runs it, but without deno.json and from
 * another working directory, as after copying main.ts and the pages away.
 * Its stdout and stderr are piped.
 */
export function mainCommand(
  args: string[],
  { allowNet = "127.0.0.1", env = {}, ...flags }: MainOptions = {},
): Deno.Command {
  // "deno" from PATH, not Deno.execPath(): the test task may run only that.
  return new Deno.Command("deno", {
    args: runMainArgs(args, allowNet, flags),
    cwd: new URL("../../", import.meta.url),
    env,
    stdout: "piped",
    stderr: "piped",
  });
}

/** main.ts running, as {@linkcode spawnMain} started it. */
export interface MainProcess {
  /** The URL of its "Listening on" line, if it printed one. */
  readonly url: string | undefined;
  /** The port in that line (NaN without one). */
  readonly port: number;
  /** The mode in that line, such as "serial". */
  readonly mode: string | undefined;
  /** Its first line, with the line end. */
  readonly firstLine: string;
  /** Sends it `signal`. */
  kill(signal: Deno.Signal): void;
  /** Once it exits: its exit code, everything it printed, and its stderr. */
  exited(): Promise<{ code: number; output: string; stderr: string }>;
}

/**
 * Spawns main.ts as {@linkcode mainCommand} does and waits for its first
 * line.
 */
export async function spawnMain(
  args: string[],
  options?: MainOptions,
): Promise<MainProcess> {
  const child = mainCommand(args, options).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let output = "";
  while (!output.includes("\n")) {
    const { value, done } = await stdout.next();
    if (done) break;
    output += value;
  }
  const match =
    /^Listening on (http:\/\/([^/]+):(\d+)\/) \((\w+)[^)]*\)[^\n]*\n/
      .exec(output);
  return {
    url: match?.[1],
    port: Number(match?.[3]),
    mode: match?.[4],
    firstLine: output,
    kill: (signal: Deno.Signal) => child.kill(signal),
    async exited() {
      for await (const chunk of stdout) output += chunk;
      const [status, stderr] = await Promise.all([
        child.status,
        new Response(child.stderr).text(),
      ]);
      return { code: status.code, output, stderr };
    },
  };
}
