/**
 * probe.ts against servers whose answer is known: main.ts in each mode and
 * with a limit, small_server.ts as written and with its serial `await`
 * deleted, `Deno.serve`, and Python's own servers, which nobody here wrote
 * (threads, and one at a time). Then what it promises a learner: it is
 * gentle with their server, it ends in bounded time, and a bad input gets
 * one line. What it makes of its figures is tested without a network in
 * probe_verdict_test.ts.
 *
 * The servers sleep 1 s, so the whole file stays quick; every verdict is
 * read from the order of answers, not from how long they took.
 */

import {
  assert,
  assertEquals,
  assertLess,
  assertMatch,
  assertRejects,
} from "@std/assert";
import { probe, type ProbeReport } from "./probe.ts";
import { get, sendUntimed } from "../tests/testing.ts";
import {
  folder,
  mainCommand,
  type ServerProcess,
  spawnServer,
  startServerProcess,
} from "../tools/server_process.ts";
import { waitFor, withDeadline } from "../tests/waiting.ts";

const probeScript = new URL("./probe.ts", import.meta.url).href;
/** Fewer than probe.ts's default, to keep the file quick: enough to see pools of 4. */
const MAX = 6;

/** What a test expects of a server's probe. */
type Expected = Pick<
  ProbeReport,
  "verdict" | "atOnce" | "atLeast" | "method" | "idleHolds"
>;

/** Probes `server` and checks the verdict's fields. */
async function expectProbe(server: ServerProcess, expected: Expected) {
  const found = await probe(server.url, { max: MAX });
  const { verdict, atOnce, atLeast, method, idleHolds } = found;
  assertEquals(
    { verdict, atOnce, atLeast, method, idleHolds },
    expected,
    `${found.sentence}\n${server.lines.join("\n")}`,
  );
  return found;
}

const serial = (method: "slow" | "idle"): Expected => ({
  verdict: "serial",
  atOnce: 1,
  atLeast: false,
  method,
  idleHolds: true,
});
const concurrent = (method: "slow" | "idle"): Expected => ({
  verdict: "concurrent",
  atOnce: MAX,
  atLeast: true,
  method,
  idleHolds: false,
});

Deno.test(
  "probe() finds main.ts serial one at a time, held by an idle connection",
  withDeadline(async () => {
    await using server = await startServerProcess([
      "serial",
      "--sleep-ms=1000",
    ]);
    const found = await expectProbe(server, serial("slow"));
    assert(found.slowMs! >= 1000, `slowMs ${found.slowMs}`);
  }),
);

Deno.test(
  "probe() finds main.ts concurrent serving all it tried at once",
  withDeadline(async () => {
    await using server = await startServerProcess(
      ["concurrent", "--sleep-ms=1000", "--quiet"],
    );
    await expectProbe(server, concurrent("slow"));
  }),
);

for (const n of [2, 3, 4]) {
  Deno.test(
    `probe() finds main.ts --max-in-flight=${n} a pool of ${n}`,
    withDeadline(async () => {
      await using server = await startServerProcess(
        ["concurrent", "--sleep-ms=1000", `--max-in-flight=${n}`, "--quiet"],
      );
      await expectProbe(server, {
        verdict: "pool",
        atOnce: n,
        atLeast: false,
        method: "slow",
        idleHolds: false,
      });
    }),
  );
}

/**
 * Starts a copy of small_server.ts, whose /sleep takes 1 s instead of 5,
 * changed further by `edit`, in a folder with the two pages it reads.
 */
async function startSmallServer(
  mode: "serial" | "concurrent",
  edit: (source: string) => string = (source) => source,
): Promise<ServerProcess> {
  // .chromium/ is the one scratch folder the test task may write to.
  await Deno.mkdir(`${folder}/.chromium`, { recursive: true });
  const copy = await Deno.makeTempDir({ dir: `${folder}/.chromium` });
  const remove = () => Deno.remove(copy, { recursive: true });
  try {
    for (const page of ["hello.html", "404.html"]) {
      await Deno.copyFile(`${folder}/${page}`, `${copy}/${page}`);
    }
    const source = await Deno.readTextFile(`${folder}/small_server.ts`);
    const quick = source.replace(
      "setTimeout(resolve, 5000)",
      "setTimeout(resolve, 1000)",
    );
    assert(quick !== source, "small_server.ts no longer sleeps 5000 ms");
    await Deno.writeTextFile(`${copy}/small_server.ts`, edit(quick));
    const server = await startServerProcess([mode], {
      script: new URL(`file://${copy}/small_server.ts`).href,
      allowRead: copy,
    });
    return {
      ...server,
      async [Symbol.asyncDispose]() {
        await server[Symbol.asyncDispose]();
        await remove();
      },
    };
  } catch (error) {
    await remove();
    throw error;
  }
}

Deno.test(
  "probe() finds small_server.ts serial one at a time, held by an idle connection",
  withDeadline(async () => {
    await using server = await startSmallServer("serial");
    await expectProbe(server, serial("slow"));
  }),
);

Deno.test(
  "probe() finds small_server.ts concurrent serving all it tried at once",
  withDeadline(async () => {
    await using server = await startSmallServer("concurrent");
    await expectProbe(server, concurrent("slow"));
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
    await expectProbe(server, concurrent("slow"));
  }),
);

