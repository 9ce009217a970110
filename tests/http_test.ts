/**
 * The HTTP rules handle() follows, in memory and on sockets: the methods
 * and versions it answers, the heads it refuses (400, 405, 408, 431, 501,
 * 505, after RFC 9110 and 9112), HEAD, Content-Length and Server-Timing.
 */

import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLess,
  assertMatch,
  assertNotMatch,
  assertRejects,
} from "@std/assert";
import {
  type Address,
  garbageHeads,
  send as sendTimed,
  sendGarbage,
  writeAll,
} from "./clients.ts";
import {
  delay,
  expectedResponse,
  get,
  handleInMemory,
  hello,
  HTML,
  MemoryConn,
  notFound,
  OK_HELLO,
  pages,
  readResponse,
  readToEnd,
  send,
  startServer,
  statusPage,
  TEXT,
  withDeadline,
} from "./testing.ts";

const decoder = new TextDecoder();
const JS = "text/javascript; charset=utf-8";

// ---------------------------------------------------------------------------
// In memory

Deno.test(
  "handle() answers each page with its type, and HEAD with the status and headers of GET, without a body",
  withDeadline(async () => {
    for (
      const [path, status, type, body] of [
        ["/", "200 OK", HTML, hello],
        ["/lab", "200 OK", HTML, decoder.decode(pages.lab)],
        ["/lab.js", "200 OK", JS, decoder.decode(pages.labScript)],
        ["/x", "404 Not Found", HTML, notFound],
      ]
    ) {
      for (const method of ["GET", "HEAD"]) {
        const conn = new MemoryConn(
          `${method} ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`,
          { readSize: 3 },
        );
        await handleInMemory(conn);
        const withBody = method === "GET";
        assertEquals(
          conn.response,
          expectedResponse(status, type, body, { withBody }),
        );
      }
    }
  }),
);

Deno.test(
  "handle() answers 405 with an Allow header to the other methods it knows, ignoring any body",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "handle() answers 501 to a method it does not know (RFC 9110 §9.1)",
  withDeadline(async () => {
    for (const method of ["BREW", "PROPFIND", "get"]) {
      const conn = new MemoryConn(
        `${method} / HTTP/1.1\r\nHost: localhost\r\n\r\n`,
      );
      const logs = await handleInMemory(conn);
      assertEquals(conn.response, statusPage("501 Not Implemented"), method);
      assertMatch(logs[0], new RegExp(`^${method} / 501 `));
    }
  }),
);

Deno.test(
  "handle() answers 505 to a major version other than 1, and reads HTTP/1.2 as 1.1 (RFC 9110 §2.5)",
  withDeadline(async () => {
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
      assertEquals(
        withoutHost.response,
        statusPage("400 Bad Request"),
        version,
      );
    }
  }),
);

Deno.test(
  "handle() answers 400 to an invalid or conflicting Content-Length and accepts one number (RFC 9112 §6.3)",
  withDeadline(async () => {
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
      assertEquals(
        conn.response,
        statusPage("400 Bad Request"),
        String(fields),
      );
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
  }),
);

Deno.test(
  "handle() answers 501 to a transfer coding other than chunked, and 400 to chunked twice (RFC 9112 §6.1)",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "handle() answers 400 to a head that is not a valid HTTP/1.x request, and logs its request line when it has one",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "handle() accepts HTTP/1.0 without Host, bare LF line ends and other targets",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "handle() ignores what follows the head",
  withDeadline(async () => {
    const conn = new MemoryConn(get("/") + "GET /nowhere HTTP/1.1\r\n\r\n", {
      readSize: 100,
    });
    await handleInMemory(conn);
    assertEquals(conn.response, OK_HELLO);
  }),
);

Deno.test(
  "handle() answers 431 to a head over maxHeadBytes and accepts one at the limit",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "handle() answers 408 and closes when the head is not complete in time",
  withDeadline(async () => {
    const conn = new MemoryConn("GET / HTTP/1.1\r\nHost: loc", {
      endOfInput: "wait",
    });
    const logs = await handleInMemory(conn, { headTimeoutMs: 100 });
    assertEquals(conn.response, statusPage("408 Request Timeout"));
    assert(conn.closed);
    assertMatch(logs[0], /^- 408 /);
  }),
);

// ---------------------------------------------------------------------------
// On sockets

