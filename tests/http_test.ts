/**
 * The HTTP rules handle() follows, on an in-memory connection: the methods
 * and versions it answers, the heads it refuses (400, 405, 408, 431, 501,
 * 505, after RFC 9110 and 9112), HEAD and Content-Length. The same on real
 * sockets, with Server-Timing, is in http_sockets_test.ts.
 */

import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertMatch,
} from "@std/assert";
import {
  expectedResponse,
  get,
  handleInMemory,
  hello,
  HTML,
  JS,
  labFile,
  MemoryConn,
  notFound,
  OK_HELLO,
  statusPage,
  TEXT,
} from "./testing.ts";
import { withDeadline } from "./waiting.ts";

/** A request for / with `fields` after its Host, each on a line. */
const withFields = (...fields: string[]) =>
  `GET / HTTP/1.1\r\nHost: localhost\r\n${
    fields.map((f) => `${f}\r\n`).join("")
  }\r\n`;

Deno.test(
  "handle() answers each page with its type, and HEAD with the status and headers of GET, without a body",
  withDeadline(async (t) => {
    for (
      const [path, status, type, body] of [
        ["/", "200 OK", HTML, hello],
        ["/lab", "200 OK", HTML, labFile("lab/index.html")],
        ["/lab/lab.js", "200 OK", JS, labFile("lab/lab.js")],
        ["/probe/verdict.js", "200 OK", JS, labFile("probe/verdict.js")],
        ["/x", "404 Not Found", HTML, notFound],
        ["/lab/missing.js", "404 Not Found", HTML, notFound],
        ["/probe/probe.ts", "404 Not Found", HTML, notFound],
        ["/lab/../main.ts", "404 Not Found", HTML, notFound],
      ]
    ) {
      for (const method of ["GET", "HEAD"]) {
        await t.step(`${method} ${path}`, async () => {
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
        });
      }
    }
  }),
);

Deno.test(
  "handle() answers 405 with an Allow header to the other methods it knows, ignoring any body",
  withDeadline(async (t) => {
    const methods = ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"];
    for (const method of [...methods, "CONNECT"]) {
      await t.step(method, async () => {
        const request =
          `${method} / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello`;
        const conn = new MemoryConn(request, { readSize: 4 });
        const logs = await handleInMemory(conn);
        assertEquals(
          conn.response,
          statusPage("405 Method Not Allowed", "Allow: GET, HEAD\r\n"),
        );
        assertMatch(logs[0], new RegExp(`^${method} / 405 `));
      });
    }
  }),
);

Deno.test(
  "handle() answers 501 to a method it does not know (RFC 9110 §9.1)",
  withDeadline(async (t) => {
    for (const method of ["BREW", "PROPFIND", "get"]) {
      await t.step(method, async () => {
        const conn = new MemoryConn(
          `${method} / HTTP/1.1\r\nHost: localhost\r\n\r\n`,
        );
        const logs = await handleInMemory(conn);
        assertEquals(conn.response, statusPage("501 Not Implemented"));
        assertMatch(logs[0], new RegExp(`^${method} / 501 `));
      });
    }
  }),
);

Deno.test(
  "handle() answers 505 to a major version other than 1, and reads HTTP/1.2 as 1.1 (RFC 9110 §2.5)",
  withDeadline(async (t) => {
    for (const version of ["2.0", "0.9", "3.1"]) {
      await t.step(`HTTP/${version}: 505`, async () => {
        const conn = new MemoryConn(
          `GET / HTTP/${version}\r\nHost: localhost\r\n\r\n`,
        );
        const logs = await handleInMemory(conn);
        assertEquals(
          conn.response,
          statusPage("505 HTTP Version Not Supported"),
        );
        assertMatch(logs[0], /^GET \/ 505 /);
      });
    }
    for (const version of ["1.2", "1.9"]) {
      await t.step(`HTTP/${version}: as 1.1, with a Host`, async () => {
        const withHost = new MemoryConn(
          `GET / HTTP/${version}\r\nHost: localhost\r\n\r\n`,
        );
        await handleInMemory(withHost);
        assertEquals(withHost.response, OK_HELLO);
        const withoutHost = new MemoryConn(`GET / HTTP/${version}\r\n\r\n`);
        await handleInMemory(withoutHost);
        assertEquals(withoutHost.response, statusPage("400 Bad Request"));
      });
    }
  }),
);

