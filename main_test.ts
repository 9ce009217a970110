import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLess,
  assertMatch,
  assertNotMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  type Connection,
  DEFAULTS,
  handle,
  type HandleOptions,
  loadPages,
  type Mode,
  type Pages,
  parseCommandLine,
  serve,
  type ServeOptions,
} from "./main.ts";
import {
  type Address,
  garbageHeads,
  readResponse as readResponseTimed,
  readToEnd as readToEndTimed,
  send as sendTimed,
  sendGarbage,
  writeAll,
} from "./tools/clients.ts";
import { startServerProcess } from "./tools/server_process.ts";

const pages = await loadPages();
const decoder = new TextDecoder();
const encoder = new TextEncoder();
const hello = decoder.decode(pages.hello);
const notFound = decoder.decode(pages.notFound);

/** The response the server must send, spelled out as a client sees it. */
function expectedResponse(
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

const HTML = "text/html; charset=utf-8";
const TEXT = "text/plain; charset=utf-8";
const OK_HELLO = expectedResponse("200 OK", HTML, hello);
const NOT_FOUND = expectedResponse("404 Not Found", HTML, notFound);
const statusPage = (status: string, extraHeaders = "") =>
  expectedResponse(status, TEXT, `${status}\n`, { extraHeaders });

/**
 * A response without its Server-Timing field, whose time differs each
 * time: the tests below compare the rest to the letter, and those headed
 * "Server-Timing" check the field itself.
 */
function untimed(response: string): string {
  return response.replace(/^Server-Timing: [^\r\n]*\r\n/m, "");
}
const send = async (addr: Address, request: string) => {
  const { response } = await sendTimed(addr, request);
  return { response: response.then(untimed) };
};
const readResponse = (conn: Deno.Conn) => readResponseTimed(conn).then(untimed);
const readToEnd = (conn: Deno.Conn) => readToEndTimed(conn).then(untimed);

function get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
}

/**
 * An in-memory connection that behaves like a slow socket: each read hands
 * out at most `readSize` bytes of the request and each write takes at most
 * `writeSize` bytes. Once the request is used up, a read either reports the
 * end of input or, like a client that keeps its socket open, waits until
 * the connection is closed.
 */
