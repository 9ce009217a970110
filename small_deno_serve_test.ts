/**
 * small_deno_serve.ts, the lesson on `Deno.serve`, run as a reader runs it:
 * a process of its own on a free port, started by spawnServer() from
 * tools/server_process.ts. There is no mode to choose: `/sleep` does not
 * hold `/`, and `/block` does.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { type Address, send } from "./tools/clients.ts";
import { folder, spawnServer } from "./tools/server_process.ts";
import { assertWithinSet, waitFor, withDeadline } from "./tests/waiting.ts";

const program = `${folder}/small_deno_serve.ts`;
const permissions = ["--allow-net=127.0.0.1", `--allow-read=${folder}`];
/** The sleep it takes without --sleep-ms, as its code says. */
const defaultSleepMs = Number(
  /"sleep-ms": ms = (\d+)/.exec(await Deno.readTextFile(program))?.[1],
);

/** Starts small_deno_serve.ts on a free port with `args`, from `/`. */
function start(args: readonly string[]) {
  // No --quiet: Deno.serve's own "Listening on" line is a log line, and
  // --quiet hides it. From `/`, so that the pages are read beside the file.
  return spawnServer(
    "deno",
    ["run", "--check", ...permissions, program, "--port=0", ...args],
    { cwd: "/" },
  );
}

/**
 * Sends GET `path` on a connection of its own. `Connection: close` asks
 * Deno.serve to close it after the answer, as a one-off client does, so
 * that the whole answer is what it sent before closing.
 */
function get(addr: Address, path: string) {
  return send(
    addr,
    `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
  );
}

/** The order in which `requests` were answered, by their paths. */
async function finishingOrder(
  requests: { path: string; response: Promise<string> }[],
): Promise<string[]> {
  const finished: string[] = [];
  await Promise.all(
    requests.map(({ path, response }) =>
      response.then((answer) => {
        assert(answer.startsWith("HTTP/1.1 200 OK\r\n"), answer);
        finished.push(path);
      })
    ),
  );
  return finished;
}

Deno.test(
  "small_deno_serve.ts answers / while /sleep is still sleeping",
  withDeadline(async () => {
    // A second of sleep: / has all of it to be answered, however busy the
    // machine, and the order below says whether it was.
    await using server = await start(["--sleep-ms=1000"]);
    assertEquals(server.addr.hostname, "127.0.0.1", server.listeningLine);
    // send() resolves once connected and written: /sleep comes first.
    const sleeping = await get(server.addr, "/sleep");
    const root = await get(server.addr, "/");
    const order = await finishingOrder([
      { path: "/sleep", ...sleeping },
      { path: "/", ...root },
    ]);
    assertEquals(order, ["/", "/sleep"]);
  }),
);

Deno.test({
  name:
    "small_deno_serve.ts answers / sent while /block spins only after /block",
  // The only sign that /block has started is the CPU time the server uses,
  // which tools/server_process.ts reads from /proc (Linux).
  ignore: Deno.build.os !== "linux",
  fn: withDeadline(async () => {
    // 4 s: the spin is seen by the CPU time it uses, which a machine busy
    // with other work gives it slowly.
    await using server = await start(["--sleep-ms=4000"]);
    // Once it has answered, the server is idle: the CPU it uses from now
    // on is the spin's.
    await (await get(server.addr, "/")).response;
    const idle = await server.cpuSeconds();
    const blocking = await get(server.addr, "/block");
    // 0.2 s of CPU is a small part of the 4 s spin even with one core
    // kept busy by another process, and far more than an idle server uses.
    await waitFor(
      async () => (await server.cpuSeconds()) - idle >= 0.2,
      "0.2 s of CPU time used by the spin of /block",
    );
    const root = await get(server.addr, "/");
    const order = await finishingOrder([
      { path: "/block", ...blocking },
      { path: "/", ...root },
    ]);
    assertEquals(order, ["/block", "/"]);
  }),
});

Deno.test(
  "small_deno_serve.ts serves hello.html for /, /sleep and /block and 404.html with 404 elsewhere",
  withDeadline(async (t) => {
    const sleepMs = 10;
    await using server = await start([`--sleep-ms=${sleepMs}`]);
    const [hello, notFound] = await Promise.all(
      ["hello.html", "404.html"].map((page) =>
        Deno.readTextFile(`${folder}/${page}`)
      ),
    );
    const cases = [
      { path: "/", status: "200 OK", page: hello },
      { path: "/sleep", status: "200 OK", page: hello },
      { path: "/block", status: "200 OK", page: hello },
      { path: "/elsewhere", status: "404 Not Found", page: notFound },
      { path: "/sleep/", status: "404 Not Found", page: notFound },
    ];
    for (const { path, status, page } of cases) {
      await t.step(`${path}: ${status}`, async () => {
        const started = performance.now();
        const answer = await (await get(server.addr, path)).response;
        // /sleep and /block take --sleep-ms, not the default.
        assertWithinSet(performance.now() - started, {
          setMs: sleepMs,
          unsetMs: defaultSleepMs,
        });
        assert(answer.startsWith(`HTTP/1.1 ${status}\r\n`), answer);
        assert(answer.endsWith(`\r\n\r\n${page}`), answer);
      });
    }
  }),
);

Deno.test(
  "small_deno_serve.ts stops with one line at an argument it does not take or a bad value",
  withDeadline(async (t) => {
    using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const cases = [
      // There is no serial mode to ask for.
      { args: ["serial"], code: 2, says: /^Unknown argument "serial"$/ },
      { args: ["-p", "8080"], code: 2, says: /^Unknown argument "-p"$/ },
      {
        args: ["--sleep-ms=abc"],
        code: 1,
        says: /^Invalid --sleep-ms: abc$/,
      },
      { args: ["--sleep-ms"], code: 1, says: /^Invalid --sleep-ms: true$/ },
      { args: ["--port=abc"], code: 1, says: /^Invalid port: 'abc'$/ },
      {
        args: [`--port=${held.addr.port}`],
        code: 1,
        says: /^Address already in use\b/,
      },
    ];
    for (const { args, code, says } of cases) {
      await t.step(args.join(" "), async () => {
        const output = await new Deno.Command("deno", {
          args: ["run", "--quiet", ...permissions, program, ...args],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const [stdout, stderr] = [output.stdout, output.stderr].map((bytes) =>
          new TextDecoder().decode(bytes)
        );
        assertEquals({ code: output.code, stdout }, { code, stdout: "" });
        // One line, in sentence case, with no stack trace.
        assertMatch(stderr, /^error: [A-Z][^\n]*[^.\n]\n$/);
        assertMatch(stderr.slice("error: ".length, -1), says);
      });
    }
  }),
);