Deno.test(
  "probe() finds Deno.serve, which has no slow route, serving all at once with idle connections",
  withDeadline(async () => {
    await using server = await startServerProcess([], {
      script: new URL("../tools/deno_serve.ts", import.meta.url).href,
    });
    await expectProbe(server, concurrent("idle"));
  }),
);

/**
 * Whether python3 may run: the test task allows it by the path that
 * allow_programs.ts finds, and a machine without it ignores its tests.
 */
const noPython =
  Deno.permissions.querySync({ name: "run", command: "python3" }).state !==
    "granted";

/** Python's http.server with `serverClass`, on a free port. */
function startPython(serverClass: "ThreadingHTTPServer" | "HTTPServer") {
  const program = [
    "import http.server as h",
    `s = h.${serverClass}(("127.0.0.1", 0), h.SimpleHTTPRequestHandler)`,
    `print(f"Listening on http://127.0.0.1:{s.server_port}/ (python)", flush=True)`,
    "s.serve_forever()",
  ].join("\n");
  // It serves the files of the folder it runs in: the project's.
  return spawnServer("python3", ["-c", program], { cwd: folder });
}

Deno.test({
  name:
    "probe() finds Python's ThreadingHTTPServer (python3 -m http.server) serving all at once",
  ignore: noPython,
  fn: withDeadline(async () => {
    await using server = await startPython("ThreadingHTTPServer");
    await expectProbe(server, concurrent("idle"));
  }),
});

Deno.test({
  name:
    "probe() finds Python's HTTPServer one at a time, held by an idle connection",
  ignore: noPython,
  fn: withDeadline(async () => {
    await using server = await startPython("HTTPServer");
    await expectProbe(server, serial("idle"));
  }),
});

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
    const error = await assertRejects(() =>
      probe(`http://127.0.0.1:${listener.addr.port}/`)
    );
    // No slow request was answered, so S is 0: 4 × S + 10 s, with room.
    assertLess(performance.now() - started, 20_000);
    assertMatch((error as Error).message, /^[^\n]+$/);
    listener.close();
    await accepting.catch(() => {});
    await Promise.all(held);
  }),
);

/** Runs probe.ts as a person does, from outside the project, with net only. */
async function runProbe(args: string[]) {
  const { code, stdout, stderr } = await mainCommand(args, {
    script: probeScript,
    allowRead: "",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  // Deno's own lines as it downloads the standard library, the first time.
  const said = decode(stderr).replace(/^.*Download.*\n/gm, "");
  return { code, stdout: decode(stdout), stderr: said };
}

Deno.test(
  "probe.ts says what is wrong with a bad input in one line, with no stack trace, and exits non-zero",
  withDeadline(async (t) => {
    await using concurrentServer = await startServerProcess(
      ["concurrent", "--quiet"],
    );
    // Says SSH, as an SSH server does, then closes.
    using notHttp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const greeting = (async () => {
      for await (const conn of notHttp) {
        await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n"));
        conn.close();
      }
    })();
    // Resets every connection: it reads one byte and closes with the rest
    // of the request unread, which makes the kernel send a reset.
    using resets = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const resetting = (async () => {
      for await (const conn of resets) {
        await conn.read(new Uint8Array(1));
        conn.close();
      }
    })();
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const refused = `http://127.0.0.1:${closed.addr.port}/`;
    closed.close();
    const cases: [string, string[]][] = [
      ["not a URL", ["nowhere"]],
      ["no scheme", ["127.0.0.1:7878"]],
      ["--max out of range", [concurrentServer.url, "--max=0"]],
      ["not http", ["ftp://127.0.0.1/"]],
      ["an unknown option", [concurrentServer.url, "--slowly"]],
      ["refused", [refused]],
      ["reset", [`http://127.0.0.1:${resets.addr.port}/`]],
      ["not HTTP", [`http://127.0.0.1:${notHttp.addr.port}/`]],
      ["a slow route that is not slow", [concurrentServer.url, "--slow=/"]],
    ];
    for (const [name, args] of cases) {
      await t.step(name, async () => {
        const { code, stdout, stderr } = await runProbe(args);
        assert(code !== 0, `exit code 0; printed ${stdout}`);
        assertMatch(stderr, /^error: [^\n]+\n$/);
      });
    }
    await t.step("no scheme: the URL it meant", async () => {
      const { stderr } = await runProbe(["127.0.0.1:7878"]);
      assertMatch(stderr, /did you mean http:\/\/127\.0\.0\.1:7878\/\?\n$/);
    });
    notHttp.close();
    resets.close();
    await Promise.all([greeting, resetting].map((p) => p.catch(() => {})));
  }),
);

Deno.test(
  "probe.ts --json prints one object with the verdict's fields",
  withDeadline(async () => {
    await using server = await startServerProcess(
      ["serial", "--sleep-ms=1000", "--quiet"],
    );
    const { code, stdout } = await runProbe([server.url, "--json", "--max=2"]);
    assertEquals(code, 0);
    const found = JSON.parse(stdout);
    const { verdict, atOnce, atLeast, method, idleHolds } = found;
    assertEquals(
      { verdict, atOnce, atLeast, method, idleHolds },
      serial("slow"),
    );
    assert(found.slowMs >= 1000, stdout);
  }),
);
