/**
 * main.ts stopped as people stop it: by a signal (SIGINT, SIGTERM), and by
 * Ctrl-C typed in a terminal, where it reaches `deno task` too. Each server
 * runs with --trace, so that a test sends its signal once the server has
 * read the head of the request it means to be in flight.
 */

import { assertEquals, assertMatch, assertNotMatch } from "@std/assert";
import { delay } from "@std/async";
import {
  folder,
  noSignals,
  spawnServer,
  startServerProcess,
} from "../tools/server_process.ts";
import { assertRefused, get, OK_HELLO, sendUntimed } from "./testing.ts";
import { waitFor, withDeadline } from "./waiting.ts";

/**
 * `script -qfec`, which gives the server a pseudo-terminal of its own, is
 * util-linux's: the `script` of macOS and the BSDs takes other options. The
 * terminal tests run on Linux only (`deno task parallel` among them needs
 * Linux anyway).
 */
const noScript = Deno.build.os !== "linux";

/** The trace line that says the server has read the head of /sleep. */
const SLEEP_HEAD_READ = / #1 head: GET \/sleep$/;

/**
 * How long the /sleep in flight sleeps: long enough for the signal to come
 * while it does, which each test checks (the stop is said before the
 * /sleep is done), and no longer, since its length is not the subject.
 */
const IN_FLIGHT_MS = 1000;

/** Stopping was said before the /sleep in flight was done. */
const STOPPED_IN_FLIGHT = /Stopping on SIG[^]* done: GET \/sleep 200 /;

// ---------------------------------------------------------------------------
// Signals

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test({
    name:
      `main.ts on ${signal} lets a /sleep in flight finish, exits 0 and frees the port`,
    ignore: noSignals,
    fn: withDeadline(async () => {
      await using main = await startServerProcess([
        `--sleep-ms=${IN_FLIGHT_MS}`,
        "--trace",
      ]);
      const slow = await sendUntimed(main.addr, get("/sleep"));
      await waitFor(main.lines, SLEEP_HEAD_READ);
      main.kill(signal);
      assertEquals(await slow.response, OK_HELLO);
      const { code, output, stderr } = await main.exited();
      assertEquals(code, 0, stderr);
      assertMatch(
        output,
        new RegExp(`Stopping on ${signal} \\(.*again.*\\): no new connections`),
      );
      assertMatch(output, STOPPED_IN_FLIGHT);
      assertMatch(output, /GET \/sleep 200 \(\d+ ms\)\n.*Stopped\n$/s);
      await assertRefused(main.addr);
    }),
  });
}

Deno.test({
  name:
    "deno task start on SIGTERM to the task process lets a /sleep in flight finish and exits 0",
  ignore: noSignals,
  fn: withDeadline(async () => {
    await using task = await spawnServer(
      "deno",
      ["task", "start", "--port=0", `--sleep-ms=${IN_FLIGHT_MS}`, "--trace"],
      { cwd: folder },
    );
    const slow = await sendUntimed(task.addr, get("/sleep"));
    await waitFor(task.lines, SLEEP_HEAD_READ);
    task.kill("SIGTERM");
    assertEquals(await slow.response, OK_HELLO);
    const { code, output } = await task.exited();
    assertEquals(code, 0, output);
    assertMatch(output, /Stopping on SIGTERM/);
    assertMatch(output, STOPPED_IN_FLIGHT);
    assertMatch(output, /GET \/sleep 200 .*\nStopped\n$/s);
  }),
});

// ---------------------------------------------------------------------------
// In a terminal, as people run it

/**
 * Runs `command` in the project folder on a pseudo-terminal of its own
 * (`script`), where a Ctrl-C typed reaches the whole foreground process
 * group, as in a real terminal: `deno task` and the server both get it.
 * The shell that `script` starts execs the command, as an interactive shell
 * leaves it a process group of its own: a shell that stayed in the group
 * (dash does, and CI's `script` uses it when `SHELL` is unset) would die of
 * the Ctrl-C itself and report 130 for a server that exited 0.
 */
function inTerminal(command: string) {
  return spawnServer("script", ["-qfec", `exec ${command}`, "/dev/null"], {
    cwd: folder,
    stdin: "piped",
  });
}

const CTRL_C = "\x03";

const terminalCommands = [
  "deno task start",
  "deno task serial",
  "deno task parallel",
  "deno run --allow-net=127.0.0.1 --allow-read=. main.ts",
];

for (const command of terminalCommands) {
  Deno.test({
    name:
      `${command} in a terminal: one Ctrl-C lets a /sleep in flight finish, says Stopped and exits 0`,
    ignore: noScript,
    fn: withDeadline(async () => {
      await using terminal = await inTerminal(
        `${command} --port=0 --sleep-ms=${IN_FLIGHT_MS} --trace`,
      );
      const slow = await sendUntimed(terminal.addr, get("/sleep"));
      await waitFor(terminal.lines, SLEEP_HEAD_READ);
      await terminal.write(CTRL_C);
      assertEquals(await slow.response, OK_HELLO);
      const { code, output } = await terminal.exited();
      assertEquals(code, 0, output);
      assertMatch(
        output,
        /Stopping on SIGINT \(press Ctrl-C again to exit at once\)/,
      );
      assertMatch(output, STOPPED_IN_FLIGHT);
      assertMatch(output, /GET \/sleep 200 .*\r\nStopped\r\n$/s);
    }),
  });
}

Deno.test({
  name:
    "deno task start in a terminal: a second Ctrl-C a second later exits at once with 130",
  ignore: noScript,
  fn: withDeadline(async () => {
    await using terminal = await inTerminal(
      "deno task start --port=0 --sleep-ms=60000 --trace",
    );
    const slow = await sendUntimed(terminal.addr, get("/sleep"));
    await waitFor(terminal.lines, SLEEP_HEAD_READ);
    await terminal.write(CTRL_C);
    await waitFor(terminal.lines, /Stopping on SIGINT/);
    // Time is the subject: a Ctrl-C within half a second of the first is the
    // same press, arrived twice (from the terminal and from deno task).
    await delay(1000);
    await terminal.write(CTRL_C);
    const { code, output } = await terminal.exited();
    assertEquals(code, 130, output);
    // Dropped, not answered: the 60 s sleep and the 10 s grace were cut short.
    assertEquals(await slow.response, "");
    assertMatch(
      output,
      /Dropping 1 request still in flight on a second SIGINT\r\n/,
    );
    assertNotMatch(output, /Stopped/);
  }),
});

Deno.test({
  name:
    "main.ts with no permission flags in a terminal names one command for all of them, before Deno asks for any",
  ignore: noScript,
  fn: withDeadline(async () => {
    // In a terminal Deno would ask for each page and the port in turn.
    const { code, stdout } = await new Deno.Command("script", {
      args: [
        "-qfec",
        "deno run --no-config main.ts serial --port=0",
        "/dev/null",
      ],
      cwd: folder,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(code, 1);
    const printed = new TextDecoder().decode(stdout).replace(/\r/g, "");
    assertNotMatch(printed, /Allow\?|Requires|\[y\/n/);
    assertEquals(
      printed.trim().split("\n").filter((line) => !/^Download /.test(line)),
      [
        "error: No permission to read the pages or listen on 127.0.0.1:0; run: deno run --allow-net=127.0.0.1 --allow-read=. main.ts serial --port=0",
      ],
    );
  }),
});
