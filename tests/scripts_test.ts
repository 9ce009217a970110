/**
 * main.ts run as Deno users run a script: straight from a URL (no read
 * permission: the pages come from beside it), from a copy with just the
 * book's two pages, and as ./main.ts by its #! line.
 */

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  folder,
  mainCommand,
  type ServerProcess,
  startServerProcess,
} from "../tools/server_process.ts";
import { scratchCopy } from "./scratch.ts";
import { withDeadline } from "./waiting.ts";

const decoder = new TextDecoder();

/**
 * Serves the project's files over HTTP on 127.0.0.1, TypeScript as such, as
 * a web server or JSR would, but for `missing`.
 */
function serveFolder(missing: string[] = []) {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      if (missing.includes(path.slice(1))) {
        return new Response("Not Found", { status: 404 });
      }
      const type = path.endsWith(".ts")
        ? "application/typescript"
        : "text/html";
      const body = await Deno.readFile(`${folder}${path}`).catch(() => null);
      if (body === null) return new Response("Not Found", { status: 404 });
      return new Response(body, { headers: { "content-type": type } });
    },
  );
}

/** Checks the status of each path `server` answers, then stops it: exit 0. */
async function answersThenStops(
  server: ServerProcess,
  expected: [path: string, status: number][],
) {
  for (const [path, status] of expected) {
    const response = await fetch(new URL(path, server.url));
    await response.body?.cancel();
    assertEquals(response.status, status, path);
  }
  server.kill("SIGTERM");
  assertEquals((await server.exited()).code, 0);
}

for (const mode of ["serial", "concurrent", "parallel"]) {
  Deno.test({
    name:
      `main.ts run from an http:// URL serves /, the lab by its one rule and /block's cures in ${mode} mode, with no read permission`,
    // Parallel mode needs reusePort (SO_REUSEPORT), which Deno has on Linux.
    ignore: mode === "parallel" && Deno.build.os !== "linux",
    fn: withDeadline(async () => {
      await using files = serveFolder();
      const script = `http://127.0.0.1:${files.addr.port}/main.ts`;
      const parallel = mode === "parallel";
      const args = [
        mode,
        "--sleep-ms=10",
        ...(parallel ? ["--workers=2"] : []),
      ];
      await using server = await startServerProcess(args, {
        script,
        allowRead: "",
        denoFlags: parallel ? ["--unstable-net"] : [],
      });
      assertEquals(server.mode, mode, server.listeningLine);
      // /block-worker's Worker is a data: URL: it needs no read permission.
      await answersThenStops(server, [
        ["/", 200],
        ["/lab", 200],
        ["/lab/lab.js", 200],
        ["/probe/verdict.js", 200],
        ["/lab/none.js", 404],
        ["/x", 404],
        ["/block-sliced", 200],
        ["/block-worker", 200],
      ]);
    }),
  });
}

Deno.test(
  "main.ts run from a URL where a page is missing says which, in one line, and exits 1",
  withDeadline(async () => {
    await using files = serveFolder(["404.html"]);
    const origin = `http://127.0.0.1:${files.addr.port}`;
    const { code, stdout, stderr } = await mainCommand(["--port=0"], {
      script: `${origin}/main.ts`,
      allowRead: "",
    }).output();
    assertEquals(code, 1);
    assertEquals(decoder.decode(stdout), "");
    assertEquals(
      decoder.decode(stderr).replace(/^.*Download.*\n/gm, ""),
      `error: Cannot load ${origin}/404.html: not found\n`,
    );
  }),
);

Deno.test(
  "main.ts copied with only the book's two pages serves them, says the lab is off, and answers /lab with 404",
  withDeadline(async () => {
    await using copy = await scratchCopy(["main.ts", "hello.html", "404.html"]);
    await using server = await startServerProcess(
      ["serial", "--sleep-ms=10"],
      {
        script: copy.url("main.ts"),
        allowRead: copy.folder,
      },
    );
    assert(
      server.listeningLine.endsWith(
        "(serial); lab/index.html was not found, so the lab is off",
      ),
      server.listeningLine,
    );
    const noLab = await fetch(new URL("/lab", server.url));
    assertEquals(noLab.status, 404);
    assertStringIncludes(
      await noLab.text(),
      "lab/index.html is not beside main.ts",
    );
    await answersThenStops(server, [
      ["/", 200],
      ["/block-worker", 200],
      ["/lab/lab.js", 404],
      ["/probe/verdict.js", 404],
    ]);
  }),
);

Deno.test({
  name: "./main.ts runs as a script, by its #! line",
  ignore: Deno.build.os === "windows", // no #! lines there
  fn: withDeadline(async () => {
    const { code, stdout } = await new Deno.Command("sh", {
      args: ["-c", "./main.ts --help"],
      cwd: folder,
      stdout: "piped",
      stderr: "null",
    }).output();
    assertEquals(code, 0);
    assertStringIncludes(decoder.decode(stdout), "Usage: main.ts ");
  }),
});
