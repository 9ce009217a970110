/**
 * The README's programs, run as a reader runs them: `small_server.ts`, which
 * the README shows word for word, and the script that uses `main.ts` as a
 * library. Each runs as a process of its own on a free port, started by
 * spawnServer() from tools/server_process.ts; a run that fails to start
 * runs to its end as a plain Deno.Command. Where a test waits for a sleep
 * or a timeout that is not its subject, it runs a copy with a shorter one.
 */

import { assert, assertEquals, assertMatch, assertNotMatch } from "@std/assert";
import { type Address, send } from "./tools/clients.ts";
import { scratchCopy } from "./tests/scratch.ts";
import { folder, spawnServer } from "./tools/server_process.ts";
import { assertWithinSet, withDeadline } from "./tests/waiting.ts";

const readme = await Deno.readTextFile(new URL("README.md", import.meta.url));
const source = await Deno.readTextFile(
  new URL("small_server.ts", import.meta.url),
);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;

/** The README's code blocks marked `ts ignore`, which deno test --doc skips. */
function readmeBlocks(): string[] {
  return [...readme.matchAll(/```ts ignore\n([^]*?)```/g)].map((m) => m[1]);
}

/** What `deno run` runs: a file name, or the source itself on stdin. */
type Program = { file: string } | { source: string };

/** Where a program runs, and what it may do. */
interface Place {
  /** The working folder; the repository's by default. */
  cwd?: string;
  /** Its permissions: those of `deno task small-server` by default. */
  permissions?: readonly string[];
}

const mayListen = "--allow-net=127.0.0.1";
const mayRead = "--allow-read=.";
const smallServer: Program = { file: "small_server.ts" };

/** small_server.ts's waits: its code that sets each, and how long it is. */
const waits = {
  sleep: waitIn(/setTimeout\(resolve, (\d+)\)/),
  head: waitIn(/deadline\(conn\.read\(buffer\), (\d+)\)/),
};

/** The first code in small_server.ts that `code` matches, and its number. */
function waitIn(code: RegExp) {
  const match = code.exec(source);
  assert(match, `small_server.ts no longer has ${code}`);
  return { code: match[0], ms: Number(match[1]) };
}

/**
 * A copy of small_server.ts, with the pages, whose waits are `ms` instead:
 * for the tests whose subject they are not. Removed when disposed.
 */
function quickCopy(ms: { sleep: number; head: number }) {
  const edit = (text: string) =>
    text.replace(
      waits.sleep.code,
      waits.sleep.code.replace(`${waits.sleep.ms}`, `${ms.sleep}`),
    ).replace(
      waits.head.code,
      waits.head.code.replace(`${waits.head.ms}`, `${ms.head}`),
    );
  return scratchCopy(["small_server.ts", "hello.html", "404.html"], {
    "small_server.ts": edit,
  });
}

/** How `deno run` runs a copy from scratchCopy(): it may read only there. */
function inCopy(copy: { folder: string }): [Program, Place] {
  return [
    { file: `${copy.folder}/small_server.ts` },
    { permissions: [mayListen, `--allow-read=${copy.folder}`] },
  ];
}

/**
 * The arguments and options of `deno` that run `program` with `args`, for
 * spawnServer("deno", ...denoRun(...)) and for {@linkcode runToExit}.
 */
function denoRun(
  program: Program,
  args: readonly string[],
  { cwd = folder, permissions = [mayListen, mayRead] }: Place = {},
) {
  return [
    [
      "run",
      "--quiet", // no "Download" or "Check" lines: only what the program says
      "--check",
      ...permissions,
      "file" in program ? program.file : "-",
      ...args,
    ],
    { cwd, input: "source" in program ? program.source : undefined },
  ] as const;
}

