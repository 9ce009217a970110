/**
 * What the tests of main.ts share: the responses they expect, an in-memory
 * connection for `handle()` and `serve()` on a free port of this process.
 * Servers run as processes of their own come from server_process.ts, the
 * raw clients from clients.ts, the deadline and the waits from waiting.ts.
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
import { type Address, send } from "../tools/clients.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// What the server must send

/** The pages main.ts serves, as {@linkcode loadPages} reads them. */
export const pages: Pages = await loadPages();
/** hello.html, as text. */
export const hello: string = decoder.decode(pages.hello);
/** 404.html, as text. */
export const notFound: string = decoder.decode(pages.notFound);
/** A file of the lab's or the probe's folder, as text: main.ts serves it. */
export const labFile = (path: string): string =>
  Deno.readTextFileSync(new URL(`../${path}`, import.meta.url));

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
/** The Content-Type of the lab's scripts. */
export const JS = "text/javascript; charset=utf-8";
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
 * A response without its Server-Timing field, whose times differ each
 * time: the tests compare the rest to the letter, and those headed
 * "Server-Timing" check the field itself ({@linkcode serverTimingOf}).
 */
export function untimed(response: string): string {
  return response.replace(/^Server-Timing: [^\r\n]*\r\n/m, "");
}

/**
 * The metrics of a response's Server-Timing field, by name, each with its
 * parameters: `mode;desc=serial, handle;dur=2.0` gives
 * `{ mode: { desc: "serial" }, handle: { dur: "2.0" } }`. Undefined without
 * the field.
 */
export function serverTimingOf(
  response: string,
): Record<string, Record<string, string>> | undefined {
  const field = /^Server-Timing: ([^\r\n]*)\r\n/m.exec(response)?.[1];
  if (field === undefined) return undefined;
  return Object.fromEntries(
    field.split(/, */).map((metric) => {
      const [name, ...parameters] = metric.split(";");
      return [
        name,
        Object.fromEntries(parameters.map((p) => p.split("=", 2))),
      ];
    }),
  );
}

/** A GET request for `path`, with a Host. */
export function get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
}

// ---------------------------------------------------------------------------
// Clients

/**
 * As send() in clients.ts, which resolves once the request is written, but
 * the response comes {@linkcode untimed}: ready to compare to the letter.
 */