Deno.test(
  "serve() answers fetch() with the pages, and Content-Length is the body's length in bytes",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "serve() answers raw TCP, the request sent in pieces",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "serve() answers 405 to a POST with a 64 KiB body, which it drains unread",
  withDeadline(async () => {
    await using server = startServer("concurrent");
    using conn = await Deno.connect(server.addr);
    const body = "x".repeat(64 * 1024);
    await writeAll(
      conn,
      `POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    assertEquals(
      await readResponse(conn),
      statusPage("405 Method Not Allowed", "Allow: GET, HEAD\r\n"),
    );
  }),
);

Deno.test(
  "serve() does not time out a /sleep longer than the head timeout: its head is read",
  withDeadline(async () => {
    await using server = startServer("concurrent", {
      headTimeoutMs: 100,
      sleepMs: 500,
    });
    assertEquals(
      await (await send(server.addr, get("/sleep"))).response,
      OK_HELLO,
    );
  }),
);

Deno.test(
  "Server-Timing names the mode and the server's time since accept on every response",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "serve() answers thousands of garbage heads with a 4xx or 5xx or a close, and keeps serving",
  withDeadline(async () => {
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
  }),
);

// ---------------------------------------------------------------------------
// RFC details: HEAD, OPTIONS *, an empty line first

Deno.test(
  "handle() sends no content in answer to HEAD, whatever the status (RFC 9110 §9.3.2)",
  withDeadline(async () => {
    for (
      const [request, status] of [
        ["HEAD / HTTP/1.1\r\n\r\n", "400 Bad Request"], // no Host
        [
          "HEAD / HTTP/2.0\r\nHost: x\r\n\r\n",
          "505 HTTP Version Not Supported",
        ],
        [
          "HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n",
          "400 Bad Request",
        ],
        [
          "HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
          "501 Not Implemented",
        ],
      ]
    ) {
      const conn = new MemoryConn(request, { endOfInput: "eof" });
      await handleInMemory(conn);
      const expected = expectedResponse(status, TEXT, `${status}\n`, {
        withBody: false,
      });
      assertEquals(conn.response, expected, request);
    }
  }),
);

Deno.test(
  "handle() answers OPTIONS * with 405 and Allow, as other methods (RFC 9112 §3.2.4)",
  withDeadline(async () => {
    const conn = new MemoryConn("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    const logs = await handleInMemory(conn);
    assertEquals(
      conn.response,
      statusPage("405 Method Not Allowed", "Allow: GET, HEAD\r\n"),
    );
    assertMatch(logs[0], /^OPTIONS \* 405 /);
  }),
);

Deno.test(
  "handle() ignores one empty line before the request line, not two (RFC 9112 §2.2)",
  withDeadline(async () => {
    for (const before of ["\r\n", "\n"]) {
      const conn = new MemoryConn(before + get("/"), { readSize: 2 });
      await handleInMemory(conn);
      assertEquals(conn.response, OK_HELLO, JSON.stringify(before));
    }
    const conn = new MemoryConn("\r\n\r\n" + get("/"), { endOfInput: "eof" });
    await handleInMemory(conn);
    assertEquals(conn.response, statusPage("400 Bad Request"));
  }),
);

// ---------------------------------------------------------------------------
// Clients that send a body: each gets its answer

/** A request with a body of `bytes` bytes, as one buffer. */
function withBody(method: string, bytes: number): Uint8Array {
  const head = new TextEncoder().encode(
    `${method} / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${bytes}\r\n\r\n`,
  );
  const request = new Uint8Array(head.length + bytes).fill(0x78);
  request.set(head);
  return request;
}

/** Sends `request` whole, then reads the answer to its end. */
async function exchange(addr: Address, request: Uint8Array): Promise<string> {
  using conn = await Deno.connect(addr);
  for (let written = 0; written < request.length;) {
    written += await conn.write(request.subarray(written));
  }
  return await readToEnd(conn);
}

Deno.test(
  "serve() answers 50 POSTs with a 1 MB body each, every one with its 405, and a GET with a body with its page",
  withDeadline(async () => {
    await using server = startServer("concurrent", { quiet: true });
    const post = withBody("POST", 1_000_000);
    const answers = await Promise.allSettled(
      Array.from({ length: 50 }, () => exchange(server.addr, post)),
    );
    const expected = statusPage(
      "405 Method Not Allowed",
      "Allow: GET, HEAD\r\n",
    );
    const got = answers.filter((a) =>
      a.status === "fulfilled" && a.value === expected
    );
    assertEquals(
      got.length,
      50,
      JSON.stringify(answers.find((a) => a.status === "rejected")),
    );
    assertEquals(
      await exchange(server.addr, withBody("GET", 1_000_000)),
      OK_HELLO,
    );
  }),
);

Deno.test(
  "serve() drains a body for a bounded time only: a client that keeps sending is closed",
  withDeadline(async () => {
    await using server = startServer("serial", { quiet: true });
    using conn = await Deno.connect(server.addr);
    const head = `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${
      2 ** 40
    }\r\n\r\n`;
    await writeAll(conn, head);
    // Keep sending until the server closes; a write then fails.
    const chunk = new Uint8Array(64 * 1024);
    const started = performance.now();
    await assertRejects(async () => {
      while (performance.now() - started < 30_000) await conn.write(chunk);
    });
    // Serial mode: the next client is served, so the loop was let go.
    assertEquals(await (await send(server.addr, get("/"))).response, OK_HELLO);
  }),
);
