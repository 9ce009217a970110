/**
 * probe.ts as a person runs it, from outside the project with only
 * `--allow-net`: a bad input gets one line (and, with `--json`, one JSON
 * object), the report says what it waits for and folds the steps drawn
 * alike, `--json` prints the verdict's fields, and Ctrl-C releases the
 * connections that sent nothing, with their request, before it exits.
 */

import {
  assert,
  assertEquals,
  assertLess,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import { probeCommand, runProbe, SERIAL } from "../tests/probing.ts";
import { noSignals, startServerProcess } from "../tools/server_process.ts";
import { waitFor, withDeadline } from "../tests/waiting.ts";

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
      ["a fast route it does not serve", [
        concurrentServer.url,
        "--fast=/nothing",
      ]],
    ];
    for (const [name, args] of cases) {
      await t.step(name, async () => {
        const { code, stdout, stderr } = await runProbe(args);
        assert(code !== 0, `exit code 0; printed ${stdout}`);
        assertMatch(stderr, /^error: [^\n]+\n$/);
      });
    }
    // A usage error, a bad value and a server's failure, with --json.
    for (const name of ["an unknown option", "--max out of range", "refused"]) {
      await t.step(`${name}, with --json: one JSON object`, async () => {
        const args = cases.find(([named]) => named === name)![1];
        const { code, stderr } = await runProbe(args);
        const json = await runProbe([...args, "--json"]);
        assertEquals(json.code, code);
        const message = stderr.slice("error: ".length, -1);
        assertEquals(JSON.parse(json.stdout), { error: message });
      });
    }
    await t.step("no scheme: the URL it meant", async () => {
      const { stderr } = await runProbe(["127.0.0.1:7878"]);
      assertMatch(stderr, /did you mean http:\/\/127\.0\.0\.1:7878\/\?\n$/);
    });
    notHttp.close();
    resets.close();
    await Promise.all([greeting, resetting].map((p) => p.catch(() => {})));
  }, 120_000),
);

Deno.test(
  "probe.ts --json prints one object with the verdict's fields",
  withDeadline(async () => {
    await using server = await startServerProcess(
      ["serial", "--sleep-ms=500", "--quiet"],
    );
    const { code, stdout } = await runProbe([server.url, "--json", "--max=2"]);
    assertEquals(code, 0);
    const found = JSON.parse(stdout);
    const { verdict, atOnce, atLeast, refused, slowAtOnce, method, idleHolds } =
      found;
    assertEquals(
      { verdict, atOnce, atLeast, refused, slowAtOnce, method, idleHolds },
      SERIAL,
    );
    assert(found.slowMs >= 500, stdout);
    assertEquals(found.requests, undefined);
  }),
);

Deno.test(
  "probe.ts says what it waits for, folds the steps drawn alike, and names each figure",
  withDeadline(async () => {
    await using server = await startServerProcess(
      ["concurrent", "--sleep-ms=500", "--quiet"],
    );
    const { code, stdout } = await runProbe([server.url, "--max=16"]);
    assertEquals(code, 0, stdout);
    const lines = stdout.split("\n");
    const waits = lines.filter((line) => /waiting (for|up to)/.test(line));
    assert(waits.length >= 3, stdout);
    // The 16 steps are 32 rows, 36 with the rest: folded where drawn alike
    // (a busy machine may draw a step or two apart, so not to one line).
    const rows = lines.filter((line) => /^ {2}\S.*\|/.test(line));
    assertLess(rows.length, 36 / 2, stdout);
    assertMatch(
      stdout,
      /⋮ \/sleep #\d+ … \/sleep #\d+, \/ #\d+ … \/ #\d+: \d+ more drawn alike/,
    );
    assertMatch(
      stdout,
      /All at once: with 16 \/sleep in flight, \/ was answered \S+ m?s after it was sent, \S+ m?s before the first of them ended\./,
    );
  }),
);

Deno.test({
  name:
    "probe.ts on Ctrl-C sends its request on every connection that sent nothing before it exits",
  ignore: noSignals,
  fn: withDeadline(async () => {
    // One connection at a time, to its end: the probe's idle connection
    // holds it, and the probe waits (as long as --idle-ms) until Ctrl-C.
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const log: string[] = [];
    let reading = false;
    const serving = (async () => {
      for await (const conn of listener) {
        reading = true;
        let head = "";
        const buffer = new Uint8Array(4096);
        try {
          while (!head.includes("\r\n\r\n")) {
            const n = await conn.read(buffer);
            if (n === null) break;
            head += new TextDecoder().decode(buffer.subarray(0, n));
          }
          if (head.includes("\r\n\r\n")) {
            log.push(head.split(" ", 2).join(" "));
            const status = head.startsWith("GET / ") ? "200 OK" : "404 No";
            await conn.write(new TextEncoder().encode(
              `HTTP/1.1 ${status}\r\nContent-Length: 0\r\n\r\n`,
            ));
          } else log.push("closed with no request");
        } catch {
          log.push("reset");
        }
        reading = false;
        conn.close();
      }
    })();
    const url = `http://127.0.0.1:${listener.addr.port}/`;
    const child = probeCommand([url, "--idle-ms=30000"]).spawn();
    const output = child.stdout.pipeThrough(new TextDecoderStream());
    const said: string[] = [];
    const printing = (async () => {
      for await (const text of output) said.push(text);
    })();
    await waitFor(
      () => said.join("").includes("connections that send nothing") && reading,
      "the probe holding an idle connection",
    );
    child.kill("SIGINT");
    const [{ code }, stderr] = await Promise.all([
      child.status,
      new Response(child.stderr).text(),
      printing,
    ]);
    listener.close();
    await serving.catch(() => {});
    assertEquals(code, 130);
    assertStringIncludes(stderr, "error: Interrupted");
    // The fast and the slow request alone, the idle connection, released
    // with its request, and the fast request behind it.
    assertEquals(log, ["GET /", "GET /sleep", "GET /", "GET /"], said.join(""));
  }),
});