class MemoryConn implements Connection {
  readonly #input: Uint8Array;
  readonly #readSize: number;
  readonly #writeSize: number;
  readonly #endOfInput: "eof" | "wait";
  readonly #failWrites: Error | undefined;
  #offset = 0;
  #output: number[] = [];
  #wakeReader: (() => void) | undefined;
  closed = false;
  /** Called once, when the connection is closed. */
  onClose: (() => void) | undefined;

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

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.closed) return Promise.reject(new Deno.errors.BadResource());
    const remaining = this.#input.byteLength - this.#offset;
    if (remaining > 0) {
      const n = Math.min(this.#readSize, buffer.byteLength, remaining);
      buffer.set(this.#input.subarray(this.#offset, this.#offset + n));
      this.#offset += n;
      return Promise.resolve(n);
    }
    if (this.#endOfInput === "eof") return Promise.resolve(null);
    return new Promise((resolve) => this.#wakeReader = () => resolve(null));
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new Deno.errors.BadResource());
    if (this.#failWrites) return Promise.reject(this.#failWrites);
    const n = Math.min(this.#writeSize, bytes.byteLength);
    this.#output.push(...bytes.subarray(0, n));
    return Promise.resolve(n);
  }

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

/** Handles `conn` with short limits and returns the log lines. */
async function handleInMemory(
  conn: MemoryConn,
  overrides: Partial<HandleOptions> = {},
): Promise<string[]> {
  const logs: string[] = [];
  await handle(conn, {
    ...DEFAULTS,
    pages,
    sleepMs: 50,
    headTimeoutMs: 2000,
    log: (line) => logs.push(line),
    ...overrides,
  });
  return logs;
}

Deno.test("handle() answers / with hello.html, read a byte at a time and written in pieces", async () => {
  const conn = new MemoryConn(get("/"), { readSize: 1, writeSize: 7 });
  const logs = await handleInMemory(conn);
  assertEquals(conn.response, OK_HELLO);
  assert(conn.closed);
  assertEquals(logs.length, 1);
  assertMatch(logs[0], /^GET \/ 200 \(\d+ ms\)$/);
});

Deno.test("handle() answers /sleep with hello.html, no sooner than the sleep time", async () => {
  const sleepMs = 200;
  const conn = new MemoryConn(get("/sleep"), { readSize: 5 });
  const started = performance.now();
  await handleInMemory(conn, { sleepMs });
  // A timer never fires early, so only a lower bound is asserted.
  assertGreaterOrEqual(performance.now() - started, sleepMs - 1);
  assertEquals(conn.response, OK_HELLO);
});

Deno.test("handle() answers 404 with 404.html for an unknown path", async () => {
  const conn = new MemoryConn(get("/nowhere"));
  const logs = await handleInMemory(conn);
  assertEquals(conn.response, NOT_FOUND);
  assertMatch(logs[0], /^GET \/nowhere 404 /);
});

Deno.test("handle() answers HEAD with the status and headers of GET, without a body", async () => {
  for (
    const [path, status, body] of [
      ["/", "200 OK", hello],
      ["/lab", "200 OK", decoder.decode(pages.lab)],
      ["/x", "404 Not Found", notFound],
    ]
  ) {
    const conn = new MemoryConn(
      `HEAD ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      { readSize: 3 },
    );
    await handleInMemory(conn);
    assertEquals(
      conn.response,
      expectedResponse(status, HTML, body, { withBody: false }),
    );
  }
});

Deno.test("handle() answers 405 with an Allow header to the other methods it knows, ignoring any body", async () => {
  const methods = ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"];
  for (const method of [...methods, "CONNECT"]) {
    const request =
      `${method} / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello`;
    const conn = new MemoryConn(request, { readSize: 4 });
    const logs = await handleInMemory(conn);
    assertEquals(
      conn.response,
      statusPage("405 Method Not Allowed", "Allow: GET, HEAD\r\n"),
    );
    assertMatch(logs[0], new RegExp(`^${method} / 405 `));
  }
});

Deno.test("handle() answers 501 to a method it does not know (RFC 9110 §9.1)", async () => {
  for (const method of ["BREW", "PROPFIND", "get"]) {
    const conn = new MemoryConn(
      `${method} / HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    );
    const logs = await handleInMemory(conn);
    assertEquals(conn.response, statusPage("501 Not Implemented"), method);
    assertMatch(logs[0], new RegExp(`^${method} / 501 `));
  }
});

Deno.test("handle() answers 505 to a major version other than 1, and reads HTTP/1.2 as 1.1 (RFC 9110 §2.5)", async () => {
  for (const version of ["2.0", "0.9", "3.1"]) {
    const conn = new MemoryConn(
      `GET / HTTP/${version}\r\nHost: localhost\r\n\r\n`,
    );
    const logs = await handleInMemory(conn);
    assertEquals(
      conn.response,
      statusPage("505 HTTP Version Not Supported"),
      version,
    );
    assertMatch(logs[0], /^GET \/ 505 /);
  }
  for (const version of ["1.2", "1.9"]) {
    const withHost = new MemoryConn(
      `GET / HTTP/${version}\r\nHost: localhost\r\n\r\n`,
    );
    await handleInMemory(withHost);
    assertEquals(withHost.response, OK_HELLO, version);
    // As 1.1: a Host is needed.
    const withoutHost = new MemoryConn(`GET / HTTP/${version}\r\n\r\n`);
    await handleInMemory(withoutHost);
    assertEquals(withoutHost.response, statusPage("400 Bad Request"), version);
  }
});

Deno.test("handle() answers 400 to an invalid or conflicting Content-Length and accepts one number (RFC 9112 §6.3)", async () => {
  const withFields = (...fields: string[]) =>
    `GET / HTTP/1.1\r\nHost: localhost\r\n${
      fields.map((f) => `${f}\r\n`).join("")
    }\r\n`;
  for (
    const fields of [
      ["Content-Length: abc"],
      ["Content-Length: -1"],
      ["Content-Length: 1, 2"],
      ["Content-Length: 1.5"],
      ["Content-Length:"],
      ["Content-Length: 1", "Content-Length: 2"],
      ["Content-Length: 0", "Transfer-Encoding: chunked"],
    ]
  ) {
    const conn = new MemoryConn(withFields(...fields));
    await handleInMemory(conn);
    assertEquals(conn.response, statusPage("400 Bad Request"), String(fields));
  }
  for (
    const fields of [
      ["Content-Length: 0"],
      ["content-length: 12"],
      ["Content-Length: 5, 5"],
      ["Content-Length: 5", "Content-Length: 005"],
    ]
  ) {
    const conn = new MemoryConn(withFields(...fields));
    await handleInMemory(conn);
    assertEquals(conn.response, OK_HELLO, String(fields));
  }
});

Deno.test("handle() answers 501 to a transfer coding other than chunked, and 400 to chunked twice (RFC 9112 §6.1)", async () => {
  const withCoding = (...values: string[]) =>
    `GET / HTTP/1.1\r\nHost: localhost\r\n${
      values.map((v) => `Transfer-Encoding: ${v}\r\n`).join("")
    }\r\n`;
  for (
    const [values, status] of [
      [["gzip"], "501 Not Implemented"],
      [["gzip, chunked"], "501 Not Implemented"],
      [["chunked", "identity"], "501 Not Implemented"],
      [["chunked, chunked"], "400 Bad Request"],
      [["chunked", "chunked"], "400 Bad Request"],
      [[""], "400 Bad Request"],
    ] as const
  ) {
    const conn = new MemoryConn(withCoding(...values));
    await handleInMemory(conn);
    assertEquals(conn.response, statusPage(status), String(values));
  }
  for (const value of ["chunked", "Chunked", " chunked , "]) {
    const conn = new MemoryConn(withCoding(value));
    await handleInMemory(conn);
    assertEquals(conn.response, OK_HELLO, value);
  }
});

Deno.test("handle() answers 400 to a head that is not a valid HTTP/1.x request, and logs its request line when it has one", async () => {
  // Each with the start of its log line: "-" when no request line was read.
  const malformed = [
    ["\r\n\r\n", "-"],
    ["GARBAGE\r\n\r\n", "-"],
    ["GET /\r\n\r\n", "-"],
    ["GET / HTTP/1.10\r\nHost: localhost\r\n\r\n", "-"],
    ["GET / HTTP/11\r\nHost: localhost\r\n\r\n", "-"],
    ["GET / http/1.1\r\nHost: localhost\r\n\r\n", "-"],
    ["GET  / HTTP/1.1\r\nHost: localhost\r\n\r\n", "-"],
    ["GET / HTTP/1.1 \r\nHost: localhost\r\n\r\n", "-"],
    ["G(T / HTTP/1.1\r\nHost: localhost\r\n\r\n", "-"],
    ["GET /\0 HTTP/1.1\r\nHost: localhost\r\n\r\n", "-"],
    ["GET sleep HTTP/1.1\r\nHost: localhost\r\n\r\n", "GET sleep"],
    ["GET / HTTP/1.1\r\n\r\n", "GET /"], // HTTP/1.1 needs a Host
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "GET /"],
    ["GET / HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n", "GET /"],
    ["GET / HTTP/1.1\r\nHost: localhost\r\nName : value\r\n\r\n", "GET /"],
    ["GET / HTTP/1.1\r\nHost: localhost\r\n folded: line\r\n\r\n", "GET /"],
    ["GET / HTTP/1.1\r\nHost: local\0host\r\n\r\n", "GET /"],
    ["GET / HTTP/1.1\r\nHost: local\rhost\r\n\r\n", "GET /"],
  ];
  for (const [request, requestLine] of malformed) {
    const conn = new MemoryConn(request, { readSize: 2 });
    const logs = await handleInMemory(conn);
    assertEquals(
      conn.response,
      statusPage("400 Bad Request"),
      JSON.stringify(request),
    );
    assert(logs[0].startsWith(`${requestLine} 400 (`), logs[0]);
  }
});

Deno.test("handle() accepts HTTP/1.0 without Host, bare LF line ends and other targets", async () => {
  const requests = [
    "GET / HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.1\nHost: localhost\n\n",
    "GET /?greeting=hi HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET http://localhost:7878/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET / HTTP/1.1\r\nhost: localhost\r\nX-Empty:\r\nAccept: */*\r\n\r\n",
  ];
  for (const request of requests) {
    const conn = new MemoryConn(request, { readSize: 1 });
    await handleInMemory(conn);
    assertEquals(conn.response, OK_HELLO, JSON.stringify(request));
  }
});

Deno.test("handle() ignores what follows the head", async () => {
  const conn = new MemoryConn(get("/") + "GET /nowhere HTTP/1.1\r\n\r\n", {
    readSize: 100,
  });
  await handleInMemory(conn);
  assertEquals(conn.response, OK_HELLO);
});

Deno.test("handle() answers 431 to a head over maxHeadBytes and accepts one at the limit", async () => {
  const maxHeadBytes = 8192;
  const headOf = (bytes: number) => {
    const start = "GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: ";
    return start + "a".repeat(bytes - start.length - 4) + "\r\n\r\n";
  };
  assertEquals(headOf(maxHeadBytes).length, maxHeadBytes);

  const atLimit = new MemoryConn(headOf(maxHeadBytes), { readSize: 1000 });
  await handleInMemory(atLimit, { maxHeadBytes });
  assertEquals(atLimit.response, OK_HELLO);

  const overLimit = new MemoryConn(headOf(maxHeadBytes + 1), {
    readSize: 1000,
  });
  const logs = await handleInMemory(overLimit, { maxHeadBytes });
  assertEquals(
    overLimit.response,
    statusPage("431 Request Header Fields Too Large"),
  );
  assertMatch(logs[0], /^- 431 /);
});

Deno.test("handle() answers 408 and closes when the head is not complete in time", async () => {
  const conn = new MemoryConn("GET / HTTP/1.1\r\nHost: loc", {
    endOfInput: "wait",
  });
  const logs = await handleInMemory(conn, { headTimeoutMs: 100 });
  assertEquals(conn.response, statusPage("408 Request Timeout"));
  assert(conn.closed);
  assertMatch(logs[0], /^- 408 /);
});

Deno.test("handle() closes quietly when the client leaves before a whole request", async () => {
  const conn = new MemoryConn("GET / HT", { endOfInput: "eof" });
  const logs = await handleInMemory(conn);
  assertEquals(conn.response, "");
  assert(conn.closed);
  assertEquals(logs.length, 1);
  assertMatch(logs[0], /^- closed by the client before a whole request /);
});

Deno.test("handle() never rejects when the client is gone, and logs one line", async () => {
  const reset = new Deno.errors.ConnectionReset(
    "Connection reset by peer (os error 104)",
  );
  const conn = new MemoryConn(get("/"), { failWrites: reset });
  const logs = await handleInMemory(conn);
  assert(conn.closed);
  assertEquals(logs, [logs[0]]);
  assertMatch(
    logs[0],
    /^GET \/ failed: Connection reset by peer \(os error 104\) \(\d+ ms\)$/,
  );
});

Deno.test("handle() never rejects when a read fails, and logs one line", async () => {
  const conn = new MemoryConn("GET / HTTP/1.1\r\n", { endOfInput: "eof" });
  const reset = new Deno.errors.ConnectionReset(
    "Connection reset by peer (os error 104)",
  );
  const failingConn: Connection = {
    read: (buffer) => conn.read(buffer).then((n) => n ?? Promise.reject(reset)),
    write: (bytes) => conn.write(bytes),
    close: () => conn.close(),
  };
  const logs: string[] = [];
  await handle(failingConn, {
    ...DEFAULTS,
    pages,
    log: (line) => logs.push(line),
  });
  assert(conn.closed);
  assertEquals(logs.length, 1);
  assertMatch(
    logs[0],
    /^- failed: Connection reset by peer \(os error 104\) \(\d+ ms\)$/,
  );
});

Deno.test("handle() drops the request when its signal is aborted, whether it waits for the head or sleeps", async () => {
  for (const request of ["GET /", get("/sleep")]) {
    const drop = new AbortController();
    const conn = new MemoryConn(request, { endOfInput: "wait" });
    const handled = handleInMemory(conn, {
      signal: drop.signal,
      headTimeoutMs: 60_000,
      sleepMs: 60_000,
    });
    setTimeout(() => drop.abort(), 20);
    const logs = await handled;
    assert(conn.closed);
    assertEquals(conn.response, "");
    assertMatch(logs[0], /^(-|GET \/sleep) dropped before it was done /);
  }
});

Deno.test("handle() ends a connection whose write makes no progress for the send timeout, and logs it", async () => {
  // A client that sent its request and never reads: each write waits.
  const conn = new MemoryConn(get("/"), { readSize: 100 });
  const stuck: Connection = {
    read: (buffer) => conn.read(buffer),
    write: () =>
      new Promise((_, reject) =>
        conn.onClose = () => reject(new Deno.errors.BadResource())
      ),
    close: () => conn.close(),
  };
  const logs: string[] = [];
  await handle(stuck, {
    pages,
    sendTimeoutMs: 100,
    log: (line) => logs.push(line),
  });
  assert(conn.closed);
  assertMatch(
    logs[0],
    /^GET \/ closed: a write made no progress for the send timeout \(\d+ ms\)$/,
  );
});

Deno.test("handle() has read from the connection by the time it returns its promise: a promise is eager", () => {
  // Rust's futures are lazy: handle_connection(stream) without .await does
  // nothing. A JavaScript async function runs as soon as it is called, up to
  // its first await, which is why the detached handle(conn) in serve() needs
  // no spawn. Nothing is awaited here before the check.
  const conn = new MemoryConn(get("/"));
  let reads = 0;
  const counted: Connection = {
    read: (buffer) => (reads++, conn.read(buffer)),
    write: (bytes) => conn.write(bytes),
    close: () => conn.close(),
  };
  const handling = handle(counted, { pages, log: () => {} });
  assertEquals(reads, 1);
  return handling;
});

Deno.test("handle() and serve() need only the pages (and the mode); the rest defaults", async () => {
  const conn = new MemoryConn(get("/nowhere"));
  await handle(conn, { pages, log: () => {} });
  assertEquals(conn.response, NOT_FOUND);

  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const stop = new AbortController();
  const logs: string[] = [];
  const served = serve(listener, {
    mode: "concurrent",
    pages,
    signal: stop.signal,
    log: (line) => logs.push(line),
  });
  const addr = { hostname: "127.0.0.1", port: listener.addr.port };
  const response = await send(addr, get("/"));
  assertEquals(await response.response, OK_HELLO);
  stop.abort();
  await served;
  assertMatch(logs[1], /requests in flight have 10000 ms to finish$/);
});

Deno.test("handle() throws at once for options that make no sense, and leaves the connection untouched", () => {
  const bad: [Record<string, unknown>, ErrorConstructor, string][] = [
    [{ pages: undefined }, TypeError, "pages must be three Uint8Arrays"],
    [
      { maxHeadBytes: NaN },
      TypeError,
      "maxHeadBytes must be a number, not NaN",
    ],
    [{ headTimeoutMs: 0 }, RangeError, "headTimeoutMs must be from 1 to"],
    [
      { sendTimeoutMs: Infinity },
      RangeError,
      "sendTimeoutMs must be from 1 to",
    ],
  ];
  for (const [options, ErrorClass, message] of bad) {
    const conn = new MemoryConn(get("/"));
    assertThrows(
      () => handle(conn, { pages, ...options } as HandleOptions),
      ErrorClass,
      message,
    );
    assert(!conn.closed);
    assertEquals(conn.response, "");
  }
});

Deno.test("serve() rejects options that make no sense, before it accepts anything", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // As a script that is not type-checked would pass them.
  const bad: [Record<string, unknown>, ErrorConstructor, string][] = [
    [{ mode: "parallel" }, TypeError, 'mode must be "serial" or "concurrent"'],
    [{ pages: undefined }, TypeError, "pages must be three Uint8Arrays"],
    [{ headTimeoutMs: -1 }, RangeError, "headTimeoutMs must be from 1 to"],
    [{ maxHeadBytes: 0 }, RangeError, "maxHeadBytes must be from 64 to"],
    [{ sleepMs: 1.5 }, RangeError, "sleepMs must be from 0 to"],
    [{ maxInFlight: 0 }, RangeError, "maxInFlight must be from 1 to"],
    [{ graceMs: "10" }, TypeError, "graceMs must be a number, not 10"],
    [{ sleepMs: NaN }, TypeError, "sleepMs must be a number, not NaN"],
  ];
  for (const [options, ErrorClass, message] of bad) {
    await assertRejects(
      () =>
        serve(listener, { mode: "serial", pages, ...options } as ServeOptions),
      ErrorClass,
      message,
    );
  }
  // Nothing was lost: the listener is still the caller's, and still open.
  const accepting = listener.accept();
  using client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  (await accepting).close();
  assert(client);
});

// ---------------------------------------------------------------------------
// On real sockets

/** A server on a free port, stopped and awaited when disposed. */
function startServer(
  mode: Mode,
  overrides: Partial<ServeOptions> = {},
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const controller = new AbortController();
  const logs: string[] = [];
  const served = serve(listener, {
    ...DEFAULTS,
    pages,
    mode,
    sleepMs: 500,
    headTimeoutMs: 2000,
    graceMs: 5000,
    log: (line) => logs.push(line),
    signal: controller.signal,
    ...overrides,
  });
  const addr = { hostname: "127.0.0.1", port: listener.addr.port };
  return {
    addr,
    url: `http://${addr.hostname}:${addr.port}`,
    logs,
    served,
    async stop() {
      controller.abort();
      await served;
    },
    async [Symbol.asyncDispose]() {
      await this.stop();
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("serve() answers fetch() with the pages, and Content-Length is the body's length in bytes", async () => {
  await using server = startServer("concurrent");
  for (
    const [path, status, page] of [
      ["/", 200, hello],
      ["/sleep", 200, hello],
      ["/lab", 200, decoder.decode(pages.lab)],
      ["/nowhere", 404, notFound],
    ] as const
  ) {
    const response = await fetch(server.url + path);
    const body = new Uint8Array(await response.arrayBuffer());
    assertEquals(response.status, status);
    assertEquals(decoder.decode(body), page);
    assertEquals(response.headers.get("content-type"), HTML);
    assertEquals(
      Number(response.headers.get("content-length")),
      body.byteLength,
    );
  }
  const head = await fetch(server.url + "/", { method: "HEAD" });
  await head.body?.cancel();
  assertEquals(head.status, 200);
  assertEquals(
    Number(head.headers.get("content-length")),
    pages.hello.byteLength,
  );
});

Deno.test("serve() answers raw TCP, the request sent in pieces", async () => {
  await using server = startServer("serial");
  const conn = await Deno.connect(server.addr);
  const request = get("/");
  for (let i = 0; i < request.length; i += 4) {
    await writeAll(conn, request.slice(i, i + 4));
    await delay(1);
  }
  const response = await readToEnd(conn);
  conn.close();
  assertEquals(response, OK_HELLO);
});

const orderCases = [
  { mode: "serial", slow: "/sleep", first: "/sleep" },
  { mode: "concurrent", slow: "/sleep", first: "/" },
  // A limit of one in flight is serial mode by another name.
  { mode: "concurrent", slow: "/sleep", maxInFlight: 1, first: "/sleep" },
  { mode: "concurrent", slow: "/sleep", maxInFlight: 2, first: "/" },
] as const;

for (const { mode, slow, first, ...limit } of orderCases) {
  const name = `serve() in ${mode} mode${
    "maxInFlight" in limit ? ` with maxInFlight ${limit.maxInFlight}` : ""
  } answers a later / ${
    first === slow ? "only after" : "before"
  } an earlier ${slow}`;
  Deno.test(name, async () => {
    // The slow request is slow next to what / takes, so the order cannot be
    // an accident of a busy machine.
    await using server = startServer(mode, { sleepMs: 500, ...limit });
    const finished: string[] = [];
    const slowRequest = await send(server.addr, get(slow));
    const fast = await send(server.addr, get("/"));
    const responses = await Promise.all([
      slowRequest.response.then((response) => (finished.push(slow), response)),
      fast.response.then((response) => (finished.push("/"), response)),
    ]);
    assertEquals(responses, [OK_HELLO, OK_HELLO]);
    assertEquals(finished[0], first);
  });
}

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test(`main.ts in ${mode} mode answers a later / only after an earlier /block`, async () => {
    // Work that never awaits holds the only thread, so concurrency is gone.
    // The server runs in a process of its own: spinning in this one would
    // stall the test's clients too, and prove nothing.
    await using server = await startServerProcess([mode, "--sleep-ms=500"]);
    const addr = { hostname: "127.0.0.1", port: server.port };
    const finished: string[] = [];
    const blocking = await send(addr, get("/block"));
    // /block spins only once its head is read: give the server ample time
    // for that, so that / arrives while it spins.
    await delay(150);
    const fast = await send(addr, get("/"));
    const responses = await Promise.all([
      blocking.response.then((response) => (finished.push("/block"), response)),
      fast.response.then((response) => (finished.push("/"), response)),
    ]);
    assertEquals(responses, [OK_HELLO, OK_HELLO]);
    assertEquals(finished, ["/block", "/"]);
  });
}

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test(`serve() in ${mode} mode keeps serving after clients leave mid-request, during /sleep and before reading`, async () => {
    const server = startServer(mode, { sleepMs: 200 });
    try {
      const midRequest = await Deno.connect(server.addr);
      await writeAll(midRequest, "GET /sle");
      midRequest.close();

      const duringSleep = await Deno.connect(server.addr);
      await writeAll(duringSleep, get("/sleep"));
      await delay(50);
      duringSleep.close();

      // Closing with the response unread makes the client's side reset.
      const neverReads = await Deno.connect(server.addr);
      await writeAll(neverReads, get("/"));
      neverReads.close();

      assertEquals(
        await (await send(server.addr, get("/"))).response,
        OK_HELLO,
      );
    } finally {
      await server.stop();
    }
    // Four connections: at most one line each, none with a stack trace.
    const requestLines = server.logs.filter((line) =>
      !line.startsWith("Stopping")
    );
    assertEquals(requestLines.length, 4, requestLines.join("\n"));
    for (const line of requestLines) assertNotMatch(line, /\n/);
    assertStringIncludes(requestLines.join("\n"), "GET / 200");
  });
}

Deno.test("serve() answers 405 to a POST whose 64 KiB body it never reads", async () => {
  await using server = startServer("concurrent");
  using conn = await Deno.connect(server.addr);
  const body = "x".repeat(64 * 1024);
  await writeAll(
    conn,
    `POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  // The server closes with the body unread, so the kernel may reset the
  // connection; the answer must arrive before that.
  assertEquals(
    await readResponse(conn),
    statusPage("405 Method Not Allowed", "Allow: GET, HEAD\r\n"),
  );
});

Deno.test("serve() with quiet logs no line per connection, but still its own events", async () => {
  const server = startServer("concurrent", { quiet: true });
  assertEquals(await (await send(server.addr, get("/"))).response, OK_HELLO);
  await server.stop();
  assertEquals(server.logs.length, 1);
  assertMatch(server.logs[0], /^Stopping: no new connections/);
});

Deno.test("serve() stops on abort: lets /sleep finish, then frees the port", async () => {
  const server = startServer("concurrent", { sleepMs: 300 });
  const slow = await send(server.addr, get("/sleep"));
  await delay(50);
  await server.stop();
  assertEquals(await slow.response, OK_HELLO);
  await assertRefused(server.addr);
  // The port is free to listen on again.
  Deno.listen(server.addr).close();
});

Deno.test("serve() on abort closes a connection still waiting for its head, without waiting for the timeout", async () => {
  const server = startServer("serial", { headTimeoutMs: 60_000 });
  const idle = await send(server.addr, "GET / HT");
  await delay(50);
  await server.stop();
  assertEquals(await idle.response, "");
  assertMatch(
    server.logs.join("\n"),
    /^- closed at shutdown before a whole request /m,
  );
});

/** Pages whose hello.html is `bytes` long: too big for the kernel's buffers. */
function bigPages(bytes: number): Pages {
  return { ...pages, hello: new Uint8Array(bytes).fill(0x61) };
}

/** A client that sends a request and then never reads. */
async function neverReads(addr: Address, request: string) {
  const conn = await Deno.connect(addr);
  await writeAll(conn, request);
  return conn;
}

Deno.test("serve() in serial mode ends a client that never reads after the send timeout, and serves the next", async () => {
  const big = bigPages(16 * 1024 * 1024);
  const server = startServer("serial", { pages: big, sendTimeoutMs: 300 });
  try {
    using _stalled = await neverReads(server.addr, get("/"));
    await delay(100);
    // The loop is stuck in the stalled client's write until it times out.
    const next = await send(server.addr, get("/nowhere"));
    assertEquals(await next.response, NOT_FOUND);
  } finally {
    await server.stop();
  }
  assertMatch(
    server.logs[0],
    /^GET \/ closed: a write made no progress for the send timeout \(\d+ ms\)$/,
  );
  assertMatch(server.logs[1], /^GET \/nowhere 404 /);
});

Deno.test("serve() at the end of the grace period closes every connection, writing or sleeping, and resolves soon after", async () => {
  const server = startServer("concurrent", {
    pages: bigPages(16 * 1024 * 1024),
    sleepMs: 60_000,
    sendTimeoutMs: 60_000,
    graceMs: 300,
  });
  using _writing = await neverReads(server.addr, get("/"));
  const sleeping = await send(server.addr, get("/sleep"));
  await delay(200);
  const stopping = performance.now();
  await server.stop();
  // Well within the 60 s that either would take; generous for a busy machine.
  assertLess(performance.now() - stopping, 10_000);
  assertEquals(await sleeping.response, "");
  const logs = server.logs.join("\n");
  assertMatch(
    logs,
    /^Dropping 2 requests still in flight after the grace period of 300 ms$/m,
  );
  assertMatch(logs, /^GET \/ dropped before it was done /m);
  assertMatch(logs, /^GET \/sleep dropped before it was done /m);
});

Deno.test("serve() does not time out a /sleep longer than the head timeout: its head is read", async () => {
  await using server = startServer("concurrent", {
    headTimeoutMs: 100,
    sleepMs: 500,
  });
  assertEquals(
    await (await send(server.addr, get("/sleep"))).response,
    OK_HELLO,
  );
});

Deno.test("Server-Timing names the mode and the server's time since accept on every response", async () => {
  for (const mode of ["serial", "concurrent"] as const) {
    await using server = startServer(mode, { sleepMs: 300 });
    for (
      const [request, status] of [
        [get("/"), 200],
        [get("/lab"), 200],
        [get("/sleep"), 200],
        [get("/nowhere"), 404],
        ["BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501],
        ["GET / HTTP/1.1\r\n\r\n", 400],
      ] as const
    ) {
      const response = await (await sendTimed(server.addr, request)).response;
      assert(response.startsWith(`HTTP/1.1 ${status} `), response);
      const timing =
        /\r\nServer-Timing: mode;desc=(\w+), handle;dur=(\d+\.\d)\r\n\r\n/
          .exec(response);
      assert(timing, response);
      assertEquals(timing[1], mode);
      const durMs = Number(timing[2]);
      if (request.includes("/sleep")) assertGreaterOrEqual(durMs, 299);
      else assertLess(durMs, 300);
    }
  }
  // On its own, handle() has no mode to name.
  const conn = new MemoryConn(get("/"));
  await handleInMemory(conn);
  assertMatch(
    conn.timedResponse,
    /\r\nServer-Timing: handle;dur=\d+\.\d\r\n\r\n/,
  );
});

Deno.test("serve() answers thousands of garbage heads with a 4xx or 5xx or a close, and keeps serving", async () => {
  const seed = 20261126;
  const heads = garbageHeads(2000, seed);
  await using server = startServer("concurrent", { headTimeoutMs: 5000 });
  const answers: string[] = [];
  for (let i = 0; i < heads.length; i += 50) {
    answers.push(
      ...await Promise.all(
        heads.slice(i, i + 50).map((head) => sendGarbage(server.addr, head)),
      ),
    );
  }
  answers.forEach((answer, i) => {
    if (answer !== "") {
      assertMatch(
        answer,
        /^HTTP\/1\.1 (4\d\d|501|505) /,
        `seed ${seed}, head ${i}: ${
          JSON.stringify(decoder.decode(heads[i]).slice(0, 80))
        }`,
      );
    }
  });
  assertGreaterOrEqual(
    answers.filter((answer) => answer.startsWith("HTTP/1.1 400 ")).length,
    500,
  );
  assertEquals(await (await send(server.addr, get("/"))).response, OK_HELLO);
  // One line per connection, and never a stack trace.
  assertEquals(server.logs.length, heads.length + 1);
  for (const line of server.logs) assertNotMatch(line, /\n/);
});

Deno.test("serve() in concurrent mode answers / while clients stall mid-head, and then answers each 408", async () => {
  const stalled = 100;
  await using server = startServer("concurrent", { headTimeoutMs: 2000 });
  const finished: string[] = [];
  const slowClients = [];
  for (let i = 0; i < stalled; i++) {
    const client = await send(server.addr, "GET / HTTP/1.1\r\nHo");
    slowClients.push(client.response.then((response) => {
      finished.push("stalled");
      return response;
    }));
  }
  const fast = await send(server.addr, get("/"));
  assertEquals(await fast.response, OK_HELLO);
  finished.push("/");
  const responses = await Promise.all(slowClients);
  assertEquals(finished.indexOf("/"), 0);
  for (const response of responses) {
    assertEquals(response, statusPage("408 Request Timeout"));
  }
});

Deno.test("serve() in serial mode is held by an idle connection only until the head timeout", async () => {
  // A browser's speculative preconnect: a connection that sends nothing.
  await using server = startServer("serial", { headTimeoutMs: 300 });
  const finished: string[] = [];
  const idle = await send(server.addr, "");
  const idleAnswer = idle.response.then((
    response,
  ) => (finished.push("idle"), response));
  const started = performance.now();
  const fast = await send(server.addr, get("/"));
  assertEquals(await fast.response, OK_HELLO);
  finished.push("/");
  assertEquals(await idleAnswer, statusPage("408 Request Timeout"));
  assertEquals(finished, ["idle", "/"]);
  // Held for the head timeout, not for ever; the margin is generous.
  assertLess(performance.now() - started, 10_000);
});

async function assertRefused(addr: Address): Promise<void> {
  try {
    const conn = await Deno.connect(addr);
    conn.close();
  } catch (error) {
    assert(error instanceof Deno.errors.ConnectionRefused, String(error));
    return;
  }
  throw new Error(`Still accepting connections on port ${addr.port}`);
}

Deno.test("parseCommandLine() takes the mode and flags, with defaults for the rest", () => {
  assertEquals(parseCommandLine([]), {
    mode: DEFAULTS.mode,
    maxInFlight: DEFAULTS.maxInFlight,
    quiet: false,
    hostname: DEFAULTS.hostname,
    port: DEFAULTS.port,
    sleepMs: DEFAULTS.sleepMs,
    headTimeoutMs: DEFAULTS.headTimeoutMs,
    sendTimeoutMs: DEFAULTS.sendTimeoutMs,
    graceMs: DEFAULTS.graceMs,
    workers: DEFAULTS.workers,
    help: false,
  });
  const expected = {
    mode: "concurrent",
    maxInFlight: 3,
    quiet: true,
    hostname: "::1",
    port: 0,
    sleepMs: 250,
    headTimeoutMs: 100,
    sendTimeoutMs: 200,
    graceMs: 0,
    workers: DEFAULTS.workers,
    help: false,
  };
  assertEquals(
    parseCommandLine([
      "concurrent",
      "--port=0",
      "--hostname=::1",
      "--sleep-ms=250",
      "--head-timeout-ms=100",
      "--send-timeout-ms=200",
      "--grace-ms=0",
      "--max-in-flight=3",
      "--quiet",
    ]),
    expected,
  );
  // The same with a space instead of "=", and the address in brackets.
  assertEquals(
    parseCommandLine([
      "--port",
      "0",
      "--hostname",
      "[::1]",
      "--sleep-ms",
      "250",
      "--head-timeout-ms",
      "100",
      "--send-timeout-ms",
      "200",
      "--grace-ms",
      "0",
      "--max-in-flight",
      "3",
      "--quiet",
      "concurrent",
    ]),
    expected,
  );
  assertEquals(parseCommandLine(["-h"]).help, true);
  // --max-in-flight holds for each worker in parallel mode.
  const parallel = parseCommandLine([
    "parallel",
    "--workers=3",
    "--max-in-flight=2",
  ]);
  assertEquals([parallel.mode, parallel.workers, parallel.maxInFlight], [
    "parallel",
    3,
    2,
  ]);
});

const folder = Deno.realPathSync(new URL("./", import.meta.url));
const mainUrl = new URL("./main.ts", import.meta.url).href;

/** `deno` arguments that run main.ts with `args` and no deno.json. */
function runMainArgs(
  args: string[],
  allowNet = "127.0.0.1",
  { allowRead = folder, unstableNet = false } = {},
): string[] {
  return [
    "run",
    "--no-config",
    ...(unstableNet ? ["--unstable-net"] : []),
    `--allow-net=${allowNet}`,
    `--allow-read=${allowRead}`,
    mainUrl,
    ...args,
  ];
}

/**
 * `deno run main.ts` as a person runs it, but without deno.json and from
 * another working directory, as after copying main.ts and the pages away.
 */
function mainCommand(
  args: string[],
  { allowNet = "127.0.0.1", env = {}, ...flags }: {
    allowNet?: string;
    env?: Record<string, string>;
    allowRead?: string;
    unstableNet?: boolean;
  } = {},
): Deno.Command {
  // "deno" from PATH, not Deno.execPath(): the test task may run only that.
  return new Deno.Command("deno", {
    args: runMainArgs(args, allowNet, flags),
    cwd: new URL("../", import.meta.url),
    env,
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("main.ts rejects a mistake on the command line with one line, a pointer to --help and exit code 2", async () => {
  for (
    const [args, message] of [
      [["threaded"], 'Unknown argument "threaded"'],
      [["--prot=80"], 'Unknown option "--prot=80"'],
      [["--port=http"], '--port needs a whole number, not "http"'],
      [["--port"], "--port needs a value"],
      [["--port=70000"], "--port must be from 0 to 65535, not 70000"],
      [["--sleep-ms"], "--sleep-ms needs a value"],
      [["--hostname="], "--hostname needs a value"],
      [
        ["serial", "concurrent"],
        "Choose one mode, not serial and concurrent; each deno task already chooses one, so for concurrent mode run: deno task start",
      ],
      [
        ["concurrent", "serial"],
        "Choose one mode, not concurrent and serial; each deno task already chooses one, so for serial mode run: deno task serial",
      ],
      [["--quiet=no"], '--quiet takes no value, not "no"'],
      [["--help=1"], '--help takes no value, not "1"'],
      [
        ["serial", "--max-in-flight=2"],
        "--max-in-flight does not apply to serial mode",
      ],
      [["--workers=2"], "--workers is for parallel mode only"],
      [["parallel", "--workers=0"], "--workers must be from 1 to 1024, not 0"],
    ]
  ) {
    const { code, stdout, stderr } = await mainCommand(args as string[])
      .output();
    assertEquals(code, 2, String(args));
    assertEquals(decoder.decode(stdout), "");
    const lines = decoder.decode(stderr).trimEnd().split("\n");
    assertEquals(lines.length, 2, lines.join("\n"));
    assertEquals(lines[0], `error: ${message}`);
    assertEquals(
      lines[1],
      "Usage: main.ts [serial|concurrent|parallel] [options]; see --help",
    );
  }
});

Deno.test("deno task start serial says that the task already chooses a mode, names deno task serial, and exits 2", async () => {
  const { code, stdout, stderr } = await new Deno.Command("deno", {
    args: ["task", "--quiet", "start", "serial", "--port=0"],
    cwd: folder,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(code, 2);
  assertEquals(decoder.decode(stdout), "");
  assertStringIncludes(
    decoder.decode(stderr),
    "error: Choose one mode, not concurrent and serial; each deno task already chooses one, so for serial mode run: deno task serial\n",
  );
});

Deno.test("main.ts --help prints every option with its meaning and default, and exits 0", async () => {
  for (const flag of ["--help", "-h"]) {
    const { code, stdout, stderr } = await mainCommand([flag]).output();
    assertEquals(code, 0);
    assertEquals(decoder.decode(stderr), "");
    const help = decoder.decode(stdout);
    assertMatch(
      help,
      /^Usage: main\.ts \[serial\|concurrent\|parallel\] \[options\]\n/,
    );
    for (
      const [option, value] of [
        ["--port N", DEFAULTS.port],
        ["--hostname H", DEFAULTS.hostname],
        ["--sleep-ms N", DEFAULTS.sleepMs],
        ["--head-timeout-ms N", DEFAULTS.headTimeoutMs],
        ["--grace-ms N", DEFAULTS.graceMs],
        ["--max-in-flight N", "no limit"],
        ["--workers N", DEFAULTS.workers],
      ]
    ) {
      assertMatch(help, new RegExp(`\n  ${option} .*\\(default:? ${value}\\)`));
    }
    assertMatch(help, /\n {2}--quiet {2,}\S/);
    assertMatch(help, /\nExamples:\n {2}deno run /);
    // Quoted: zsh would take [::1] for a pattern of file names.
    assertStringIncludes(help, "deno run '--allow-net=[::1]' ");
    assertNotMatch(help, / --allow-net=\[/);
  }
});

Deno.test("main.ts reports a port in use in one line and exits 1", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { code, stdout, stderr } = await mainCommand([
    `--port=${taken.addr.port}`,
  ]).output();
  assertEquals(code, 1);
  assertEquals(decoder.decode(stdout), "");
  assertEquals(
    decoder.decode(stderr),
    `error: Address 127.0.0.1:${taken.addr.port} is already in use; stop what uses it or choose another --port\n`,
  );
});

Deno.test("main.ts without read permission for its pages says so in one line, not a network error, and exits 1", async () => {
  const { code, stdout, stderr } = await mainCommand(["--port=0"], {
    allowRead: `${folder}/hello.html`,
  }).output();
  assertEquals(code, 1);
  assertEquals(decoder.decode(stdout), "");
  assertMatch(
    decoder.decode(stderr),
    /^error: Cannot read the pages: Requires read access to "[^"]*404\.html"[^\n]*\n$/,
  );
});

Deno.test("main.ts reports an address it cannot listen on in one line, no stack trace, and exits 1", async () => {
  for (
    const [hostname, reason] of [
      ["nonexistent.invalid", /failed to lookup address/],
      ["256.1.1.1", /failed to lookup address/],
      ["127.0.0.1:8080", /invalid host/],
    ] as const
  ) {
    const { code, stdout, stderr } = await mainCommand(
      [`--hostname=${hostname}`, "--port=0"],
      { allowNet: hostname },
    ).output();
    assertEquals(code, 1, hostname);
    assertEquals(decoder.decode(stdout), "");
    const lines = decoder.decode(stderr).trimEnd().split("\n");
    assertEquals(lines.length, 1, lines.join("\n"));
    assert(lines[0].startsWith(`error: Cannot listen on `), lines[0]);
    assertMatch(lines[0], reason);
  }
});

Deno.test("main.ts listens on IPv6 with --hostname=::1 or [::1], and names the flag when it has no permission", async () => {
  for (const hostname of ["::1", "[::1]"]) {
    const main = await spawnMain([`--hostname=${hostname}`, "--port=0"], {
      allowNet: "[::1]",
    });
    let body;
    try {
      assert(main.url?.startsWith("http://[::1]:"), main.firstLine);
      body = await (await fetch(main.url!)).text();
    } finally {
      main.kill("SIGTERM");
    }
    assertEquals(body, hello);
    assertEquals((await main.exited()).code, 0);
  }
  const { code, stderr } = await mainCommand(["--hostname=::1", "--port=0"])
    .output();
  assertEquals(code, 1);
  assertEquals(
    decoder.decode(stderr),
    // Quoted: zsh would take [::1] for a pattern of file names.
    `error: No permission to listen on [::1]:0; run: deno run '--allow-net=[::1]' --allow-read=${folder} main.ts --hostname=::1 --port=0\n`,
  );
});

Deno.test("main.ts without network permission names the command that works, with the user's own read permission", async () => {
  for (const allowRead of ["--allow-read=.", "--allow-read"]) {
    const { code, stdout, stderr } = await new Deno.Command("deno", {
      args: ["run", "--no-config", allowRead, "main.ts", "serial", "--port=0"],
      cwd: folder,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(code, 1);
    assertEquals(decoder.decode(stdout), "");
    assertEquals(
      decoder.decode(stderr),
      `error: No permission to listen on 127.0.0.1:0; run: deno run --allow-net=127.0.0.1 ${allowRead} main.ts serial --port=0\n`,
    );
  }
});

/**
 * Spawns main.ts as {@linkcode mainCommand} does and waits for its first
 * line. After `kill()`, `exited()` resolves with the exit code, everything
 * it printed and its stderr.
 */
async function spawnMain(
  args: string[],
  options?: Parameters<typeof mainCommand>[1],
) {
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

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test({
    name:
      `main.ts on ${signal} lets a /sleep in flight finish, exits 0 and frees the port`,
    ignore: Deno.build.os === "windows",
    async fn() {
      const main = await spawnMain(["--port=0", "--sleep-ms=500"]);
      let slow;
      try {
        slow = await send(
          { hostname: "127.0.0.1", port: main.port },
          get("/sleep"),
        );
        await delay(100);
      } finally {
        main.kill(signal);
      }
      assertEquals(await slow.response, OK_HELLO);
      const { code, output, stderr } = await main.exited();
      assertEquals(code, 0, stderr);
      assertMatch(
        output,
        new RegExp(`Stopping on ${signal} \\(.*again.*\\): no new connections`),
      );
      assertMatch(output, /GET \/sleep 200 \(\d+ ms\)\n.*Stopped\n$/s);
      await assertRefused({ hostname: "127.0.0.1", port: main.port });
    },
  });
}

Deno.test("main.ts runs without deno.json from another folder, serves, and exits 0 on SIGTERM", async () => {
  const main = await spawnMain(["serial", "--port=0"]);
  let body;
  try {
    assert(main.url, `No "Listening on" line in: ${main.firstLine}`);
    assertEquals(main.mode, "serial");
    body = await (await fetch(main.url)).text();
  } finally {
    main.kill("SIGTERM");
  }
  assertEquals(body, hello);
  const { code, output, stderr } = await main.exited();
  assertEquals(code, 0, stderr);
  assertEquals(stderr, "");
  assertMatch(output, /GET \/ 200 \(\d+ ms\)\n/);
  assertMatch(output, /Stopped\n$/);
});

Deno.test("main.ts logs the local time of day", async () => {
  // UTC+14 all year, so the local hour can never pass for the UTC one.
  const main = await spawnMain(["--port=0"], { env: { TZ: "Etc/GMT-14" } });
  const before = new Date().getUTCHours();
  try {
    await (await fetch(main.url!)).text();
  } finally {
    main.kill("SIGTERM");
  }
  const after = new Date().getUTCHours();
  const { output } = await main.exited();
  const hour = Number(
    /\n(\d\d):\d\d:\d\d\.\d{3} GET \/ 200 /.exec(output)?.[1],
  );
  assert(
    [before, after].some((utc) => hour === (utc + 14) % 24),
    `UTC hour ${before}, logged: ${output}`,
  );
});

Deno.test({
  name: "main.ts keeps serving when its standard output fails (> /dev/full)",
  ignore: Deno.build.os === "windows",
  async fn() {
    const port = freePort();
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        'exec deno "$@" > /dev/full',
        "sh",
        ...runMainArgs([`--port=${port}`]),
      ],
      cwd: folder,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let status = 0;
    try {
      status = await answersOn(port);
    } finally {
      child.kill("SIGTERM");
    }
    const { code, stderr } = await child.output();
    assertEquals(status, 200);
    assertEquals(decoder.decode(stderr), "");
    assertEquals(code, 0);
  },
});

/** A port that was free a moment ago, for a server that cannot print its own. */
function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** Asks for / until the server answers, and returns the status. */
async function answersOn(port: number): Promise<number> {
  for (let attempt = 0;; attempt++) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`);
      await response.body?.cancel();
      return response.status;
    } catch (error) {
      if (attempt === 300) throw error;
      await delay(100);
    }
  }
}

// ---------------------------------------------------------------------------
// Parallel mode: a worker thread per CPU on one port

/** Spawns main.ts in parallel mode with two workers, whatever the CPUs. */
function spawnParallel(args: string[]) {
  return spawnMain(["parallel", "--workers=2", "--port=0", ...args], {
    unstableNet: true,
  });
}

/** `count` requests for `path` at once, each on a connection of its own. */
async function sendMany(addr: Address, path: string, count: number) {
  const sent = await Promise.all(
    Array.from({ length: count }, () => send(addr, get(path))),
  );
  return sent.map(({ response }) => response);
}

Deno.test("main.ts parallel says in one line what to add when --unstable-net is missing or it cannot read main.ts, and exits 1", async () => {
  for (
    const [flags, message] of [
      [
        {},
        "Parallel mode needs Deno.listen's reusePort, still unstable: add --unstable-net after deno run",
      ],
      [
        {
          unstableNet: true,
          allowRead: `${folder}/hello.html,${folder}/404.html`,
        },
        `Parallel mode starts its workers from ${folder}/main.ts: add it to --allow-read`,
      ],
    ] as const
  ) {
    const { code, stdout, stderr } = await mainCommand(
      ["parallel", "--port=0"],
      flags,
    ).output();
    assertEquals(code, 1);
    assertEquals(decoder.decode(stdout), "");
    assertEquals(decoder.decode(stderr), `error: ${message}\n`);
  }
});

Deno.test("main.ts in parallel mode serves from every worker: 100 simultaneous /sleep take about one sleep, and 4xx as in concurrent mode", async () => {
  const main = await spawnParallel([
    "--sleep-ms=1000",
    "--head-timeout-ms=500",
  ]);
  let elapsedMs, responses, timed, bad, stalled;
  try {
    assertMatch(main.firstLine, /^Listening on .* \(parallel, 2 workers\);/);
    const addr = { hostname: "127.0.0.1", port: main.port };
    const started = performance.now();
    responses = await Promise.all(await sendMany(addr, "/sleep", 100));
    elapsedMs = performance.now() - started;
    timed = await (await sendTimed(addr, get("/"))).response;
    bad = await (await send(addr, "GET / HTTP/9\r\n\r\n")).response;
    stalled = await (await send(addr, "GET / HTTP/1.1\r\nHo")).response;
  } finally {
    main.kill("SIGTERM");
  }
  for (const response of responses) assertEquals(response, OK_HELLO);
  // One sleep, not a hundred: the margin is wide for a busy machine.
  assertGreaterOrEqual(elapsedMs, 1000);
  assertLess(elapsedMs, 5000);
  assertEquals(bad, statusPage("400 Bad Request"));
  assertEquals(stalled, statusPage("408 Request Timeout"));
  assertMatch(
    timed!,
    /\r\nServer-Timing: mode;desc=parallel, worker;desc=[12], handle;dur=/,
  );
  const { code, output, stderr } = await main.exited();
  assertEquals(code, 0, stderr);
  // The kernel spread the hundred over both (one has them all once in 2^99).
  assertMatch(output, /\d worker 1: GET \/sleep 200 \(\d+ ms\)\n/);
  assertMatch(output, /\d worker 2: GET \/sleep 200 \(\d+ ms\)\n/);
});

Deno.test("main.ts in parallel mode: /block stalls only the worker that runs it, and the other answers at once", async () => {
  const main = await spawnParallel(["--sleep-ms=3000"]);
  const addr = { hostname: "127.0.0.1", port: main.port };
  const count = 100;
  let blockAnsweredAt = Infinity;
  const answeredAt: number[] = [];
  try {
    const blocking = (await send(addr, get("/block"))).response.then((
      response,
    ) => (blockAnsweredAt = performance.now(), response));
    // /block spins once its head is read: ample time for that.
    await delay(500);
    const responses = (await sendMany(addr, "/", count)).map((response) =>
      response.then((text) => (answeredAt.push(performance.now()), text))
    );
    assertEquals(await blocking, OK_HELLO);
    for (const response of await Promise.all(responses)) {
      assertEquals(response, OK_HELLO);
    }
  } finally {
    main.kill("SIGTERM");
  }
  assertEquals((await main.exited()).code, 0);
  // The kernel picks a worker for each connection, so about half go to the
  // free one and are answered at once (a second or more before /block), and
  // the rest wait for /block. A quarter: fewer is a chance below 1 in 10^6.
  const fast = answeredAt.filter((at) => at < blockAnsweredAt - 1000).length;
  assertGreaterOrEqual(fast, count / 4, `${fast} of ${count} answered at once`);
  assertLess(fast, count, "none waited: the blocked worker got no connection");
});

Deno.test("main.ts in parallel mode on SIGTERM lets a /sleep in flight on every worker finish, exits 0 and frees the port", async () => {
  const main = await spawnParallel(["--sleep-ms=2000"]);
  const addr = { hostname: "127.0.0.1", port: main.port };
  let responses;
  try {
    // Thirty, so that each worker surely gets some (all on one: 1 in 10^9).
    responses = await sendMany(addr, "/sleep", 30);
    await delay(500);
  } finally {
    main.kill("SIGTERM");
  }
  for (const response of await Promise.all(responses)) {
    assertEquals(response, OK_HELLO);
  }
  const { code, output, stderr } = await main.exited();
  assertEquals(code, 0, stderr);
  // One Stopping line for all the workers, before they finished their
  // sleeps: those were in flight.
  assertEquals(output.match(/Stopping/g)?.length, 1, output);
  assertMatch(output, /\n[\d:.]+ Stopping on SIGTERM \(send it again/);
  const stopping = output.indexOf("Stopping");
  for (const worker of ["worker 1", "worker 2"]) {
    assertLess(stopping, output.lastIndexOf(`${worker}: GET /sleep 200`));
  }
  assertMatch(output, /Stopped\n$/);
  await assertRefused(addr);
});

Deno.test("main.ts in parallel mode on a second SIGTERM drops what is in flight, says how many on each worker, and exits 130", async () => {
  const main = await spawnParallel(["--sleep-ms=60000"]);
  const addr = { hostname: "127.0.0.1", port: main.port };
  const responses = await sendMany(addr, "/sleep", 10);
  await delay(500);
  main.kill("SIGTERM");
  await delay(1000); // more than the half second that counts as one press
  main.kill("SIGTERM");
  for (const response of await Promise.all(responses)) {
    assertEquals(response, "");
  }
  const { code, output } = await main.exited();
  assertEquals(code, 130, output);
  const dropped = [
    ...output.matchAll(
      /worker \d: Dropping (\d+) requests? still in flight on a second SIGTERM\n/g,
    ),
  ].reduce((sum, [, count]) => sum + Number(count), 0);
  assertEquals(dropped, 10, output);
  assertNotMatch(output, /Stopped/);
});

Deno.test("main.ts parallel refuses a port in use, by another parallel server too, in one line with exit 1", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const first = await spawnParallel([]);
  try {
    for (const port of [taken.addr.port, first.port]) {
      const { code, stdout, stderr } = await mainCommand(
        ["parallel", "--workers=2", `--port=${port}`],
        { unstableNet: true },
      ).output();
      assertEquals(code, 1);
      assertEquals(decoder.decode(stdout), "");
      assertEquals(
        decoder.decode(stderr),
        `error: Address 127.0.0.1:${port} is already in use; stop what uses it or choose another --port\n`,
      );
    }
    // The first server still gets every connection.
    const addr = { hostname: "127.0.0.1", port: first.port };
    assertEquals(await (await send(addr, get("/"))).response, OK_HELLO);
  } finally {
    first.kill("SIGTERM");
  }
  assertEquals((await first.exited()).code, 0);
});

Deno.test("main.ts parallel with one worker says so in the singular", async () => {
  const main = await spawnMain(
    ["parallel", "--workers=1", "--port=0"],
    { unstableNet: true },
  );
  main.kill("SIGTERM");
  assertMatch(main.firstLine, /\(parallel, 1 worker\);/);
  assertEquals((await main.exited()).code, 0);
});

// ---------------------------------------------------------------------------
// In a terminal, as people run it

/**
 * Runs `command` in the project folder on a pseudo-terminal of its own
 * (`script`), where a Ctrl-C typed reaches the whole foreground process
 * group, as in a real terminal: `deno task` and the server both get it.
 * The shell that `script` starts execs the command, as an interactive shell
 * leaves it a process group of its own: a shell that stayed in the group
 * (dash does, and CI's `script` uses it when `SHELL` is unset) would die of
 * the Ctrl-C itself and report 130 for a server that exited 0.
 */
async function inTerminal(command: string) {
  const child = new Deno.Command("script", {
    args: ["-qfec", `exec ${command}`, "/dev/null"],
    cwd: folder,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const keyboard = child.stdin.getWriter();
  let screen = "";
  const reading = (async () => {
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) screen += chunk;
  })();
  const listening = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//;
  while (!listening.test(screen)) {
    const exited = await Promise.race([child.status, delay(50)]);
    if (exited) throw new Error(`${command} exited early:\n${screen}`);
  }
  return {
    port: Number(listening.exec(screen)![1]),
    pressCtrlC: () => keyboard.write(new Uint8Array([0x03])),
    async exited() {
      await keyboard.close();
      const [{ code }] = await Promise.all([child.status, reading]);
      return { code, screen };
    },
  };
}

const terminalCommands = [
  "deno task start",
  "deno task serial",
  "deno task parallel",
  "deno run --allow-net=127.0.0.1 --allow-read=. main.ts",
];
for (const command of terminalCommands) {
  Deno.test({
    name:
      `${command} in a terminal: one Ctrl-C lets a /sleep in flight finish, says Stopped and exits 0`,
    ignore: Deno.build.os === "windows",
    async fn() {
      const terminal = await inTerminal(`${command} --port=0 --sleep-ms=2000`);
      const addr = { hostname: "127.0.0.1", port: terminal.port };
      let slow;
      try {
        slow = await send(addr, get("/sleep"));
        await delay(500); // ample time for the server to read the head
      } finally {
        await terminal.pressCtrlC();
      }
      assertEquals(await slow.response, OK_HELLO);
      const { code, screen } = await terminal.exited();
      assertEquals(code, 0, screen);
      assertMatch(
        screen,
        /Stopping on SIGINT \(press Ctrl-C again to exit at once\)/,
      );
      assertMatch(screen, /GET \/sleep 200 .*\r\nStopped\r\n$/s);
    },
  });
}

Deno.test({
  name:
    "deno task start on SIGTERM to the task process lets a /sleep in flight finish and exits 0",
  ignore: Deno.build.os === "windows",
  async fn() {
    const task = new Deno.Command("deno", {
      args: ["task", "start", "--port=0", "--sleep-ms=2000"],
      cwd: folder,
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const stdout = task.stdout.pipeThrough(new TextDecoderStream()).values();
    let output = "";
    while (!output.includes("\n")) output += (await stdout.next()).value ?? "";
    const port = Number(/127\.0\.0\.1:(\d+)\//.exec(output)?.[1]);
    let slow;
    try {
      slow = await send({ hostname: "127.0.0.1", port }, get("/sleep"));
      await delay(500);
    } finally {
      task.kill("SIGTERM");
    }
    assertEquals(await slow.response, OK_HELLO);
    for await (const chunk of stdout) output += chunk;
    assertEquals((await task.status).code, 0, output);
    assertMatch(output, /Stopping on SIGTERM/);
    assertMatch(output, /GET \/sleep 200 .*\nStopped\n$/s);
  },
});

Deno.test({
  name:
    "deno task start in a terminal: a second Ctrl-C a second later exits at once with 130",
  ignore: Deno.build.os === "windows",
  async fn() {
    const terminal = await inTerminal(
      "deno task start --port=0 --sleep-ms=60000",
    );
    const addr = { hostname: "127.0.0.1", port: terminal.port };
    const slow = await send(addr, get("/sleep"));
    await delay(200);
    await terminal.pressCtrlC();
    await delay(1000);
    await terminal.pressCtrlC();
    const { code, screen } = await terminal.exited();
    assertEquals(code, 130, screen);
    // Dropped, not answered: the 60 s sleep and the 10 s grace were cut short.
    assertEquals(await slow.response, "");
    assertMatch(
      screen,
      /Dropping 1 request still in flight on a second SIGINT\r\n/,
    );
    assertNotMatch(screen, /Stopped/);
  },
});
