/**
 * probe() against servers whose answer is known: main.ts in each mode and
 * with a limit, small_server.ts as written and with its serial `await`
 * deleted, small_deno_serve.ts's /block, and servers written here for what
 * people run: one that refuses beyond two, a pool of three that idle
 * connections fill, a lock around the slow route, a streamed slow route,
 * every page slow, no slow route. Then what it promises a learner: it is
 * gentle with their server and ends in bounded time. The real servers
 * nobody here wrote are in probe_servers_test.ts, the command line in
 * probe_cli_test.ts, and what it makes of its figures, without a network,
 * in verdict_test.ts.
 *
 * The slow routes take 1 s or less and the probes try few at once, so the
 * whole file stays quick; every verdict is read from the order of answers,
 * not from how long they took.
 */

import {
  assert,
  assertEquals,
  assertLess,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { delay } from "@std/async";
import { probe, PROBE_DEFAULTS } from "./probe.ts";
import { get, sendUntimed } from "../tests/testing.ts";
import {
  allAtOnce,
  type Expected,
  expectProbe,
  SERIAL,
} from "../tests/probing.ts";
import {
  type ServerProcess,
  startServerProcess,
} from "../tools/server_process.ts";
import { scratchCopy } from "../tests/scratch.ts";
import { waitFor, withDeadline } from "../tests/waiting.ts";

/** Fewer than probe.ts's default, to keep the file quick: enough to see pools of 4. */
const MAX = 6;

const serial = SERIAL;
const concurrent = allAtOnce(MAX);

/** Probes a server process, with its log in the message of a mismatch. */
const expectServer = (server: ServerProcess, expected: Expected, max = MAX) =>
  expectProbe(server.url, expected, { max }, server.lines);

/**
 * Serves `handler` on a free port of this process, for as long as `use`
 * runs, and shuts it down after.
 */
async function serving(
  handler: (request: Request) => Response | Promise<Response>,
  use: (url: string) => Promise<void>,
) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  try {
    await use(`http://127.0.0.1:${server.addr.port}/`);
  } finally {
    await server.shutdown();
  }
}

Deno.test(
  "probe() finds main.ts serial one at a time, held by an idle connection: the loop waits",
  withDeadline(async () => {
    await using server = await startServerProcess([
      "serial",
      "--sleep-ms=1000",
    ]);
    const found = await expectServer(server, serial);
    assert(found.slowMs! >= 1000, `slowMs ${found.slowMs}`);
    assertStringIncludes(found.meaning[0], "`void handle(conn)`");
  }),
);

Deno.test(
  "probe() finds main.ts concurrent serving all it tried at once",
  withDeadline(async () => {
    await using server = await startServerProcess(
      ["concurrent", "--sleep-ms=1000", "--quiet"],
    );
    await expectServer(server, concurrent);
  }),
);

for (const n of [2, 3, 4]) {
  Deno.test(
    `probe() finds main.ts --max-in-flight=${n} a pool of ${n}, which ${n} idle connections fill`,
    withDeadline(async () => {
      await using server = await startServerProcess(
        ["concurrent", "--sleep-ms=1000", `--max-in-flight=${n}`, "--quiet"],
      );
      const found = await expectServer(server, {
        verdict: "pool",
        atOnce: n,
        atLeast: false,
        refused: 0,
        slowAtOnce: n,
        idleHolds: true,
      });
      // It checked with as many idle connections as the pool's size:
      // main.ts counts open connections, so they fill it.
      const quiet = found.requests.filter((r) => r.kind === "idle");
      assertEquals(quiet.length, n);
    }),
  );
}