/** Runs small_server.ts, or `program`, until it exits by itself. */
async function runToExit(
  args: readonly string[],
  place?: Place,
  program: Program = smallServer,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [denoArgs, { cwd, input }] = denoRun(program, args, place);
  const child = new Deno.Command("deno", {
    args: [...denoArgs],
    cwd,
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode(input));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  return {
    code,
    stdout: decoder.decode(stdout),
    stderr: decoder.decode(stderr),
  };
}

/** Sends a request and waits for the whole answer. */
async function ask(addr: Address, path: string): Promise<string> {
  const { response } = await send(addr, get(path));
  return await response;
}

Deno.test("small_server.ts is the README's first program, word for word", async () => {
  const file = await Deno.readTextFile(
    new URL("small_server.ts", import.meta.url),
  );
  assertEquals(readmeBlocks()[0], file);
});

Deno.test(
  "small_server.ts type-checks, and serves / after /sleep in serial mode and before it in concurrent mode",
  withDeadline(async (t) => {
    // The order is the subject, not the sleep's length: a second will do.
    await using copy = await quickCopy({ sleep: 1000, head: waits.head.ms });
    const [program, place] = inCopy(copy);
    const cases = [
      // --port as a flag, in both of the forms main.ts takes.
      { mode: "serial", port: ["--port", "0"], first: "/sleep" },
      { mode: "concurrent", port: ["--port=0"], first: "/" },
    ];
    for (const { mode, port, first } of cases) {
      await t.step(`${mode}: ${first} finishes first`, async () => {
        await using server = await spawnServer(
          "deno",
          ...denoRun(program, [mode, ...port], place),
        );
        assertEquals(server.addr.hostname, "127.0.0.1", server.listeningLine);
        const finished: string[] = [];
        // send() resolves once connected and written, so /sleep is first in
        // the kernel's queue of connections: the loop accepts it first.
        const slow = await send(server.addr, get("/sleep"));
        const fast = await send(server.addr, get("/"));
        await Promise.all([
          slow.response.then(() => finished.push("/sleep")),
          fast.response.then(() => finished.push("/")),
        ]);
        assertEquals(finished[0], first);
      });
    }
  }),
);

Deno.test(
  "small_server.ts run from another folder serves the pages beside it",
  withDeadline(async () => {
    // As a reader runs it after `cd /tmp`: nothing to read where it runs.
    await using server = await spawnServer(
      "deno",
      ...denoRun({ file: `${folder}/small_server.ts` }, ["--port=0"], {
        cwd: "/",
        permissions: [mayListen, `--allow-read=${folder}`],
      }),
    );
    assertEquals(server.addr.hostname, "127.0.0.1", server.listeningLine);
    const [hello, notFound] = await Promise.all(
      ["hello.html", "404.html"].map((page) =>
        Deno.readTextFile(new URL(page, import.meta.url))
      ),
    );
    const [root, elsewhere] = await Promise.all([
      ask(server.addr, "/"),
      ask(server.addr, "/elsewhere"),
    ]);
    assert(root.startsWith("HTTP/1.1 200 OK\r\n"), root);
    assert(root.endsWith(`\r\n\r\n${hello}`), root);
    assert(elsewhere.startsWith("HTTP/1.1 404 Not Found\r\n"), elsewhere);
    assert(elsewhere.endsWith(`\r\n\r\n${notFound}`), elsewhere);
  }),
);

Deno.test(
  "small_server.ts stops with one line and exit code 2 at a mode it does not know, such as Serial",
  withDeadline(async () => {
    // Before the fix, Serial printed "(Serial)" and served concurrently.
    const { code, stdout, stderr } = await runToExit(["Serial", "--port=0"]);
    assertEquals({ code, stdout, stderr }, {
      code: 2,
      stdout: "",
      stderr: 'error: Unknown mode "Serial"\n',
    });
  }),
);

Deno.test(
  "small_server.ts stops with one line and exit code 2 at a flag it does not know, such as main.ts's --sleep-ms",
  withDeadline(async (t) => {
    const cases = [
      [["serial", "--sleep-ms=2000", "--port=0"], "--sleep-ms=2000"],
      [["--port=0", "--sleep-ms", "2000"], "--sleep-ms"],
      [["--port=0", "-p", "8080"], "-p"],
    ] as const;
    for (const [args, flag] of cases) {
      await t.step(args.join(" "), async () => {
        const { code, stdout, stderr } = await runToExit(args);
        assertEquals({ code, stdout, stderr }, {
          code: 2,
          stdout: "",
          stderr: `error: Unknown flag "${flag}"\n`,
        });
      });
    }
  }),
);

Deno.test(
  "small_server.ts that cannot start says why in one line, with exit code 1 and no stack trace",
  withDeadline(async (t) => {
    using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const source = await Deno.readTextFile(
      new URL("small_server.ts", import.meta.url),
    );
    const cases = [{
      // As copied on its own: from stdin in docs/, its pages are looked for
      // beside it, in docs/, where there are none.
      name: "a page missing: the program alone in a folder",
      run: () => runToExit(["--port=0"], { cwd: `${folder}/docs` }, { source }),
      says: /^No such file or directory .*: readfile '.*\/docs\/hello\.html'$/,
    }, {
      name: "a port out of range: --port=99999",
      run: () => runToExit(["--port=99999"]),
      says: /^Invalid port \(out of range\): 99999$/,
    }, {
      name: "a port that is not a number: --port=abc",
      run: () => runToExit(["--port=abc"]),
      says: /^Invalid port: 'abc'$/,
    }, {
      name: "a port in use",
      run: () => runToExit([`--port=${held.addr.port}`]),
      says: /^Address already in use\b/,
    }, {
      name: "no permission to read: no --allow-read",
      run: () => runToExit(["--port=0"], { permissions: [mayListen] }),
      says:
        /^Requires read access to ".*\/hello\.html", run again with the --allow-read flag$/,
    }, {
      name: "no permission to listen: no --allow-net",
      run: () => runToExit(["--port=0"], { permissions: [mayRead] }),
      says:
        /^Requires net access to "127\.0\.0\.1:0", run again with the --allow-net flag$/,
    }];
    for (const { name, run, says } of cases) {
      await t.step(name, async () => {
        const { code, stdout, stderr } = await run();
        assertEquals({ code, stdout }, { code: 1, stdout: "" }, stderr);
        assertNotMatch(stderr, /Uncaught| {4}at /);
        // One line, in sentence case, with no period at its end.
        assertMatch(stderr, /^error: [A-Z][^\n]*[^.\n]\n$/);
        assertMatch(stderr.slice("error: ".length, -1), says);
      });
    }
  }),
);

Deno.test(
  "small_server.ts in serial mode is held by an idle connection until its read deadline, not for ever",
  withDeadline(async () => {
    // A copy that gives up sooner: the deadline is checked, not its length.
    const head = 500;
    await using copy = await quickCopy({ sleep: waits.sleep.ms, head });
    const [program, place] = inCopy(copy);
    await using server = await spawnServer(
      "deno",
      ...denoRun(program, ["serial", "--port=0"], place),
    );
    assertEquals(server.addr.hostname, "127.0.0.1", server.listeningLine);
    // A browser's preconnect: a connection that sends nothing.
    using idle = await Deno.connect(server.addr);
    const started = performance.now();
    // Without the program's timeout this would wait for ever: the test's
    // deadline fails it instead.
    const answer = await ask(server.addr, "/");
    assert(answer.startsWith("HTTP/1.1 200 OK\r\n"), answer);
    // The copy gives up on the idle connection at its deadline, not at the
    // program's.
    assertWithinSet(performance.now() - started, {
      setMs: head,
      unsetMs: waits.head.ms,
    });
    // ...and it closed the idle connection rather than answering it.
    assertEquals(await idle.read(new Uint8Array(16)), null);
  }),
);

Deno.test(
  "the README's script on main.ts serves, and on SIGINT lets a /sleep in flight finish before it exits",
  withDeadline(async () => {
    const script = readmeBlocks().find((block) => block.includes("./main.ts"));
    assert(script, "No block in the README imports ./main.ts");
    // The same script on a free port, so that the test collides with nothing,
    // and with a sleep of a second instead of the default's five.
    const onFreePort = script.replace("port: 8080", "port: 0");
    assert(onFreePort !== script, "The script no longer listens on port 8080");
    const options = '{ mode: "concurrent", pages,';
    const edited = onFreePort.replace(options, `${options} sleepMs: 1000,`);
    assert(
      edited !== onFreePort,
      `The script no longer serves with ${options}`,
    );
    await using server = await spawnServer(
      "deno",
      ...denoRun({ source: edited }, []),
    );
    assertEquals(server.addr.hostname, "127.0.0.1", server.listeningLine);
    let answered = false;
    const sleeping = await send(server.addr, get("/sleep"));
    sleeping.response.then(() => answered = true, () => {});
    // A stop closes a connection still waiting for its head, so SIGINT must
    // come once /sleep is read. "/", sent after it, is accepted after it; by
    // the time "/" is answered, the /sleep handler, started at its accept on
    // a head already sent, has read it and sleeps.
    assert((await ask(server.addr, "/")).startsWith("HTTP/1.1 200 OK\r\n"));
    assert(!answered, "/sleep was over before SIGINT came");
    server.kill("SIGINT");
    const answer = await sleeping.response;
    const { code } = await server.exited();
    // Both streams, line by line as they came.
    const output = server.lines.join("\n");
    assert(answer.startsWith("HTTP/1.1 200 OK\r\n"), `${answer}\n${output}`);
    assertEquals(code, 0, output);
    assert(output.trimEnd().endsWith("Stopped"), output);
  }),
);
