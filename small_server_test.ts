/**
 * The README's programs, run as a reader runs them: `small_server.ts`, which
 * the README shows word for word, and the script that uses `main.ts` as a
 * library. Each runs as a process of its own on a free port.
 */

import { assert, assertEquals, assertLess } from "@std/assert";
import { type Address, send } from "./tools/clients.ts";

const folder = Deno.realPathSync(new URL("./", import.meta.url));
const readme = await Deno.readTextFile(new URL("README.md", import.meta.url));
const encoder = new TextEncoder();
const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The README's code blocks marked `ts ignore`, which deno test --doc skips. */
function readmeBlocks(): string[] {
  return [...readme.matchAll(/```ts ignore\n([^]*?)```/g)].map((m) => m[1]);
}

/** A program running as `deno run`, from the repository's folder. */
interface Program extends AsyncDisposable {
  addr: Address;
  /** Resolves with what it printed to stdout and stderr once it exited. */
  exited: Promise<{ code: number; output: string }>;
  kill(signal: Deno.Signal): void;
}

/**
 * Starts a program (a file name, or the source itself on stdin) and waits for
 * its "Listening on" line, which names the port.
 */
async function start(
  program: { file: string } | { source: string },
  args: readonly string[],
): Promise<Program> {
  const child = new Deno.Command("deno", {
    args: [
      "run",
      "--check",
      "--allow-net=127.0.0.1",
      "--allow-read=.",
      "file" in program ? program.file : "-",
      ...args,
    ],
    cwd: folder,
    stdin: "file" in program ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if ("source" in program) {
    const input = child.stdin.getWriter();
    await input.write(encoder.encode(program.source));
    await input.close();
  }
  let output = "";
  const listening = Promise.withResolvers<number>();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output += text;
      const port = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(output);
      if (port) listening.resolve(Number(port[1]));
    }
  };
  const exited = Promise.all([
    child.status,
    collect(child.stdout),
    collect(child.stderr),
  ]).then(([status]) => ({ code: status.code, output }));
  exited.then(() => listening.reject(new Error(`Exited early: ${output}`)));
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // It has exited already.
    }
  };
  try {
    const port = await listening.promise;
    return {
      addr: { hostname: "127.0.0.1", port },
      exited,
      kill,
      async [Symbol.asyncDispose]() {
        kill("SIGKILL");
        await exited;
      },
    };
  } catch (error) {
    kill("SIGKILL");
    await exited;
    throw error;
  }
}

Deno.test("small_server.ts is the README's first program, word for word, in at most 45 lines", async () => {
  const file = await Deno.readTextFile(
    new URL("small_server.ts", import.meta.url),
  );
  assertEquals(readmeBlocks()[0], file);
  assertLess(file.trimEnd().split("\n").length, 46);
});

Deno.test("small_server.ts type-checks, and serves / after /sleep in serial mode and before it in concurrent mode", async () => {
  const finishedFirst = await Promise.all(
    (["serial", "concurrent"] as const).map(async (mode) => {
      // --port as a flag, in both of the forms main.ts takes.
      const port = mode === "serial" ? ["--port", "0"] : ["--port=0"];
      await using server = await start({ file: "small_server.ts" }, [
        mode,
        ...port,
      ]);
      const finished: string[] = [];
      const slow = await send(server.addr, get("/sleep"));
      await delay(200);
      const fast = await send(server.addr, get("/"));
      await Promise.all([
        slow.response.then(() => finished.push("/sleep")),
        fast.response.then(() => finished.push("/")),
      ]);
      return finished[0];
    }),
  );
  assertEquals(finishedFirst, ["/sleep", "/"]);
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
    const fast = await send(server.addr, get("/"));
    // Without the program's timeout this would wait for ever: fail instead.
    const deadline = Promise.withResolvers<string>();
    const timer = setTimeout(
      () => deadline.resolve("no answer within 20 s"),
      20_000,
    );
    const answer = await Promise.race([fast.response, deadline.promise]);
    clearTimeout(timer);
    assert(answer.startsWith("HTTP/1.1 200 OK\r\n"), answer);
    // The program gives up on the idle connection after 3 s; the margin
    // is for a busy machine.
    assertLess(performance.now() - started, 10_000);
    // ...and it closed the idle connection rather than answering it.
    assertEquals(await idle.read(new Uint8Array(16)), null);
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
  // Give the server time to read the head, then stop it.
  await delay(500);
  server.kill("SIGINT");
  const answer = await sleeping.response;
  const { code, output } = await server.exited;
  assert(answer.startsWith("HTTP/1.1 200 OK\r\n"), `${answer}\n${output}`);
  assertEquals(code, 0, output);
  assert(output.trimEnd().endsWith("Stopped"), output);
});