Deno.test(
  "probe() finds small_deno_serve.ts's /block one at a time while idle connections hold nothing: handling blocks",
  withDeadline(async () => {
    await using server = await startServerProcess(["--sleep-ms=500"], {
      script: new URL("../small_deno_serve.ts", import.meta.url).href,
    });
    const found = await expectProbe(
      server.url,
      {
        ...serial,
        idleHolds: false,
      },
      { slow: "/block", max: MAX },
      server.lines,
    );
    assertStringIncludes(
      found.meaning[0],
      "A change to the loop will not help",
    );
    assertStringIncludes(found.meaning[0], "/block-sliced");
  }),
);

/**
 * Starts a copy of small_server.ts, whose /sleep takes 1 s instead of 5,
 * changed further by `edit`, in a folder with the two pages it reads.
 */
async function startSmallServer(
  mode: "serial" | "concurrent",
  edit: (source: string) => string = (source) => source,
): Promise<ServerProcess> {
  const copy = await scratchCopy(
    ["small_server.ts", "hello.html", "404.html"],
    {
      "small_server.ts": (source) =>
        edit(
          source.replace(
            "setTimeout(resolve, 5000)",
            "setTimeout(resolve, 1000)",
          ),
        ),
    },
  );
  try {
    const server = await startServerProcess([mode], {
      script: copy.url("small_server.ts"),
      allowRead: copy.folder,
    });
    return {
      ...server,
      async [Symbol.asyncDispose]() {
        await server[Symbol.asyncDispose]();
        await copy[Symbol.asyncDispose]();
      },
    };
  } catch (error) {
    await copy[Symbol.asyncDispose]();
    throw error;
  }
}

Deno.test(
  "probe() finds small_server.ts serial one at a time, held by an idle connection",
  withDeadline(async () => {
    await using server = await startSmallServer("serial");
    await expectServer(server, serial);
  }),
);

Deno.test(
  "probe() finds small_server.ts concurrent serving all it tried at once",
  withDeadline(async () => {
    await using server = await startSmallServer("concurrent");
    await expectServer(server, concurrent);
  }),
);

Deno.test(
  "probe() finds small_server.ts serial with its await deleted serving all at once",
  withDeadline(async () => {
    const awaited = "    await handle(conn); // the loop waits";
    await using server = await startSmallServer("serial", (source) => {
      assert(source.includes(awaited), "small_server.ts changed its await");
      return source.replace(awaited, "    handle(conn); // the loop waits");
    });
    await expectServer(server, concurrent);
  }),
);

Deno.test(
  "probe() finds Deno.serve without a slow route unknown, and asks for one",
  withDeadline(async () => {
    await using server = await startServerProcess([], {
      script: new URL("../tools/deno_serve.ts", import.meta.url).href,
    });
    const progress: string[] = [];
    const found = await expectProbe(
      server.url,
      {
        verdict: "unknown",
        atOnce: null,
        method: "idle",
        idleHolds: false,
      },
      { max: MAX, onProgress: (line) => progress.push(line) },
      server.lines,
    );
    assertMatch(found.sentence, /--slow=PATH\.$/);
    // Its progress counts them as English does: one, then more.
    const counted = progress.join("\n");
    assertMatch(counted, /^1 connection that sends nothing open: /m);
    assertMatch(counted, /^2 connections that send nothing open: /m);
  }),
);

