/**
 * The cures for /block: /block-sliced spins in slices with an await of a
 * timer between them, /block-worker spins in a Worker of its own. In
 * concurrent mode / is answered while either runs, where /block holds it
 * (main_test.ts); in serial mode / still waits, since the loop awaits the
 * request whatever its thread does. And each cure is owned by its request:
 * a dropped request ends it, and a Worker that cannot start gets a 503.
 */

import { assert, assertEquals, assertLess, assertMatch } from "@std/assert";
import { startServerProcess } from "../tools/server_process.ts";
import {
  get,
  handleInMemory,
  MemoryConn,
  OK_HELLO,
  sendUntimed,
  statusPage,
} from "./testing.ts";
import { waitFor, withDeadline } from "./waiting.ts";

const CURES = ["/block-sliced", "/block-worker"] as const;

/** The middle of `values`, which has an odd count. */
const median = (values: number[]) =>
  values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)];

// ---------------------------------------------------------------------------
// As a process of its own, so that spinning there stalls no client here

for (const cure of CURES) {
  Deno.test(
    `main.ts in concurrent mode answers / within 50 ms (median of 5) while ${cure} runs`,
    withDeadline(async () => {
      // The cure's time: enough for five / on a busy machine (the order
      // below says so), and no more, since its length is not the subject.
      const sleepMs = 1500;
      await using server = await startServerProcess([
        "concurrent",
        `--sleep-ms=${sleepMs}`,
        "--trace",
      ]);
      const finished: string[] = [];
      const curing = await sendUntimed(server.addr, get(cure));
      const cured = curing.response.then((text) => (finished.push(cure), text));
      // The cure's work starts once its head is read: / comes meanwhile.
      await waitFor(server.lines, new RegExp(`#1 head: GET ${cure}$`));
      const waits: number[] = [];
      for (let i = 0; i < 5; i++) {
        const sent = performance.now();
        const { response } = await sendUntimed(server.addr, get("/"));
        assertEquals(await response, OK_HELLO);
        waits.push(performance.now() - sent);
        finished.push("/");
      }
      assertEquals(await cured, OK_HELLO);
      // All five within the cure's time, whatever the machine; the median
      // is the figure.
      assertEquals(finished, ["/", "/", "/", "/", "/", cure]);
      assertLess(median(waits), 50, `waits: ${waits.map(Math.round)} ms`);
    }),
  );

  Deno.test(
    `main.ts in serial mode answers a later / only after an earlier ${cure}`,
    withDeadline(async () => {
      // The cure frees the thread, not the loop: it awaits the request.
      await using server = await startServerProcess([
        "serial",
        "--sleep-ms=500",
        "--trace",
      ]);
      const finished: string[] = [];
      const curing = await sendUntimed(server.addr, get(cure));
      await waitFor(server.lines, new RegExp(`#1 head: GET ${cure}$`));
      const fast = await sendUntimed(server.addr, get("/"));
      const responses = await Promise.all([
        curing.response.then((text) => (finished.push(cure), text)),
        fast.response.then((text) => (finished.push("/"), text)),
      ]);
      assertEquals(responses, [OK_HELLO, OK_HELLO]);
      assertEquals(finished, [cure, "/"]);
    }),
  );
}

// ---------------------------------------------------------------------------
// handle() on an in-memory connection: what each cure starts, it ends

/**
 * Runs `fn` with `globalThis.Worker` replaced by a subclass that counts the
 * Workers started and terminated, or by `replacement`; puts it back after.
 */
async function withWorkers(
  fn: (counts: { started: number; terminated: number }) => Promise<void>,
  replacement?: typeof Worker,
): Promise<void> {
  const original = globalThis.Worker;
  const counts = { started: 0, terminated: 0 };
  globalThis.Worker = replacement ?? class extends original {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      counts.started++;
    }
    override terminate() {
      counts.terminated++;
      super.terminate();
    }
  };
  try {
    await fn(counts);
  } finally {
    globalThis.Worker = original;
  }
}

Deno.test(
  "handle() answers /block-worker from a Worker that it terminates once answered",
  withDeadline(() =>
    withWorkers(async (counts) => {
      const conn = new MemoryConn(get("/block-worker"));
      const logs = await handleInMemory(conn, { sleepMs: 20 });
      assertEquals(conn.response, OK_HELLO);
      assertMatch(logs[0], /^GET \/block-worker 200 /);
      assertEquals(counts, { started: 1, terminated: 1 });
    })
  ),
);

Deno.test(
  "handle() terminates /block-worker's Worker when the request is dropped",
  withDeadline(() =>
    withWorkers(async (counts) => {
      const drop = new AbortController();
      const conn = new MemoryConn(get("/block-worker"));
      const handling = handleInMemory(conn, {
        sleepMs: 60_000,
        drop: drop.signal,
      });
      await waitFor(() => counts.started === 1, "a Worker started");
      drop.abort("a test");
      const logs = await handling;
      assertMatch(logs[0], /^GET \/block-worker dropped before it was done /);
      assert(conn.closed);
      assertEquals(conn.response, "");
      assertEquals(counts, { started: 1, terminated: 1 });
    })
  ),
);

Deno.test(
  "handle() answers /block-worker with 503 where no Worker can start",
  withDeadline(() =>
    withWorkers(
      async () => {
        const conn = new MemoryConn(get("/block-worker"));
        const logs = await handleInMemory(conn);
        assertEquals(conn.response, statusPage("503 Service Unavailable"));
        assertMatch(logs[0], /^GET \/block-worker 503 /);
      },
      class {
        constructor() {
          throw new Deno.errors.NotCapable("Requires worker permission");
        }
      } as unknown as typeof Worker,
    )
  ),
);

Deno.test(
  "handle() ends /block-sliced between two slices when the request is dropped",
  withDeadline(async () => {
    const drop = new AbortController();
    const conn = new MemoryConn(get("/block-sliced"));
    const handling = handleInMemory(conn, {
      sleepMs: 60_000,
      drop: drop.signal,
    });
    // This wait's own timer fires between two slices, or never.
    await waitFor(() => conn.unread === 0, "the request read");
    drop.abort("a test");
    const logs = await handling;
    assertMatch(logs[0], /^GET \/block-sliced dropped before it was done /);
    assertEquals(conn.response, "");
  }),
);
