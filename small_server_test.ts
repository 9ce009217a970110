/**
 * The README's programs, run as a reader runs them: `small_server.ts`, which
 * the README shows word for word, and the script that uses `main.ts` as a
 * library. Each runs as a process of its own on a free port.
 */

import {
  assert,
  assertEquals,
  assertLess,
  assertMatch,
  assertNotMatch,
} from "@std/assert";
import { deadline } from "@std/async";
import { type Address, send } from "./tests/clients.ts";

const folder = Deno.realPathSync(new URL("./", import.meta.url));
const readme = await Deno.readTextFile(new URL("README.md", import.meta.url));
const encoder = new TextEncoder();
const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;

/** The README's code blocks marked `ts ignore`, which deno test --doc skips. */
function readmeBlocks(): string[] {
  return [...readme.matchAll(/```ts ignore\n([^]*?)```/g)].map((m) => m[1]);
}

/** A program running as `deno run`. */
interface Program extends AsyncDisposable {
  /** The port of its "Listening on" line; rejects if it exits first. */
  listening: Promise<number>;
  /** Resolves with what it printed once it exited: each stream, and both. */
  exited: Promise<
    { code: number; stdout: string; stderr: string; output: string }
  >;
  kill(signal: Deno.Signal): void;
}

/** Where a program runs, and what it may do. */
interface Place {
  /** The working folder; the repository's by default. */
  cwd?: string;
  /** Its permissions: those of `deno task small-server` by default. */
  permissions?: readonly string[];
}

const mayListen = "--allow-net=127.0.0.1";
const mayRead = "--allow-read=.";