Deno.test(
  "probe() reads a slow answer's end from its last byte, not from a close that comes after the next answer",
  withDeadline(async () => {
    // One connection at a time, to its end, except that a /sleep answer,
    // framed by its close, is closed 20 ms after the next connection was
    // served: as php -S's close was sometimes read after the next answer.
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const encoder = new TextEncoder();
    const closing = new Set<ReturnType<typeof setTimeout>>();
    /** Closes `conn` once, at the first of the times asked. */
    const closer = (conn: Deno.Conn) => {
      let closed = false;
      return (ms: number) => {
        const timer = setTimeout(() => {
          closing.delete(timer);
          if (!closed) conn.close();
          closed = true;
        }, ms);
        closing.add(timer);
      };
    };
    const serving = (async () => {
      let slept: ((ms: number) => void) | undefined;
      for await (const conn of listener) {
        const buffer = new Uint8Array(4096);
        let head = "";
        while (!head.includes("\r\n\r\n")) {
          const n = await conn.read(buffer).catch(() => null);
          if (n === null) break;
          head += new TextDecoder().decode(buffer.subarray(0, n));
        }
        const before = slept;
        slept = undefined;
        if (head.startsWith("GET /sleep ")) {
          await delay(500);
          await conn.write(encoder.encode("HTTP/1.1 200 OK\r\n\r\nslept"));
          slept = closer(conn);
          // Unless another connection comes first.
          slept(100);
        } else {
          await conn.write(encoder.encode(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
          )).catch(() => {});
          conn.close();
        }
        before?.(20);
      }
    })();
    const found = await expectProbe(
      `http://127.0.0.1:${listener.addr.port}/`,
      { verdict: "serial", atOnce: 1, atLeast: false, idleHolds: true },
      { max: 4, idleMs: 500 },
    );
    assertMatch(
      found.sentence,
      /^One at a time: .* after the \/sleep ended\.$/,
    );
    listener.close();
    await serving.catch(() => {});
    await waitFor(() => closing.size === 0, "the late closes made");
  }),
);

Deno.test(
  "probe() finds a server that serves 2 at once and answers 503 beyond a pool of 2 that refuses",
  withDeadline(async () => {
    let inFlight = 0;
    await serving(async (request) => {
      if (inFlight >= 2) return new Response("busy", { status: 503 });
      inFlight++;
      try {
        if (new URL(request.url).pathname === "/sleep") await delay(500);
        return new Response("hi");
      } finally {
        inFlight--;
      }
    }, async (url) => {
      const found = await expectProbe(url, {
        verdict: "pool",
        atOnce: 2,
        refused: 1,
      }, { max: 4 });
      assertMatch(found.sentence, /refusing the rest.*refused with 503/);
    });
  }),
);

Deno.test(
  "probe() finds a pool of 3 that serves each connection to its end filled by 3 idle connections",
  withDeadline(async () => {
    // Three workers, each taking a connection and serving it to its end,
    // as a pool of threads does: an idle connection takes a worker.
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const waiting: Deno.Conn[] = [];
    const wake: (() => void)[] = [];
    const serveOne = async (conn: Deno.Conn) => {
      const buffer = new Uint8Array(4096);
      let head = "";
      try {
        while (!head.includes("\r\n\r\n")) {
          const n = await conn.read(buffer);
          if (n === null) return;
          head += new TextDecoder().decode(buffer.subarray(0, n));
        }
        if (head.startsWith("GET /sleep ")) await delay(500);
        await conn.write(new TextEncoder().encode(
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        ));
      } catch {
        // The probe closed it: the next connection may come.
      } finally {
        conn.close();
      }
    };
    const worker = async () => {
      for (;;) {
        const conn = waiting.shift() ??
          await new Promise<Deno.Conn | undefined>((resolve) =>
            wake.push(() => resolve(waiting.shift()))
          );
        if (!conn) return;
        await serveOne(conn);
      }
    };
    const workers = [worker(), worker(), worker()];
    const accepting = (async () => {
      for await (const conn of listener) {
        waiting.push(conn);
        wake.shift()?.();
      }
    })();
    const found = await expectProbe(
      `http://127.0.0.1:${listener.addr.port}/`,
      { verdict: "pool", atOnce: 3, idleHolds: true },
      { max: 4, idleMs: 500 },
    );
    assertStringIncludes(
      found.meaning[0],
      "3 connections that send nothing fill it",
    );
    listener.close();
    await accepting.catch(() => {});
    while (wake.length) wake.shift()!();
    await Promise.all(workers);
  }),
);

