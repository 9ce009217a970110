/**
 * main.ts in parallel mode: the concurrent loop in a worker thread per CPU,
 * all listening on one port.
 */

import {
  assertEquals,
  assertGreaterOrEqual,
  assertLess,
  assertMatch,
  assertNotMatch,
} from "@std/assert";
import { type Address, send as sendTimed } from "./clients.ts";
import {
  assertRefused,
  delay,
  folder,
  get,
  mainCommand,
  OK_HELLO,
  send,
  spawnMain,
  statusPage,
  withDeadline,
} from "./testing.ts";

const decoder = new TextDecoder();

/**
 * Parallel mode puts every worker's listener on one port with Deno's
 * reusePort (SO_REUSEPORT), which Deno supports on Linux only: elsewhere
 * these tests are ignored.
 */
const ignore = Deno.build.os !== "linux";

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

Deno.test({
  name:
    "main.ts parallel says in one line what to add when --unstable-net is missing or it cannot read main.ts, and exits 1",
  ignore,
  fn: withDeadline(async () => {
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
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode serves from every worker: 100 simultaneous /sleep take about one sleep, and 4xx as in concurrent mode",
  ignore,
  fn: withDeadline(async () => {
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
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode: /block stalls only the worker that runs it, and the other answers at once",
  ignore,
  fn: withDeadline(async () => {
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
    assertGreaterOrEqual(
      fast,
      count / 4,
      `${fast} of ${count} answered at once`,
    );
    assertLess(
      fast,
      count,
      "none waited: the blocked worker got no connection",
    );
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode on SIGTERM lets a /sleep in flight on every worker finish, exits 0 and frees the port",
  ignore,
  fn: withDeadline(async () => {
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
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode on a second SIGTERM drops what is in flight, says how many on each worker, and exits 130",
  ignore,
  fn: withDeadline(async () => {
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
  }),
});

Deno.test({
  name:
    "main.ts parallel refuses a port in use, by another parallel server too, in one line with exit 1",
  ignore,
  fn: withDeadline(async () => {
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
  }),
});

Deno.test({
  name: "main.ts parallel with one worker says so in the singular",
  ignore,
  fn: withDeadline(async () => {
    const main = await spawnMain(
      ["parallel", "--workers=1", "--port=0"],
      { unstableNet: true },
    );
    main.kill("SIGTERM");
    assertMatch(main.firstLine, /\(parallel, 1 worker\);/);
    assertEquals((await main.exited()).code, 0);
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode with --trace: a worker accepts, reads and answers / while its /sleep sleeps",
  ignore,
  fn: withDeadline(async () => {
    const main = await spawnMain(
      ["parallel", "--workers=1", "--port=0", "--trace", "--sleep-ms=1000"],
      { unstableNet: true },
    );
    const addr = { hostname: "127.0.0.1", port: main.port };
    try {
      const sleeping = await send(addr, get("/sleep"));
      await delay(200); // for /sleep to be accepted and read first
      const answer = await send(addr, get("/"));
      await Promise.all([sleeping.response, answer.response]);
    } finally {
      main.kill("SIGTERM");
    }
    const { code, output } = await main.exited();
    assertEquals(code, 0, output);
    const traced = [...output.matchAll(/ worker 1: (#.*?)(?: \(\d+ ms\))?\n/g)]
      .map(([, event]) => event);
    assertEquals(traced, [
      "#1 accepted",
      "#1 head: GET /sleep",
      "#2 accepted",
      "#2 head: GET /",
      "#2 done: GET / 200",
      "#1 done: GET /sleep 200",
    ]);
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode logs a request whose line starts with Stopping, as any other",
  ignore,
  fn: withDeadline(async () => {
    const main = await spawnMain(
      ["parallel", "--workers=1", "--port=0"],
      { unstableNet: true },
    );
    const addr = { hostname: "127.0.0.1", port: main.port };
    try {
      const { response } = await send(
        addr,
        "Stopping / HTTP/1.1\r\nHost: x\r\n\r\n",
      );
      assertEquals(await response, statusPage("501 Not Implemented"));
    } finally {
      main.kill("SIGTERM");
    }
    const { code, output } = await main.exited();
    assertEquals(code, 0, output);
    assertMatch(output, /\n[\d:.]+ worker 1: Stopping \/ 501 \(\d+ ms\)\n/);
  }),
});
