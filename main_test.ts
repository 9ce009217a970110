/**
 * The lesson: an accept loop that awaits each connection serves one client
 * at a time, and one that leaves handle(conn) unawaited serves them all at
 * once; work that never awaits (/block) holds both; and handle() is at work
 * as soon as it is called, since a promise is eager. The rest of main.ts's
 * tests are in tests/, a file a subject, with the helpers they share.
 */

import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertMatch,
} from "@std/assert";
import { type Connection, DEFAULTS, handle } from "./main.ts";
import { startServerProcess } from "./tools/server_process.ts";
import {
  get,
  handleInMemory,
  MemoryConn,
  NOT_FOUND,
  OK_HELLO,
  pages,
  sendUntimed,
  serveOnFreePort,
  statusPage,
} from "./tests/testing.ts";
import { assertWithinSet, waitFor, withDeadline } from "./tests/waiting.ts";

// ---------------------------------------------------------------------------
// handle() on an in-memory connection

Deno.test(
  "handle() answers / with hello.html, read a byte at a time and written in pieces",
  withDeadline(async () => {
    const conn = new MemoryConn(get("/"), { readSize: 1, writeSize: 7 });
    const logs = await handleInMemory(conn);
    assertEquals(conn.response, OK_HELLO);
    assert(conn.closed);
    assertEquals(logs.length, 1);
    assertMatch(logs[0], /^GET \/ 200 \(\d+ ms\)$/);
  }),
);

Deno.test(
  "handle() answers /sleep with hello.html, no sooner than the sleep time",
  withDeadline(async () => {
    const sleepMs = 200;
    const conn = new MemoryConn(get("/sleep"), { readSize: 5 });
    const started = performance.now();
    await handleInMemory(conn, { sleepMs });
    // A timer never fires early, so only a lower bound is asserted.
    assertGreaterOrEqual(performance.now() - started, sleepMs - 1);
    assertEquals(conn.response, OK_HELLO);
  }),
);

Deno.test(
  "handle() answers 404 with 404.html for an unknown path",
  withDeadline(async () => {
    const conn = new MemoryConn(get("/nowhere"));
    const logs = await handleInMemory(conn);
    assertEquals(conn.response, NOT_FOUND);
    assertMatch(logs[0], /^GET \/nowhere 404 /);
  }),
);

Deno.test(
  "handle() has read from the connection by the time it returns its promise: a promise is eager",
  withDeadline(() => {
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
  }),
);

// ---------------------------------------------------------------------------
// Serial against concurrent, on real sockets

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
  Deno.test(
    name,
    withDeadline(async () => {
      // The slow request is slow next to what / takes, so the order cannot be
      // an accident of a busy machine.
      await using server = serveOnFreePort(mode, { sleepMs: 500, ...limit });
      const finished: string[] = [];
      const slowRequest = await sendUntimed(server.addr, get(slow));
      const fast = await sendUntimed(server.addr, get("/"));
      const responses = await Promise.all([
        slowRequest.response.then((text) => (finished.push(slow), text)),
        fast.response.then((response) => (finished.push("/"), response)),
      ]);
      assertEquals(responses, [OK_HELLO, OK_HELLO]);
      assertEquals(finished[0], first);
    }),
  );
}

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test(
    `main.ts in ${mode} mode answers a later / only after an earlier /block`,
    withDeadline(async () => {
      // Work that never awaits holds the only thread, so concurrency is gone.
      // The server runs in a process of its own: spinning in this one would
      // stall the test's clients too, and prove nothing.
      await using server = await startServerProcess([
        mode,
        "--sleep-ms=500",
        "--trace",
      ]);
      const finished: string[] = [];
      const blocking = await sendUntimed(server.addr, get("/block"));
      // /block spins once its head is read: / comes while it spins.
      await waitFor(server.lines, /#1 head: GET \/block$/);
      const fast = await sendUntimed(server.addr, get("/"));
      const responses = await Promise.all([
        blocking.response.then((text) => (finished.push("/block"), text)),
        fast.response.then((response) => (finished.push("/"), response)),
      ]);
      assertEquals(responses, [OK_HELLO, OK_HELLO]);
      assertEquals(finished, ["/block", "/"]);
    }),
  );
}

Deno.test(
  "serve() in concurrent mode answers / while clients stall mid-head, and then answers each 408",
  withDeadline(async () => {
    const stalled = 100;
    // Long enough for all of them and / to be sent before the first 408.
    const headTimeoutMs = 2000;
    await using server = serveOnFreePort("concurrent", { headTimeoutMs });
    const finished: string[] = [];
    const slowClients = [];
    const started = performance.now();
    for (let i = 0; i < stalled; i++) {
      const client = await sendUntimed(server.addr, "GET / HTTP/1.1\r\nHo");
      slowClients.push(client.response.then((response) => {
        finished.push("stalled");
        return response;
      }));
    }
    const fast = await sendUntimed(server.addr, get("/"));
    assertEquals(await fast.response, OK_HELLO);
    finished.push("/");
    const responses = await Promise.all(slowClients);
    assertWithinSet(performance.now() - started, {
      setMs: headTimeoutMs,
      unsetMs: DEFAULTS.headTimeoutMs,
    }, "the 408s");
    assertEquals(finished.indexOf("/"), 0);
    for (const response of responses) {
      assertEquals(response, statusPage("408 Request Timeout"));
    }
  }),
);

Deno.test(
  "serve() in serial mode is held by an idle connection only until the head timeout",
  withDeadline(async () => {
    // A browser's speculative preconnect: a connection that sends nothing.
    const headTimeoutMs = 300;
    await using server = serveOnFreePort("serial", { headTimeoutMs });
    const finished: string[] = [];
    const idle = await sendUntimed(server.addr, "");
    const idleAnswer = idle.response.then((
      response,
    ) => (finished.push("idle"), response));
    const started = performance.now();
    const fast = await sendUntimed(server.addr, get("/"));
    assertEquals(await fast.response, OK_HELLO);
    finished.push("/");
    // Closed without a 408, which could cross a request the browser sends
    // on its spare connection just then.
    assertEquals(await idleAnswer, "");
    assertEquals(finished, ["idle", "/"]);
    // Held for the head timeout, not for ever, nor for the default's.
    assertWithinSet(performance.now() - started, {
      setMs: headTimeoutMs,
      unsetMs: DEFAULTS.headTimeoutMs,
    });
  }),
);
