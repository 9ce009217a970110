/**
 * The HTTP rules on real sockets, as serve() answers them: fetch() and raw
 * TCP, a request in pieces, bodies it drains, Server-Timing, and thousands
 * of garbage heads. The rules one by one are in http_test.ts.
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
import { delay } from "@std/async";
import {
  type Address,
  floodGarbage,
  garbageHeads,
  readResponse,
  readToEnd,
  send,
  writeAll,
} from "../tools/clients.ts";
import {
  get,
  handleInMemory,
  hello,
  HTML,
  JS,
  labFile,
  MemoryConn,
  notFound,
  OK_HELLO,
  pages,
  sendUntimed,
  serveOnFreePort,
  serverTimingOf,
  statusPage,
  untimed,
} from "./testing.ts";
import { waitFor, withDeadline } from "./waiting.ts";

const decoder = new TextDecoder();

Deno.test(
  "serve() answers fetch() with the pages, and Content-Length is the body's length in bytes",
  withDeadline(async (t) => {
    await using server = serveOnFreePort("concurrent");
    for (
      const [path, status, page, type = HTML] of [
        ["/", 200, hello],
        ["/sleep", 200, hello],
        ["/lab", 200, labFile("lab/index.html")],
        ["/lab/probe.js", 200, labFile("lab/probe.js"), JS],
        ["/nowhere", 404, notFound],
      ] as const
    ) {
      await t.step(`GET ${path}`, async () => {
        const response = await fetch(new URL(path, server.url));
        const body = new Uint8Array(await response.arrayBuffer());
        assertEquals(response.status, status);
        assertEquals(decoder.decode(body), page);
        assertEquals(response.headers.get("content-type"), type);
        assertEquals(
          Number(response.headers.get("content-length")),
          body.byteLength,
        );
      });
    }
    await t.step("HEAD /", async () => {
      const head = await fetch(server.url, { method: "HEAD" });
      await head.body?.cancel();
      assertEquals(head.status, 200);
      assertEquals(
        Number(head.headers.get("content-length")),
        pages.hello.byteLength,
      );
    });
  }),
);

Deno.test(
  "serve() answers raw TCP, the request read in pieces",
  withDeadline(async () => {
    await using server = serveOnFreePort("serial", {}, { recordReads: true });
    using conn = await Deno.connect(server.addr);
    const request = get("/");
    for (let sent = 4; sent < request.length + 4; sent += 4) {
      await writeAll(conn, request.slice(sent - 4, sent));
      // The next piece goes once the server has read this one.
      const read = request.slice(0, sent);
      await waitFor(() => server.received[0] === read, `"${read}" read`);
    }
    assertEquals(untimed(await readToEnd(conn)), OK_HELLO);
  }),
);

Deno.test(
  "serve() answers 405 to a POST with a 64 KiB body, which it drains unread",
  withDeadline(async () => {
    await using server = serveOnFreePort("concurrent");
    using conn = await Deno.connect(server.addr);
    const body = "x".repeat(64 * 1024);
    await writeAll(
      conn,
      `POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    assertEquals(
      untimed(await readResponse(conn)),
      statusPage("405 Method Not Allowed", "Allow: GET, HEAD\r\n"),
    );
  }),
);

Deno.test(
  "serve() does not time out a /sleep longer than the head timeout: its head is read",
  withDeadline(async () => {
    await using server = serveOnFreePort("concurrent", {
      headTimeoutMs: 100,
      sleepMs: 500,
    });
    assertEquals(
      await (await sendUntimed(server.addr, get("/sleep"))).response,
      OK_HELLO,
    );
  }),
);

/** The metrics Server-Timing may name: mode, worker, idle and handle. */
const METRICS = ["mode", "worker", "idle", "handle"];

Deno.test(
  "Server-Timing counts a request from its first byte, and the idle time before it apart",
  withDeadline(async () => {
    await using server = serveOnFreePort("concurrent", { sleepMs: 300 });
    const connectedAt = performance.now();
    using conn = await Deno.connect(server.addr);
    // Time itself is the subject: the connection sits idle for a second,
    // as one a browser opens ahead of time does.
    await delay(1000);
    await writeAll(conn, get("/block"));
    const response = await readResponse(conn);
    const waitedMs = performance.now() - connectedAt;
    const { idle, handle } = serverTimingOf(response) ?? {};
    assert(idle && handle, response);
    const [idleMs, handleMs] = [Number(idle.dur), Number(handle.dur)];
    // /block spins for 300 ms: that is the request's time, not the second.
    assertGreaterOrEqual(handleMs, 299);
    assertLess(handleMs, 1000);
    // The second is the idle time (less the moment accept() may take).
    assertGreaterOrEqual(idleMs, 900);
    assertLess(idleMs + handleMs, waitedMs);
  }),
);

Deno.test(
  "Server-Timing names the mode and the server's time on every response",
  withDeadline(async (t) => {
    for (const mode of ["serial", "concurrent"] as const) {
      await using server = serveOnFreePort(mode, { sleepMs: 300 });
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
        await t.step(`${mode}: ${request.split("\r\n")[0]}`, async () => {
          const response = await (await send(server.addr, request)).response;
          assert(response.startsWith(`HTTP/1.1 ${status} `), response);
          const metrics = serverTimingOf(response);
          assert(metrics, response);
          for (const name in metrics) assert(METRICS.includes(name), name);
          assertEquals(metrics.mode?.desc, mode);
          assertMatch(metrics.handle?.dur ?? "", /^\d+\.\d$/);
          const durMs = Number(metrics.handle.dur);
          if (request.includes("/sleep")) assertGreaterOrEqual(durMs, 299);
          else assertLess(durMs, 300);
        });
      }
    }
    await t.step("handle() on its own names no mode", async () => {
      const conn = new MemoryConn(get("/"));
      await handleInMemory(conn);
      const metrics = serverTimingOf(conn.timedResponse);
      assert(metrics, conn.timedResponse);
      assertEquals(metrics.mode, undefined);
      assertMatch(metrics.handle?.dur ?? "", /^\d+\.\d$/);
    });
  }),
);