export async function sendUntimed(
  addr: Address,
  request: string,
): Promise<{ response: Promise<string> }> {
  const { response } = await send(addr, request);
  return { response: response.then(untimed) };
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
 * Writes fail with `failWrites` when it is given, and with `stallWrites`
 * take nothing, like a client that never reads, until the connection closes.
 */
export class MemoryConn implements Connection {
  readonly #input: Uint8Array;
  readonly #readSize: number;
  readonly #writeSize: number;
  readonly #endOfInput: "eof" | "wait";
  readonly #failWrites: Error | undefined;
  readonly #stallWrites: boolean;
  #offset = 0;
  #output: number[] = [];
  #wakeReader: (() => void) | undefined;
  readonly #stalledWrites: (() => void)[] = [];
  /** Whether close() was called. */
  closed = false;
  /** Called once, when the connection is closed. */
  onClose: (() => void) | undefined;

  /** A connection whose client sends `request`, then nothing. */
  constructor(
    request: string | Uint8Array,
    {
      readSize = 1,
      writeSize = 7,
      endOfInput = "wait",
      failWrites,
      stallWrites = false,
    }: {
      readSize?: number;
      writeSize?: number;
      endOfInput?: "eof" | "wait";
      failWrites?: Error;
      stallWrites?: boolean;
    } = {},
  ) {
    this.#input = typeof request === "string"
      ? encoder.encode(request)
      : request;
    this.#readSize = readSize;
    this.#writeSize = writeSize;
    this.#endOfInput = endOfInput;
    this.#failWrites = failWrites;
    this.#stallWrites = stallWrites;
  }

  /** How many bytes of the request the server has not read yet. */
  get unread(): number {
    return this.#input.byteLength - this.#offset;
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
    if (this.#stallWrites) {
      return new Promise((_, reject) =>
        this.#stalledWrites.push(() => reject(new Deno.errors.BadResource()))
      );
    }
    const n = Math.min(this.#writeSize, bytes.byteLength);
    this.#output.push(...bytes.subarray(0, n));
    return Promise.resolve(n);
  }

  /** Closes it, as a socket's close() does: twice is an error. */
  close(): void {
    if (this.closed) throw new Deno.errors.BadResource();
    this.closed = true;
    this.#wakeReader?.();
    this.#stalledWrites.forEach((fail) => fail());
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

/** A server started by {@linkcode serveOnFreePort}. */
export interface TestServer extends AsyncDisposable {
  /** Where it listens, on 127.0.0.1. */
  readonly addr: Address;
  /** Its address as a URL, with the final slash. */
  readonly url: string;
  /** Every line it logged so far. */
  readonly logs: string[];
  /**
   * With `recordReads`, what the server has read so far from each of its
   * connections, in the order it accepted them.
   */
  readonly received: string[];
  /** Aborts its stop signal and waits for serve() to resolve. */
  stop(): Promise<void>;
}

/**
 * serve() in `mode` on a free port of 127.0.0.1, with short limits (a
 * 500 ms sleep, a 2 s head timeout, a 5 s grace period) and the
 * `overrides`; stopped and awaited when disposed. Only serve()'s own
 * options may be given. With `recordReads`, serve() gets the listener
 * through {@linkcode recordingReads}, for a test that must know what the
 * server has read and cannot turn `trace` on to learn it.
 */
export function serveOnFreePort(
  mode: Mode,
  overrides: Partial<ServeOptions> = {},
  { recordReads = false } = {},
): TestServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const controller = new AbortController();
  const logs: string[] = [];
  const received: string[] = [];
  const served = serve(
    recordReads ? recordingReads(listener, received) : listener,
    {
      pages,
      mode,
      sleepMs: 500,
      headTimeoutMs: 2000,
      graceMs: 5000,
      log: (line) => logs.push(line),
      stop: controller.signal,
      ...overrides,
    },
  );
  const addr = { hostname: "127.0.0.1", port: listener.addr.port };
  const stop = async () => {
    controller.abort();
    await served;
  };
  return {
    addr,
    url: `http://${addr.hostname}:${addr.port}/`,
    logs,
    received,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * `listener` as it is, but each connection it accepts adds to `received`
 * the text the server reads from it: one string a connection, in the order
 * accepted. Everything else goes to the real listener and connections.
 */
function recordingReads(
  listener: Deno.Listener,
  received: string[],
): Deno.Listener {
  const recording = (conn: Deno.Conn) => {
    const index = received.push("") - 1;
    const read = async (buffer: Uint8Array) => {
      const n = await conn.read(buffer);
      if (n) received[index] += decoder.decode(buffer.subarray(0, n));
      return n;
    };
    return forwarding(conn, { read });
  };
  const accept = async () => recording(await listener.accept());
  async function* connections() {
    for await (const conn of listener) yield recording(conn);
  }
  return forwarding(listener, {
    accept,
    [Symbol.asyncIterator]: connections,
  });
}

/** `target`, but for the members in `replaced`. */
function forwarding<T extends object>(target: T, replaced: Partial<T>): T {
  return new Proxy(target, {
    get(_, key) {
      if (key in replaced) return replaced[key as keyof T];
      const value = Reflect.get(target, key, target);
      // Its own methods, with their private fields, on the real object.
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * The trace of a /sleep and then a / in concurrent mode: `#2` is accepted,
 * read and done while `#1` sleeps.
 */
export const CONCURRENT_TRACE: readonly string[] = [
  "#1 accepted",
  "#1 head: GET /sleep",
  "#2 accepted",
  "#2 head: GET /",
  "#2 done: GET / 200",
  "#1 done: GET /sleep 200",
];