Deno.test(
  "handle() answers 400 to an invalid or conflicting Content-Length and accepts one number (RFC 9112 §6.3)",
  withDeadline(async (t) => {
    for (
      const [fields, expected] of [
        [["Content-Length: abc"], statusPage("400 Bad Request")],
        [["Content-Length: -1"], statusPage("400 Bad Request")],
        [["Content-Length: 1, 2"], statusPage("400 Bad Request")],
        [["Content-Length: 1.5"], statusPage("400 Bad Request")],
        [["Content-Length:"], statusPage("400 Bad Request")],
        [
          ["Content-Length: 1", "Content-Length: 2"],
          statusPage("400 Bad Request"),
        ],
        [
          ["Content-Length: 0", "Transfer-Encoding: chunked"],
          statusPage("400 Bad Request"),
        ],
        [["Content-Length: 0"], OK_HELLO],
        [["content-length: 12"], OK_HELLO],
        [["Content-Length: 5, 5"], OK_HELLO],
        [["Content-Length: 5", "Content-Length: 005"], OK_HELLO],
      ] as [string[], string][]
    ) {
      await t.step(fields.join(" | "), async () => {
        const conn = new MemoryConn(withFields(...fields));
        await handleInMemory(conn);
        assertEquals(conn.response, expected);
      });
    }
  }),
);

Deno.test(
  "handle() answers 501 to a transfer coding other than chunked, and 400 to chunked twice (RFC 9112 §6.1)",
  withDeadline(async (t) => {
    const coding = (...values: string[]) =>
      values.map((value) => `Transfer-Encoding: ${value}`);
    for (
      const [values, expected] of [
        [["gzip"], statusPage("501 Not Implemented")],
        [["gzip, chunked"], statusPage("501 Not Implemented")],
        [["chunked", "identity"], statusPage("501 Not Implemented")],
        [["chunked, chunked"], statusPage("400 Bad Request")],
        [["chunked", "chunked"], statusPage("400 Bad Request")],
        [[""], statusPage("400 Bad Request")],
        [["chunked"], OK_HELLO],
        [["Chunked"], OK_HELLO],
        [[" chunked , "], OK_HELLO],
      ]
    ) {
      await t.step(JSON.stringify(values), async () => {
        const conn = new MemoryConn(withFields(...coding(...values)));
        await handleInMemory(conn);
        assertEquals(conn.response, expected);
      });
    }
  }),
);

Deno.test(
  "handle() answers 400 to a head that is not a valid HTTP/1.x request, and logs its request line when it has one",
  withDeadline(async (t) => {
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
      await t.step(JSON.stringify(request), async () => {
        const conn = new MemoryConn(request, { readSize: 2 });
        const logs = await handleInMemory(conn);
        assertEquals(conn.response, statusPage("400 Bad Request"));
        assert(logs[0].startsWith(`${requestLine} 400 (`), logs[0]);
      });
    }
  }),
);