Deno.test(
  "serve() answers thousands of garbage heads with a 4xx or 5xx or a close, and keeps serving",
  withDeadline(async () => {
    const seed = 20261126;
    const heads = garbageHeads(2000, seed);
    await using server = serveOnFreePort("concurrent", {
      headTimeoutMs: 5000,
    });
    const answers = await floodGarbage(server.addr, heads, 50);
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
    assertEquals(
      await (await sendUntimed(server.addr, get("/"))).response,
      OK_HELLO,
    );
    // One line per connection, and never a stack trace.
    assertEquals(server.logs.length, heads.length + 1);
    for (const line of server.logs) assertNotMatch(line, /\n/);
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

/** Sends `request` whole, then reads the answer to its end, untimed. */
async function exchange(addr: Address, request: Uint8Array): Promise<string> {
  using conn = await Deno.connect(addr);
  for (let written = 0; written < request.length;) {
    written += await conn.write(request.subarray(written));
  }
  return untimed(await readToEnd(conn));
}

Deno.test(
  "serve() answers 50 POSTs with a 1 MB body each, every one with its 405, and a GET with a body with its page",
  withDeadline(async () => {
    await using server = serveOnFreePort("concurrent", { quiet: true });
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
    await using server = serveOnFreePort("serial", { quiet: true });
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
    assertEquals(
      await (await sendUntimed(server.addr, get("/"))).response,
      OK_HELLO,
    );
  }),
);

/**
 * Sends a head and then a body of `bodyBytes` whole before reading, as curl
 * with a file, wget and aiohttp do, and returns the response: a connection
 * closed with the body unread would be reset, and lose it.
 */
async function uploadThenRead(
  addr: Address,
  head: string,
  bodyBytes: number,
  afterHead = () => Promise.resolve(),
): Promise<string> {
  using conn = await Deno.connect(addr);
  await writeAll(conn, head);
  await afterHead();
  const chunk = new Uint8Array(64 * 1024).fill(0x78);
  for (let sent = 0; sent < bodyBytes;) {
    sent += await conn.write(chunk.subarray(0, bodyBytes - sent));
  }
  return untimed(await readToEnd(conn));
}

Deno.test(
  "serve() answers 400 to a malformed field line before Content-Length, and drains the 4 MB body sent after it",
  withDeadline(async () => {
    await using server = serveOnFreePort("concurrent", { trace: true });
    const bodyBytes = 4_000_000;
    const head = "POST / HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n" +
      `Content-Length: ${bodyBytes}\r\n\r\n`;
    // The body comes once the head alone is read and answered, as curl's
    // does: nothing but the head says a body follows.
    const headRead = () => waitFor(server.logs, /^#1 head: /).then(() => {});
    assertEquals(
      await uploadThenRead(server.addr, head, bodyBytes, headRead),
      statusPage("400 Bad Request"),
    );
  }),
);

Deno.test(
  "serve() answers 405 to an upload of 16 MiB, larger than any byte bound, sent whole before the answer is read",
  withDeadline(async () => {
    await using server = serveOnFreePort("concurrent", { quiet: true });
    const bodyBytes = 16 * 2 ** 20;
    const head =
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${bodyBytes}\r\n\r\n`;
    assertEquals(
      await uploadThenRead(server.addr, head, bodyBytes),
      statusPage("405 Method Not Allowed", "Allow: GET, HEAD\r\n"),
    );
  }),
);

Deno.test(
  "serve() logs a request's time from its first byte to its answer, without the drain after it",
  withDeadline(async () => {
    await using server = serveOnFreePort("concurrent");
    using conn = await Deno.connect(server.addr);
    await writeAll(
      conn,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n",
    );
    assertMatch(untimed(await readToEnd(conn)), /^HTTP\/1\.1 405 /);
    // Time is the subject: the drain lasts while the body does not come.
    const holdMs = 1000;
    await delay(holdMs);
    await writeAll(conn, "xx");
    await waitFor(() => server.logs.length > 0, "the log line");
    const [, ms] = /^POST \/ 405 \((\d+) ms\)$/.exec(server.logs[0]) ?? [];
    assert(ms, server.logs[0]);
    assertLess(Number(ms), holdMs, "the drain was counted");
  }),
);

Deno.test(
  "Server-Timing of a 408 counts from the head's first byte, the idle time before it apart",
  withDeadline(async () => {
    const headTimeoutMs = 1500;
    await using server = serveOnFreePort("concurrent", { headTimeoutMs });
    using conn = await Deno.connect(server.addr);
    // Time is the subject: idle for a second, then half a head, then nothing.
    const idleMs = 1000;
    await delay(idleMs);
    await writeAll(conn, "GET / HTTP/1.1\r\nHo");
    const response = await readToEnd(conn);
    assertMatch(response, /^HTTP\/1\.1 408 /);
    const { idle, handle } = serverTimingOf(response)!;
    // The head timeout counts from the accept; the request's time from its
    // first byte: about a third of it here, far from all of it.
    assertGreaterOrEqual(Number(idle.dur), idleMs * 0.8);
    assertLess(Number(handle.dur), headTimeoutMs - idleMs / 2);
  }),
);
