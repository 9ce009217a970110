/**
 * main.ts stopped as people stop it: by a signal (SIGINT, SIGTERM), and by
 * Ctrl-C typed in a terminal, where it reaches `deno task` too.
 */

import { assertEquals, assertMatch, assertNotMatch } from "@std/assert";
import {
  assertRefused,
  delay,
  folder,
  get,
  noSignals,
  OK_HELLO,
  send,
  spawnMain,
  withDeadline,
} from "./testing.ts";

/**
 * `script -qfec`, which gives the server a pseudo-terminal of its own, is
 * util-linux's: the `script` of macOS and the BSDs takes other options. The
 * terminal tests run on Linux only (`deno task parallel` among them needs
 * Linux anyway).
 */
const noScript = Deno.build.os !== "linux";

// ---------------------------------------------------------------------------
// Signals

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test({
    name:
      `main.ts on ${signal} lets a /sleep in flight finish, exits 0 and frees the port`,
    ignore: noSignals,
    fn: withDeadline(async () => {
      const main = await spawnMain(["--port=0", "--sleep-ms=500"]);
      let slow;
      try {
        slow = await send(
          { hostname: "127.0.0.1", port: main.port },
          get("/sleep"),
        );
        await delay(100);
      } finally {
        main.kill(signal);
      }
      assertEquals(await slow.response, OK_HELLO);
      const { code, output, stderr } = await main.exited();
      assertEquals(code, 0, stderr);
      assertMatch(
        output,
        new RegExp(`Stopping on ${signal} \\(.*again.*\\): no new connections`),
      );
      assertMatch(output, /GET \/sleep 200 \(\d+ ms\)\n.*Stopped\n$/s);
      await assertRefused({ hostname: "127.0.0.1", port: main.port });
    }),
  });
}

Deno.test({
  name:
    "deno task start on SIGTERM to the task process lets a /sleep in flight finish and exits 0",
  ignore: noSignals,
  fn: withDeadline(async () => {
    const task = new Deno.Command("deno", {
      args: ["task", "start", "--port=0", "--sleep-ms=2000"],
      cwd: folder,
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const stdout = task.stdout.pipeThrough(new TextDecoderStream()).values();
    let output = "";
    while (!output.includes("\n")) output += (await stdout.next()).value ?? "";
    const port = Number(/127\.0\.0\.1:(\d+)\//.exec(output)?.[1]);
    let slow;
    try {
      slow = await send({ hostname: "127.0.0.1", port }, get("/sleep"));
      await delay(500);
    } finally {
      task.kill("SIGTERM");
    }
    assertEquals(await slow.response, OK_HELLO);
    for await (const chunk of stdout) output += chunk;
    assertEquals((await task.status).code, 0, output);
    assertMatch(output, /Stopping on SIGTERM/);
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
async function inTerminal(command: string) {
  const child = new Deno.Command("script", {
    args: ["-qfec", `exec ${command}`, "/dev/null"],
    cwd: folder,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const keyboard = child.stdin.getWriter();
  let screen = "";
  const reading = (async () => {
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) screen += chunk;
  })();
  const listening = /Listening on http:\/\/127\.0\.0\.1:(\d+)\//;
  while (!listening.test(screen)) {
    const exited = await Promise.race([child.status, delay(50)]);
    if (exited) throw new Error(`${command} exited early:\n${screen}`);
  }
  return {
    port: Number(listening.exec(screen)![1]),
    pressCtrlC: () => keyboard.write(new Uint8Array([0x03])),
    async exited() {
      await keyboard.close();
      const [{ code }] = await Promise.all([child.status, reading]);
      return { code, screen };
    },
  };
}

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
      const terminal = await inTerminal(`${command} --port=0 --sleep-ms=2000`);
      const addr = { hostname: "127.0.0.1", port: terminal.port };
      let slow;
      try {
        slow = await send(addr, get("/sleep"));
        await delay(500); // ample time for the server to read the head
      } finally {
        await terminal.pressCtrlC();
      }
      assertEquals(await slow.response, OK_HELLO);
      const { code, screen } = await terminal.exited();
      assertEquals(code, 0, screen);
      assertMatch(
        screen,
        /Stopping on SIGINT \(press Ctrl-C again to exit at once\)/,
      );
      assertMatch(screen, /GET \/sleep 200 .*\r\nStopped\r\n$/s);
    }),
  });
}

Deno.test({
  name:
    "deno task start in a terminal: a second Ctrl-C a second later exits at once with 130",
  ignore: noScript,
  fn: withDeadline(async () => {
    const terminal = await inTerminal(
      "deno task start --port=0 --sleep-ms=60000",
    );
    const addr = { hostname: "127.0.0.1", port: terminal.port };
    const slow = await send(addr, get("/sleep"));
    await delay(200);
    await terminal.pressCtrlC();
    await delay(1000);
    await terminal.pressCtrlC();
    const { code, screen } = await terminal.exited();
    assertEquals(code, 130, screen);
    // Dropped, not answered: the 60 s sleep and the 10 s grace were cut short.
    assertEquals(await slow.response, "");
    assertMatch(
      screen,
      /Dropping 1 request still in flight on a second SIGINT\r\n/,
    );
    assertNotMatch(screen, /Stopped/);
  }),
});
