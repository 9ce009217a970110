/**
 * serve() and handle() as a library: the options they take, clients that
 * leave, stall or fail, and how serve() stops when its signal is aborted.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertNotMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import {
  type Connection,
  DEFAULTS,
  handle,
  type HandleOptions,
  type Pages,
  serve,
  type ServeOptions,
} from "../main.ts";
import { type Address, writeAll } from "../tools/clients.ts";
import {
  assertRefused,
  CONCURRENT_TRACE,
  get,
  handleInMemory,
  MemoryConn,
  NOT_FOUND,
  OK_HELLO,
  pages,
  sendUntimed,
  serveOnFreePort,
} from "./testing.ts";
import { assertWithinSet, waitFor, withDeadline } from "./waiting.ts";

/** The lines that `trace` logs as each connection is done, without "#N done: ". */
const doneLines = (logs: readonly string[]) =>
  logs.flatMap((line) => /^#\d+ done: (.*)$/.exec(line)?.[1] ?? []);

// ---------------------------------------------------------------------------
// Options

Deno.test(
  "handle() and serve() need only the pages (and the mode); the rest defaults",
  withDeadline(async () => {
    const conn = new MemoryConn(get("/nowhere"));
    await handle(conn, { pages, log: () => {} });
    assertEquals(conn.response, NOT_FOUND);

    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const stop = new AbortController();
    const logs: string[] = [];
    const served = serve(listener, {
      mode: "concurrent",
      pages,
      stop: stop.signal,
      log: (line) => logs.push(line),
    });
    const addr = { hostname: "127.0.0.1", port: listener.addr.port };
    const response = await sendUntimed(addr, get("/"));
    assertEquals(await response.response, OK_HELLO);
    stop.abort();
    await served;
    assertEquals(logs.length, 1);
    assertMatch(logs[0], /^GET \/ 200 /);
  }),
);

Deno.test("handle() and serve() ignore no option: an unknown one is refused", async (t) => {
  // A typo, which would otherwise leave the default silently in force.
  const typo = { sleepMS: 10 };
  await t.step("handle()", async () => {
    const conn = new MemoryConn(get("/"));
    await assertRejects(
      async () => await handle(conn, { pages, ...typo } as HandleOptions),
      TypeError,
      'handle() has no option "sleepMS"; did you mean sleepMs?',
    );
    assertEquals(conn.unread, get("/").length, "it read before it checked");
    assert(conn.closed, "a detached call would leak the connection");
  });
  await t.step("serve()", async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await assertRejects(
      () => serve(listener, { mode: "serial", pages, ...typo } as ServeOptions),
      TypeError,
      'serve() has no option "sleepMS"',
    );
  });
});

Deno.test("handle() rejects options that make no sense, and closes the connection unread", async (t) => {
  const bad: [Record<string, unknown>, ErrorConstructor, string][] = [
    [
      { pages: undefined },
      TypeError,
      "pages.hello must be a Uint8Array; see loadPages()",
    ],
    [
      { maxHeadBytes: NaN },
      TypeError,
      "maxHeadBytes must be a number, not NaN",
    ],
    [
      { headTimeoutMs: 0 },
      RangeError,
      "headTimeoutMs must be a whole number from 1 to",
    ],
    [
      { graceMs: 10 },
      TypeError,
      "graceMs is an option of serve(), not handle()",
    ],
    [
      { mode: "serial" },
      TypeError,
      "mode is an option of serve(), not handle()",
    ],
    [
      { hostname: "::1" },
      TypeError,
      "hostname is an option of the command line, not handle()",
    ],
    [
      { sendTimeoutMs: Infinity },
      RangeError,
      "sendTimeoutMs must be a whole number from 1 to",
    ],
  ];
  for (const [options, ErrorClass, message] of bad) {
    await t.step(JSON.stringify(options), async () => {
      const conn = new MemoryConn(get("/"));
      await assertRejects(
        // async: a synchronous throw counts as a rejection too.
        async () => await handle(conn, { pages, ...options } as HandleOptions),
        ErrorClass,
        message,
      );
      // Closed, so that a detached call leaks nothing; unread and
      // unanswered, since the mistake is found before reading.
      assert(conn.closed);
      assertEquals(conn.unread, get("/").length, "it read before it checked");
      assertEquals(conn.response, "");
    });
  }
});

