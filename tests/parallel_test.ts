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
import { delay } from "@std/async";
import { DEFAULTS } from "../main.ts";
import { type Address, send } from "../tools/clients.ts";
import {
  folder,
  mainCommand,
  mainInFolder,
  type ServerProcess,
  spawnServer,
  startServerProcess,
} from "../tools/server_process.ts";
import {
  assertRefused,
  CONCURRENT_TRACE,
  get,
  hello,
  OK_HELLO,
  sendUntimed,
  serverTimingOf,
  statusPage,
} from "./testing.ts";
import { assertWithinSet, waitFor, withDeadline } from "./waiting.ts";

const decoder = new TextDecoder();

/**
 * Parallel mode puts every worker's listener on one port with Deno's
 * reusePort (SO_REUSEPORT), which Deno supports on Linux only: elsewhere
 * these tests are ignored.
 */
const ignore = Deno.build.os !== "linux";

/** Starts main.ts in parallel mode, two workers unless `args` say. */
function startParallel(args: string[]) {
  return startServerProcess(["parallel", "--workers=2", ...args], {
    denoFlags: ["--unstable-net"],
  });
}

/** `count` requests for `path` at once, each on a connection of its own. */
async function sendMany(addr: Address, path: string, count: number) {
  const sent = await Promise.all(
    Array.from({ length: count }, () => sendUntimed(addr, get(path))),
  );
  return sent.map(({ response }) => response);
}

/** Waits until `server`, run with --trace, has read `count` heads of `path`. */
function headsRead(server: ServerProcess, path: string, count: number) {
  const head = new RegExp(` #\\d+ head: GET ${path}$`);
  return waitFor(
    () => server.lines.filter((line) => head.test(line)).length >= count,
    `${count} heads of ${path} read`,
  );
}