Deno.test(
  "probe() finds a lock around the slow route: all at once, the slow ones one at a time, none left queued",
  withDeadline(async () => {
    let lock = Promise.resolve();
    let [started, done] = [0, 0];
    await serving(async (request) => {
      if (new URL(request.url).pathname !== "/sleep") return new Response("hi");
      started++;
      const turn = lock.then(() => delay(300));
      lock = turn;
      await turn;
      done++;
      return new Response("slept");
    }, async (url) => {
      const found = await expectProbe(url, {
        verdict: "concurrent",
        atOnce: 4,
        slowAtOnce: 1,
      }, { max: 4 });
      assertStringIncludes(found.sentence, "served one at a time");
      assertEquals(done, started, "queued /sleep left behind");
    });
  }),
);

Deno.test(
  "probe() times a streamed slow route to its last byte",
  withDeadline(async () => {
    await serving((request) => {
      if (new URL(request.url).pathname !== "/stream") {
        return new Response("hi");
      }
      const encoder = new TextEncoder();
      let timer: ReturnType<typeof setTimeout>;
      return new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(encoder.encode("started\n"));
            timer = setTimeout(() => {
              controller.enqueue(encoder.encode("done\n"));
              controller.close();
            }, 500);
          },
          cancel: () => clearTimeout(timer),
        }),
      );
    }, async (url) => {
      const found = await expectProbe(url, {
        verdict: "concurrent",
        atOnce: 3,
        method: "slow",
      }, { slow: "/stream", max: 3 });
      assert(found.slowMs! >= 500, `slowMs ${found.slowMs}`);
    });
  }),
);

Deno.test(
  "probe() finds a server whose every page is slow unknown, within its time bound",
  withDeadline(async () => {
    await serving(async () => {
      await delay(300);
      return new Response("hi");
    }, async (url) => {
      const found = await expectProbe(url, { verdict: "unknown" });
      assertMatch(
        found.sentence,
        /^Unknown: GET \/ took .* alone.*--fast=PATH\.$/,
      );
      // The fast request alone, the slow one, the fast one once more (its
      // first time may pay for the server's start), and no more.
      assertEquals(found.requests.map((r) => r.kind), ["fast", "slow", "fast"]);
    });
  }),
);

Deno.test(
  "probe() is gentle: every connection gets a whole request, and / answers as before",
  withDeadline(async () => {
    await using server = await startServerProcess([
      "serial",
      "--sleep-ms=1000",
    ]);
    const addr = server.addr;
    const before = await (await sendUntimed(addr, get("/"))).response;
    const found = await probe(server.url, { max: MAX });
    const after = await (await sendUntimed(addr, get("/"))).response;
    assertEquals(after, before);
    // main.ts logs a line per connection once it is closed: one for each
    // of the probe's and the two above, each a request answered, none
    // closed without one.
    const count = found.requests.length + 2;
    await waitFor(() => server.lines.length > count, `${count} lines logged`);
    const logged = server.lines.slice(1);
    assertEquals(logged.length, count, logged.join("\n"));
    for (const line of logged) assertMatch(line, /^\S+ GET \/(sleep)? 200 /);
  }),
);

Deno.test(
  "probe() ends in bounded time against a server that never answers, and says so in one line",
  withDeadline(async () => {
    // Accepts, reads, never writes, and closes only when the client does.
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Promise<void>[] = [];
    const accepting = (async () => {
      for await (const conn of listener) {
        held.push((async () => {
          const buffer = new Uint8Array(1024);
          while (await conn.read(buffer) !== null);
          conn.close();
        })());
      }
    })();
    const started = performance.now();
    const fastLimitMs = 500;
    const error = await assertRejects(() =>
      probe(`http://127.0.0.1:${listener.addr.port}/`, { fastLimitMs })
    );
    // Bounded by the limit it was given, not by its default of 10 s.
    assertLess(performance.now() - started, PROBE_DEFAULTS.fastLimitMs / 2);
    assertMatch((error as Error).message, /^[^\n]+$/);
    listener.close();
    await accepting.catch(() => {});
    await Promise.all(held);
  }),
);