Deno.test(
  "serve() rejects options that make no sense, before it accepts anything",
  withDeadline(async (t) => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    // As a script that is not type-checked would pass them.
    const bad: [Record<string, unknown>, ErrorConstructor, string][] = [
      [
        { mode: "parallel" },
        TypeError,
        'mode must be "serial" or "concurrent"',
      ],
      [
        { pages: undefined },
        TypeError,
        "pages.hello must be a Uint8Array; see loadPages()",
      ],
      [
        { headTimeoutMs: -1 },
        RangeError,
        "headTimeoutMs must be a whole number from 1 to",
      ],
      [
        { maxHeadBytes: 0 },
        RangeError,
        "maxHeadBytes must be a whole number from 64 to",
      ],
      [
        { sleepMs: 1.5 },
        RangeError,
        "sleepMs must be a whole number from 0 to",
      ],
      [
        { maxInFlight: 0 },
        RangeError,
        "maxInFlight must be a whole number of at least 1, not 0",
      ],
      [{ graceMs: "10" }, TypeError, 'graceMs must be a number, not "10"'],
      [{ sleepMs: "2000" }, TypeError, 'sleepMs must be a number, not "2000"'],
      [{ quiet: "no" }, TypeError, 'quiet must be a boolean, not "no"'],
      [
        { port: 9000 },
        TypeError,
        "port is an option of the command line, not serve()",
      ],
      [
        { workers: 2 },
        TypeError,
        "workers is an option of the command line, not serve()",
      ],
      [{ sleepMS: 10 }, TypeError, 'serve() has no option "sleepMS"'],
      [{ sleepMs: NaN }, TypeError, "sleepMs must be a number, not NaN"],
    ];
    for (const [options, ErrorClass, message] of bad) {
      await t.step(JSON.stringify(options), async () => {
        await assertRejects(
          () =>
            serve(
              listener,
              { mode: "serial", pages, ...options } as ServeOptions,
            ),
          ErrorClass,
          message,
        );
      });
    }
    // Nothing was lost: the listener is still the caller's, still open, and
    // what it accepts is this client's connection, not one serve() took.
    const accepting = listener.accept();
    using client = await Deno.connect({
      hostname: "127.0.0.1",
      port: listener.addr.port,
    });
    using accepted = await accepting;
    assertEquals(accepted.remoteAddr, client.localAddr);
  }),
);

Deno.test(
  "serve() with quiet logs no line per connection, but still its own events",
  withDeadline(async () => {
    // Not trace, which would turn the lines off too: the reads tell.
    const server = serveOnFreePort(
      "concurrent",
      { quiet: true, graceMs: 0 },
      { recordReads: true },
    );
    assertEquals(
      await (await sendUntimed(server.addr, get("/"))).response,
      OK_HELLO,
    );
    using sleeper = await Deno.connect(server.addr);
    await writeAll(sleeper, get("/sleep"));
    await waitFor(() => server.received[1] === get("/sleep"), "/sleep read");
    await server.stop();
    assertEquals(server.logs, [
      "Dropping 1 request still in flight after the grace period of 0 ms",
    ]);
  }),
);

// ---------------------------------------------------------------------------
// Clients that leave, stall or fail

Deno.test(
  "handle() closes quietly when the client leaves before a whole request",
  withDeadline(async () => {
    const conn = new MemoryConn("GET / HT", { endOfInput: "eof" });
    const logs = await handleInMemory(conn);
    assertEquals(conn.response, "");
    assert(conn.closed);
    assertEquals(logs.length, 1);
    assertMatch(logs[0], /^- closed by the client before a whole request /);
  }),
);

Deno.test(
  "handle() never rejects when the client is gone, and logs one line",
  withDeadline(async () => {
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
  }),
);

Deno.test(
  "handle() never rejects when a read fails, and logs one line",
  withDeadline(async () => {
    const conn = new MemoryConn("GET / HTTP/1.1\r\n", { endOfInput: "eof" });
    const reset = new Deno.errors.ConnectionReset(
      "Connection reset by peer (os error 104)",
    );
    const failingConn: Connection = {
      read: (buffer) =>
        conn.read(buffer).then((n) => n ?? Promise.reject(reset)),
      write: (bytes) => conn.write(bytes),
      close: () => conn.close(),
    };
    const logs: string[] = [];
    await handle(failingConn, {
      pages,
      log: (line) => logs.push(line),
    });
    assert(conn.closed);
    assertEquals(logs.length, 1);
    assertMatch(
      logs[0],
      /^- failed: Connection reset by peer \(os error 104\) \(\d+ ms\)$/,
    );
  }),
);