Deno.test({
  name:
    "main.ts parallel short of --unstable-net or a permission names one command with all it needs, and that command starts it",
  ignore,
  fn: withDeadline(async (t) => {
    const unstable =
      "Parallel mode needs --unstable-net, for Deno.listen's reusePort";
    for (
      const [name, flags, why, command] of [
        [
          "nothing at all, as a newcomer runs it",
          [],
          `${unstable}, and permission to read the pages and main.ts and listen on 127.0.0.1:0`,
          "deno run --unstable-net --allow-net=127.0.0.1 --allow-read=. main.ts parallel --port=0",
        ],
        [
          "both permissions, no --unstable-net",
          ["--allow-net=127.0.0.1", "--allow-read=."],
          unstable,
          "deno run --unstable-net --allow-net=127.0.0.1 --allow-read=. main.ts parallel --port=0",
        ],
        [
          "read permission for main.ts",
          [
            "--unstable-net",
            "--allow-net=127.0.0.1",
            "--allow-read=hello.html,404.html,lab,probe",
          ],
          "No permission to read the pages and main.ts",
          "deno run --unstable-net --allow-net=127.0.0.1 --allow-read=. main.ts parallel --port=0",
        ],
      ] as const
    ) {
      await t.step(name, async () => {
        const { code, stdout, stderr } = await mainInFolder(flags, [
          "parallel",
          "--port=0",
        ]).output();
        assertEquals(code, 1);
        assertEquals(decoder.decode(stdout), "");
        assertEquals(
          decoder.decode(stderr),
          `error: ${why}; run: ${command}\n`,
        );
        const [deno, ...args] = command.split(" ");
        await using server = await spawnServer(deno, args, { cwd: folder });
        assertEquals(await (await fetch(server.url)).text(), hello);
      });
    }
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode serves from every worker: 100 simultaneous /sleep take about one sleep, and 4xx as in concurrent mode",
  ignore,
  fn: withDeadline(async () => {
    const [sleepMs, headTimeoutMs] = [1000, 500];
    await using main = await startParallel([
      `--sleep-ms=${sleepMs}`,
      `--head-timeout-ms=${headTimeoutMs}`,
    ]);
    assertMatch(
      main.listeningLine,
      /^Listening on .* \(parallel, 2 workers\);/,
    );
    const started = performance.now();
    const responses = await Promise.all(
      await sendMany(main.addr, "/sleep", 100),
    );
    const elapsedMs = performance.now() - started;
    const timed = await (await send(main.addr, get("/"))).response;
    const bad = await (await sendUntimed(main.addr, "GET / HTTP/9\r\n\r\n"))
      .response;
    const stalling = performance.now();
    const stalled = await (await sendUntimed(main.addr, "GET / HTTP/1.1\r\nHo"))
      .response;
    const stalledMs = performance.now() - stalling;
    main.kill("SIGTERM");
    for (const response of responses) assertEquals(response, OK_HELLO);
    // One sleep, not a hundred, nor the default's.
    assertGreaterOrEqual(elapsedMs, sleepMs);
    assertWithinSet(elapsedMs, { setMs: sleepMs, unsetMs: DEFAULTS.sleepMs });
    assertEquals(bad, statusPage("400 Bad Request"));
    assertEquals(stalled, statusPage("408 Request Timeout"));
    assertWithinSet(stalledMs, {
      setMs: headTimeoutMs,
      unsetMs: DEFAULTS.headTimeoutMs,
    }, "the 408");
    const metrics = serverTimingOf(timed);
    assertEquals(metrics?.mode?.desc, "parallel", timed);
    assertMatch(metrics?.worker?.desc ?? "", /^[12]$/, timed);
    assertMatch(metrics?.handle?.dur ?? "", /^\d+\.\d$/, timed);
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
    await using main = await startParallel(["--sleep-ms=3000", "--trace"]);
    const count = 100;
    let blockAnsweredAt = Infinity;
    const answeredAt: number[] = [];
    const blocking = (await sendUntimed(main.addr, get("/block"))).response
      .then((response) => (blockAnsweredAt = performance.now(), response));
    // /block spins once its head is read: the / come while it spins.
    await headsRead(main, "/block", 1);
    const responses = (await sendMany(main.addr, "/", count)).map((response) =>
      response.then((text) => (answeredAt.push(performance.now()), text))
    );
    assertEquals(await blocking, OK_HELLO);
    for (const response of await Promise.all(responses)) {
      assertEquals(response, OK_HELLO);
    }
    main.kill("SIGTERM");
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
    await using main = await startParallel(["--sleep-ms=2000", "--trace"]);
    // Thirty, so that each worker surely gets some (all on one: 1 in 10^9).
    const responses = await sendMany(main.addr, "/sleep", 30);
    await headsRead(main, "/sleep", 30);
    main.kill("SIGTERM");
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
    for (const worker of [1, 2]) {
      const done = new RegExp(`worker ${worker}: #\\d+ done: GET /sleep 200`);
      assertMatch(output.slice(stopping), done);
    }
    assertMatch(output, /Stopped\n$/);
    await assertRefused(main.addr);
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode on a second SIGTERM drops what is in flight, says how many on each worker, and exits 130",
  ignore,
  fn: withDeadline(async () => {
    await using main = await startParallel(["--sleep-ms=60000", "--trace"]);
    const responses = await sendMany(main.addr, "/sleep", 10);
    await headsRead(main, "/sleep", 10);
    main.kill("SIGTERM");
    await waitFor(main.lines, /Stopping on SIGTERM/);
    // Time is the subject: a second SIGTERM within half a second counts as
    // the same one (a terminal's Ctrl-C can arrive twice); this one is later.
    await delay(1000);
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
  fn: withDeadline(async (t) => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await using first = await startParallel([]);
    for (
      const [user, port] of [
        ["a listener", taken.addr.port],
        ["a parallel server", first.port],
      ] as const
    ) {
      await t.step(`in use by ${user}`, async () => {
        const { code, stdout, stderr } = await mainCommand(
          ["parallel", "--workers=2", `--port=${port}`],
          { denoFlags: ["--unstable-net"] },
        ).output();
        assertEquals(code, 1);
        assertEquals(decoder.decode(stdout), "");
        assertEquals(
          decoder.decode(stderr),
          `error: Address 127.0.0.1:${port} is already in use; stop what uses it or choose another --port\n`,
        );
      });
    }
    // The first server still gets every connection.
    assertEquals(
      await (await sendUntimed(first.addr, get("/"))).response,
      OK_HELLO,
    );
    first.kill("SIGTERM");
    assertEquals((await first.exited()).code, 0);
  }),
});

Deno.test({
  name: "main.ts parallel with one worker says so in the singular",
  ignore,
  fn: withDeadline(async () => {
    await using main = await startParallel(["--workers=1"]);
    main.kill("SIGTERM");
    assertMatch(main.listeningLine, /\(parallel, 1 worker\);/);
    assertEquals((await main.exited()).code, 0);
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode with --trace: a worker accepts, reads and answers / while its /sleep sleeps",
  ignore,
  fn: withDeadline(async () => {
    await using main = await startParallel([
      "--workers=1",
      "--trace",
      "--sleep-ms=1000",
    ]);
    const sleeping = await sendUntimed(main.addr, get("/sleep"));
    await headsRead(main, "/sleep", 1);
    const answer = await sendUntimed(main.addr, get("/"));
    await Promise.all([sleeping.response, answer.response]);
    main.kill("SIGTERM");
    const { code, output } = await main.exited();
    assertEquals(code, 0, output);
    const traced = [...output.matchAll(/ worker 1: (#.*?)(?: \(\d+ ms\))?\n/g)]
      .map(([, event]) => event);
    assertEquals(traced, CONCURRENT_TRACE);
  }),
});

Deno.test({
  name:
    "main.ts in parallel mode logs a request whose line starts with Stopping, as any other",
  ignore,
  fn: withDeadline(async () => {
    await using main = await startParallel(["--workers=1"]);
    const { response } = await sendUntimed(
      main.addr,
      "Stopping / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assertEquals(await response, statusPage("501 Not Implemented"));
    main.kill("SIGTERM");
    const { code, output } = await main.exited();
    assertEquals(code, 0, output);
    assertMatch(output, /\n[\d:.]+ worker 1: Stopping \/ 501 \(\d+ ms\)\n/);
  }),
});