Deno.test(
  "handle() accepts HTTP/1.0 without Host, bare LF line ends and other targets",
  withDeadline(async (t) => {
    const requests = [
      "GET / HTTP/1.0\r\n\r\n",
      "GET / HTTP/1.1\nHost: localhost\n\n",
      "GET /?greeting=hi HTTP/1.1\r\nHost: localhost\r\n\r\n",
      "GET http://localhost:7878/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
      "GET / HTTP/1.1\r\nhost: localhost\r\nX-Empty:\r\nAccept: */*\r\n\r\n",
    ];
    for (const request of requests) {
      await t.step(JSON.stringify(request), async () => {
        const conn = new MemoryConn(request, { readSize: 1 });
        await handleInMemory(conn);
        assertEquals(conn.response, OK_HELLO);
      });
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
    // The request line was whole, so the log names it.
    assertMatch(logs[0], /^GET \/ 431 /);
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

Deno.test(
  "handle() closes a connection that sent nothing at the head timeout, without a 408",
  withDeadline(async () => {
    // A browser's spare connection: a 408 on it could cross the request the
    // browser sends on it just then, which would get the 408 for an answer.
    const conn = new MemoryConn("", { endOfInput: "wait" });
    const logs = await handleInMemory(conn, { headTimeoutMs: 50 });
    assert(conn.closed);
    assertEquals(conn.timedResponse, "");
    assertMatch(
      logs[0],
      /^- closed: sent nothing within the head timeout \(\d+ ms\)$/,
    );
  }),
);

Deno.test(
  "handle() closes a connection whose head timed out and whose 408 cannot be written, within the send timeout, even when it is the only one",
  // Before the fix the 408's write had no deadline unless another
  // connection's timer happened to run: this connection stayed open.
  withDeadline(async () => {
    const conn = new MemoryConn("GET / HTTP/1.1\r\n", { stallWrites: true });
    const timeouts = { headTimeoutMs: 50, sendTimeoutMs: 200 };
    const logs = await handleInMemory(conn, timeouts);
    assert(conn.closed);
    assertEquals(conn.timedResponse, "");
    assertEquals(logs.length, 1, logs.join("\n"));
    const [, ms] =
      /^- closed: a write made no progress for the send timeout \((\d+) ms\)$/
        .exec(logs[0]) ?? [];
    assert(ms, logs[0]);
    // Both timeouts ran, one after the other.
    assertGreaterOrEqual(
      Number(ms),
      timeouts.headTimeoutMs + timeouts.sendTimeoutMs,
    );
  }, 10_000),
);

// ---------------------------------------------------------------------------
// RFC details: HEAD, OPTIONS *, an empty line first

Deno.test(
  "handle() sends no content in answer to HEAD, whatever the status (RFC 9110 §9.3.2)",
  withDeadline(async (t) => {
    for (
      const [request, status, options] of [
        ["HEAD / HTTP/1.1\r\n\r\n", "400 Bad Request", {}], // no Host
        [
          "HEAD / HTTP/2.0\r\nHost: x\r\n\r\n",
          "505 HTTP Version Not Supported",
          {},
        ],
        [
          "HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n",
          "400 Bad Request",
          {},
        ],
        [
          "HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
          "501 Not Implemented",
          {},
        ],
        [
          `HEAD / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(100)}\r\n\r\n`,
          "431 Request Header Fields Too Large",
          { maxHeadBytes: 64 },
        ],
        [
          "HEAD / HTTP/1.1\r\nHo",
          "408 Request Timeout",
          { headTimeoutMs: 50 },
        ],
      ] as const
    ) {
      await t.step(status, async () => {
        const conn = new MemoryConn(request, { endOfInput: "wait" });
        await handleInMemory(conn, options);
        const expected = expectedResponse(status, TEXT, `${status}\n`, {
          withBody: false,
        });
        assertEquals(conn.response, expected);
      });
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
  withDeadline(async (t) => {
    for (
      const [before, expected] of [
        ["\r\n", OK_HELLO],
        ["\n", OK_HELLO],
        ["\r\n\r\n", statusPage("400 Bad Request")],
      ]
    ) {
      await t.step(JSON.stringify(before), async () => {
        const conn = new MemoryConn(before + get("/"), {
          readSize: 2,
          endOfInput: "eof",
        });
        await handleInMemory(conn);
        assertEquals(conn.response, expected);
      });
    }
  }),
);

Deno.test(
  "handle() compares paths as sent, in origin and absolute form alike",
  withDeadline(async (t) => {
    for (
      const [target, expected] of [
        ["/sleep?x=1", "200"],
        ["http://localhost/sleep?x=1", "200"],
        ["HTTP://localhost/sleep", "200"],
        ["http://localhost", "200"], // an empty path is / (RFC 9110 §4.2.3)
        ["/a/../sleep", "404"],
        ["http://localhost/a/../sleep", "404"],
        ["/sl%65ep", "404"],
        ["http://localhost/sl%65ep", "404"],
      ]
    ) {
      await t.step(target, async () => {
        const request = `GET ${target} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
        const conn = new MemoryConn(request, { readSize: 64 });
        const logs = await handleInMemory(conn, { sleepMs: 1 });
        assertMatch(logs[0], new RegExp(`^GET \\S+ ${expected} `));
      });
    }
  }),
);