Deno.test(
  "handle() ends a connection whose write makes no progress for the send timeout, and logs it",
  withDeadline(async () => {
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
    const sendTimeoutMs = 100;
    const started = performance.now();
    await handle(stuck, {
      pages,
      sendTimeoutMs,
      log: (line) => logs.push(line),
    });
    assertWithinSet(performance.now() - started, {
      setMs: sendTimeoutMs,
      unsetMs: DEFAULTS.sendTimeoutMs,
    });
    assert(conn.closed);
    assertMatch(
      logs[0],
      /^GET \/ closed: a write made no progress for the send timeout \(\d+ ms\)$/,
    );
  }),
);

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test(
    `serve() in ${mode} mode keeps serving after clients leave mid-request, during /sleep and before reading`,
    withDeadline(async () => {
      const server = serveOnFreePort(mode, { sleepMs: 200, trace: true });
      try {
        const midRequest = await Deno.connect(server.addr);
        await writeAll(midRequest, "GET /sle");
        midRequest.close();

        const duringSleep = await Deno.connect(server.addr);
        await writeAll(duringSleep, get("/sleep"));
        await waitFor(server.logs, /^#\d+ head: GET \/sleep$/);
        duringSleep.close();

        // Closing with the response unread makes the client's side reset.
        const neverReads = await Deno.connect(server.addr);
        await writeAll(neverReads, get("/"));
        neverReads.close();

        assertEquals(
          await (await sendUntimed(server.addr, get("/"))).response,
          OK_HELLO,
        );
      } finally {
        await server.stop();
      }
      // Four connections: one line each, none with a stack trace.
      const requestLines = doneLines(server.logs);
      assertEquals(requestLines.length, 4, server.logs.join("\n"));
      for (const line of requestLines) assertNotMatch(line, /\n/);
      assertStringIncludes(requestLines.join("\n"), "GET / 200");
    }),
  );
}

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

Deno.test(
  "serve() in serial mode ends a client that never reads after the send timeout, and serves the next",
  withDeadline(async () => {
    const big = bigPages(16 * 1024 * 1024);
    const sendTimeoutMs = 300;
    const server = serveOnFreePort("serial", { pages: big, sendTimeoutMs });
    try {
      const started = performance.now();
      using _stalled = await neverReads(server.addr, get("/"));
      // Accepted first, the stalled client holds the loop in its write until
      // the send timeout.
      const next = await sendUntimed(server.addr, get("/nowhere"));
      assertEquals(await next.response, NOT_FOUND);
      assertWithinSet(performance.now() - started, {
        setMs: sendTimeoutMs,
        unsetMs: DEFAULTS.sendTimeoutMs,
      });
    } finally {
      await server.stop();
    }
    assertMatch(
      server.logs[0],
      /^GET \/ closed: a write made no progress for the send timeout \(\d+ ms\)$/,
    );
    assertMatch(server.logs[1], /^GET \/nowhere 404 /);
  }),
);

// ---------------------------------------------------------------------------
// Stopping

Deno.test(
  "handle() drops the request when its drop signal is aborted, whether it waits for the head or sleeps",
  withDeadline(async (t) => {
    for (
      const [waiting, request, logged] of [
        ["for the head", "GET /", "-"],
        ["in /sleep", get("/sleep"), "GET /sleep"],
      ]
    ) {
      await t.step(waiting, async () => {
        const drop = new AbortController();
        const conn = new MemoryConn(request, { endOfInput: "wait" });
        const handled = handleInMemory(conn, {
          drop: drop.signal,
          headTimeoutMs: 60_000,
          sleepMs: 60_000,
        });
        // All read: handle() now waits for more of the head, or sleeps.
        await waitFor(() => conn.unread === 0, "the request read");
        drop.abort();
        const logs = await handled;
        assert(conn.closed);
        assertEquals(conn.response, "");
        assert(
          logs[0].startsWith(`${logged} dropped before it was done (`),
          logs[0],
        );
      });
    }
  }),
);