/** Starts a program: a file name, or the source itself on stdin. */
async function launch(
  program: { file: string } | { source: string },
  args: readonly string[],
  { cwd = folder, permissions = [mayListen, mayRead] }: Place = {},
): Promise<Program> {
  const child = new Deno.Command("deno", {
    args: [
      "run",
      "--quiet", // no "Download" or "Check" lines: only what the program says
      "--check",
      ...permissions,
      "file" in program ? program.file : "-",
      ...args,
    ],
    cwd,
    stdin: "file" in program ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if ("source" in program) {
    const input = child.stdin.getWriter();
    await input.write(encoder.encode(program.source));
    await input.close();
  }
  const printed = { stdout: "", stderr: "", output: "" };
  const listening = Promise.withResolvers<number>();
  // Awaited only by start(): a program that exits before it listens is no
  // unhandled rejection for the tests that expect it to.
  listening.promise.catch(() => {});
  const collect = async (stream: "stdout" | "stderr") => {
    const texts = child[stream].pipeThrough(new TextDecoderStream());
    for await (const text of texts) {
      printed[stream] += text;
      printed.output += text;
      const port = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(
        printed.output,
      );
      if (port) listening.resolve(Number(port[1]));
    }
  };
  const exited = Promise.all([
    child.status,
    collect("stdout"),
    collect("stderr"),
  ]).then(([status]) => ({ code: status.code, ...printed }));
  exited.then(() =>
    listening.reject(new Error(`Exited early: ${printed.output}`))
  );
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // It has exited already.
    }
  };
  return {
    listening: listening.promise,
    exited,
    kill,
    async [Symbol.asyncDispose]() {
      kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * Starts a program and waits, for a minute at most, until it listens: a
 * program that hangs fails its test rather than stalling the run.
 */
async function start(
  program: { file: string } | { source: string },
  args: readonly string[],
  place?: Place,
): Promise<Program & { addr: Address }> {
  const started = await launch(program, args, place);
  try {
    const port = await deadline(started.listening, 60_000);
    return { ...started, addr: { hostname: "127.0.0.1", port } };
  } catch (error) {
    await started[Symbol.asyncDispose]();
    const { output } = await started.exited;
    throw new Error(`No "Listening on" line; it printed: ${output}`, {
      cause: error,
    });
  }
}

/** Runs small_server.ts, or `program`, until it exits: a minute at most. */
async function runToExit(
  args: readonly string[],
  place?: Place,
  program: { file: string } | { source: string } = { file: "small_server.ts" },
) {
  await using started = await launch(program, args, place);
  return await deadline(started.exited, 60_000);
}

/** Sends a request and waits for the whole answer, for 20 s at most. */
async function ask(addr: Address, path: string): Promise<string> {
  const { response } = await send(addr, get(path));
  return await deadline(response, 20_000);
}

Deno.test("small_server.ts is the README's first program, word for word", async () => {
  const file = await Deno.readTextFile(
    new URL("small_server.ts", import.meta.url),
  );
  assertEquals(readmeBlocks()[0], file);
});

Deno.test("small_server.ts type-checks, and serves / after /sleep in serial mode and before it in concurrent mode", async (t) => {
  const cases = [
    // --port as a flag, in both of the forms main.ts takes.
    { mode: "serial", port: ["--port", "0"], first: "/sleep" },
    { mode: "concurrent", port: ["--port=0"], first: "/" },
  ];
  for (const { mode, port, first } of cases) {
    await t.step(`${mode}: ${first} finishes first`, async () => {
      await using server = await start({ file: "small_server.ts" }, [
        mode,
        ...port,
      ]);
      const finished: string[] = [];
      // send() resolves once connected and written, so /sleep is first in
      // the kernel's queue of connections: the loop accepts it first.
      const slow = await send(server.addr, get("/sleep"));
      const fast = await send(server.addr, get("/"));
      await deadline(
        Promise.all([
          slow.response.then(() => finished.push("/sleep")),
          fast.response.then(() => finished.push("/")),
        ]),
        30_000,
      );
      assertEquals(finished[0], first);
    });
  }
});

Deno.test("small_server.ts run from another folder serves the pages beside it", async () => {
  // As a reader runs it after `cd /tmp`: nothing to read where it runs.
  await using server = await start(
    { file: `${folder}/small_server.ts` },
    ["--port=0"],
    { cwd: "/", permissions: [mayListen, `--allow-read=${folder}`] },
  );
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
});

Deno.test("small_server.ts stops with one line and exit code 2 at a mode it does not know, such as Serial", async () => {
  // Before the fix, Serial printed "(Serial)" and served concurrently.
  const { code, stdout, stderr } = await runToExit(["Serial", "--port=0"]);
  assertEquals({ code, stdout, stderr }, {
    code: 2,
    stdout: "",
    stderr: 'error: Unknown mode "Serial"\n',
  });
});

Deno.test("small_server.ts stops with one line and exit code 2 at a flag it does not know, such as main.ts's --sleep-ms", async (t) => {
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
});

Deno.test("small_server.ts that cannot start says why in one line, with exit code 1 and no stack trace", async (t) => {
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
});

Deno.test("small_server.ts in serial mode is held by an idle connection for a few seconds, not for ever", async () => {
  await using server = await start({ file: "small_server.ts" }, [
    "serial",
    "--port=0",
  ]);
  // A browser's preconnect: a connection that sends nothing.
  const idle = await Deno.connect(server.addr);
  try {
    const started = performance.now();
    // Without the program's timeout this would wait for ever: ask() fails
    // after 20 s instead.
    const answer = await ask(server.addr, "/");
    assert(answer.startsWith("HTTP/1.1 200 OK\r\n"), answer);
    // The program gives up on the idle connection after 3 s; the margin
    // is for a busy machine.
    assertLess(performance.now() - started, 10_000);
    // ...and it closed the idle connection rather than answering it.
    const read = idle.read(new Uint8Array(16));
    assertEquals(
      await deadline(read, 20_000),
      null,
    );
  } finally {
    idle.close();
  }
});

Deno.test("the README's script on main.ts serves, and on SIGINT lets a /sleep in flight finish before it exits", async () => {
  const script = readmeBlocks().find((block) => block.includes("./main.ts"));
  assert(script, "No block in the README imports ./main.ts");
  // The same script on a free port, so that the test collides with nothing.
  const source = script.replace("port: 8080", "port: 0");
  assert(source !== script, "The script no longer listens on port 8080");
  await using server = await start({ source }, []);
  const sleeping = await send(server.addr, get("/sleep"));
  // A stop closes a connection still waiting for its head, so SIGINT must
  // come once /sleep is read. "/", sent after it, is accepted after it; by
  // the time "/" is answered, the /sleep handler, started at its accept on
  // a head already sent, has read it and sleeps.
  assert((await ask(server.addr, "/")).startsWith("HTTP/1.1 200 OK\r\n"));
  server.kill("SIGINT");
  const answer = await deadline(sleeping.response, 20_000);
  const { code, output } = await deadline(server.exited, 20_000);
  assert(answer.startsWith("HTTP/1.1 200 OK\r\n"), `${answer}\n${output}`);
  assertEquals(code, 0, output);
  assert(output.trimEnd().endsWith("Stopped"), output);
});