Deno.test(
  "serve() stops on abort: lets /sleep finish, then frees the port",
  withDeadline(async () => {
    const server = serveOnFreePort("concurrent", { sleepMs: 300, trace: true });
    const slow = await sendUntimed(server.addr, get("/sleep"));
    await waitFor(server.logs, /^#1 head: GET \/sleep$/);
    await server.stop();
    assertEquals(await slow.response, OK_HELLO);
    await assertRefused(server.addr);
    // The port is free to listen on again.
    Deno.listen(server.addr).close();
  }),
);

Deno.test(
  "serve() on abort closes a connection still waiting for its head, without waiting for the timeout",
  withDeadline(async () => {
    const server = serveOnFreePort("serial", {
      headTimeoutMs: 60_000,
      trace: true,
    });
    const idle = await sendUntimed(server.addr, "GET / HT");
    await waitFor(server.logs, /^#1 accepted$/);
    await server.stop();
    assertEquals(await idle.response, "");
    assertMatch(
      doneLines(server.logs).join("\n"),
      /^- closed at shutdown before a whole request /m,
    );
  }),
);

Deno.test(
  "serve() at the end of the grace period closes every connection, writing or sleeping, and resolves soon after",
  withDeadline(async () => {
    const graceMs = 300;
    const server = serveOnFreePort("concurrent", {
      pages: bigPages(16 * 1024 * 1024),
      sleepMs: 60_000,
      sendTimeoutMs: 60_000,
      graceMs,
      trace: true,
    });
    using _writing = await neverReads(server.addr, get("/"));
    const sleeping = await sendUntimed(server.addr, get("/sleep"));
    // Both heads read: one is being written, the other sleeps.
    await waitFor(server.logs, /^#\d+ head: GET \/$/);
    await waitFor(server.logs, /^#\d+ head: GET \/sleep$/);
    const stopping = performance.now();
    await server.stop();
    // The grace period, not the 60 s that either would take.
    assertWithinSet(performance.now() - stopping, {
      setMs: graceMs,
      unsetMs: DEFAULTS.graceMs,
    });
    assertEquals(await sleeping.response, "");
    assertMatch(
      server.logs.join("\n"),
      /^Dropping 2 requests still in flight after the grace period of 300 ms$/m,
    );
    const logs = doneLines(server.logs).join("\n");
    assertMatch(logs, /^GET \/ dropped before it was done /m);
    assertMatch(logs, /^GET \/sleep dropped before it was done /m);
  }),
);

Deno.test(
  "handle() with a drop signal already aborted drops the request at once, without reading",
  withDeadline(async () => {
    const conn = new MemoryConn(get("/sleep"));
    const logs = await handleInMemory(conn, {
      drop: AbortSignal.abort(),
      sleepMs: 60_000,
    });
    assert(conn.closed);
    assertEquals(conn.response, "");
    assertEquals(logs.length, 1);
    assertMatch(logs[0], /^- dropped before it was done \(\d+ ms\)$/);
  }),
);

// ---------------------------------------------------------------------------
// The loop in the log

/**
 * The lines a server logs with `trace` for a /sleep and a / sent once the
 * /sleep's head is read, without the times.
 */
async function traced(mode: "serial" | "concurrent"): Promise<string[]> {
  const server = serveOnFreePort(mode, { trace: true, sleepMs: 1000 });
  const sleeping = await sendUntimed(server.addr, get("/sleep"));
  await waitFor(server.logs, /^#1 head: GET \/sleep$/);
  const answer = await sendUntimed(server.addr, get("/"));
  await Promise.all([sleeping.response, answer.response]);
  await server.stop();
  return server.logs.map((line) => line.replace(/ \(\d+ ms\)$/, ""));
}

Deno.test(
  "serve() with trace, in serial mode: #2 is accepted only after #1 is done",
  withDeadline(async () => {
    assertEquals(await traced("serial"), [
      "#1 accepted",
      "#1 head: GET /sleep",
      "#1 done: GET /sleep 200",
      "#2 accepted",
      "#2 head: GET /",
      "#2 done: GET / 200",
    ]);
  }),
);

Deno.test(
  "serve() with trace, in concurrent mode: #2 is accepted, read and done while #1 sleeps",
  withDeadline(async () => {
    assertEquals(await traced("concurrent"), CONCURRENT_TRACE);
  }),
);
