/**
 * main.ts on the command line: its options and --help, the one-line errors
 * for mistakes, ports in use and missing permissions, IPv6, and its log.
 * How it runs from a URL, a copy or its #! line: scripts_test.ts.
 */

import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertMatch,
  assertNotMatch,
  assertStringIncludes,
} from "@std/assert";
import { DEFAULTS } from "../main.ts";
import {
  denoRunArgs,
  folder,
  mainCommand,
  mainInFolder,
  noSignals,
  spawnServer,
  startServerProcess,
} from "../tools/server_process.ts";
import { hello } from "./testing.ts";
import { assertWithinSet, waitFor, withDeadline } from "./waiting.ts";

const decoder = new TextDecoder();

Deno.test({
  name:
    "main.ts takes each flag with = or a space, before or after the mode, and does what each says",
  // It stops main.ts with SIGTERM.
  ignore: noSignals,
  fn: withDeadline(async (t) => {
    const [sleepMs, headTimeoutMs] = [300, 400];
    const flags: [string, string][] = [
      ["--sleep-ms", `${sleepMs}`],
      ["--head-timeout-ms", `${headTimeoutMs}`],
      ["--max-head-bytes", "1024"],
      ["--grace-ms", "0"],
    ];
    const forms = {
      "--name=value, the mode first": [
        "concurrent",
        ...flags.map(([flag, value]) => `${flag}=${value}`),
        "--quiet",
      ],
      "--name value, the mode last": [
        ...flags.flat(),
        "--quiet",
        "concurrent",
      ],
    };
    for (const [form, args] of Object.entries(forms)) {
      await t.step(form, async () => {
        await using main = await startServerProcess(args);
        assertEquals(main.mode, "concurrent");
        // --sleep-ms: /sleep takes about that, far less than the default.
        const sleep = await fetch(`${main.url}sleep`);
        await sleep.body?.cancel();
        const handled = Number(
          /handle;dur=([\d.]+)/.exec(sleep.headers.get("server-timing")!)?.[1],
        );
        assertGreaterOrEqual(handled, sleepMs - 1);
        assertWithinSet(handled, { setMs: sleepMs, unsetMs: DEFAULTS.sleepMs });
        // --max-head-bytes: a head of 2 KiB is too large.
        const large = await fetch(main.url, {
          headers: { "X-Padding": "a".repeat(2048) },
        });
        await large.body?.cancel();
        assertEquals(large.status, 431);
        // --head-timeout-ms: a connection that sends nothing is closed, long
        // before the default's 5 s.
        const started = performance.now();
        using idle = await Deno.connect(main.addr);
        assertEquals(await idle.read(new Uint8Array(1)), null);
        assertWithinSet(performance.now() - started, {
          setMs: headTimeoutMs,
          unsetMs: DEFAULTS.headTimeoutMs,
        });
        main.kill("SIGTERM");
        const { code, output } = await main.exited();
        assertEquals(code, 0);
        // --grace-ms: the stop says how long requests in flight have.
        assertStringIncludes(output, "requests in flight have 0 ms to finish");
        // --quiet: no line per connection, only the server's own.
        assertNotMatch(output, / 200 | 431 /);
      });
    }
  }),
});

Deno.test(
  "main.ts rejects a mistake on the command line with one line, a pointer to --help and exit code 2",
  withDeadline(async (t) => {
    for (
      const [args, message] of [
        [["threaded"], 'Unknown mode "threaded"'],
        [["Serial"], 'Unknown mode "Serial"; did you mean "serial"?'],
        [["PARALLEL"], 'Unknown mode "PARALLEL"; did you mean "parallel"?'],
        [
          ["--max-in-flight=0"],
          "--max-in-flight must be a whole number of at least 1, not 0",
        ],
        [["--prot=80"], 'Unknown option "--prot=80"; did you mean --port?'],
        [
          ["--sleep=2000"],
          'Unknown option "--sleep=2000"; did you mean --sleep-ms?',
        ],
        [["--colour"], 'Unknown option "--colour"'],
        [["--port=http"], '--port needs a number, not "http"'],
        [
          ["--sleep-ms=-5"],
          "--sleep-ms must be a whole number from 0 to 2147483647, not -5",
        ],
        [
          ["--port=80.5"],
          "--port must be a whole number from 0 to 65535, not 80.5",
        ],
        [["--port"], "--port needs a value"],
        [
          ["--port=70000"],
          "--port must be a whole number from 0 to 65535, not 70000",
        ],
        [["--sleep-ms"], "--sleep-ms needs a value"],
        [["--hostname="], "--hostname needs a value"],
        [
          ["serial", "concurrent"],
          "Choose one mode, not serial and concurrent; each deno task already chooses one, so for concurrent mode run: deno task start",
        ],
        [
          ["concurrent", "serial"],
          "Choose one mode, not concurrent and serial; each deno task already chooses one, so for serial mode run: deno task serial",
        ],
        [["--quiet=no"], '--quiet takes no value, not "no"'],
        [["--help=1"], '--help takes no value, not "1"'],
        [
          ["serial", "--max-in-flight=2"],
          "--max-in-flight does not apply to serial mode",
        ],
        [["--workers=2"], "--workers is for parallel mode only"],
        [
          ["parallel", "--workers=0"],
          "--workers must be a whole number from 1 to 1024, not 0",
        ],
      ] as [string[], string][]
    ) {
      await t.step(args.join(" "), async () => {
        const { code, stdout, stderr } = await mainCommand(args).output();
        assertEquals(code, 2);
        assertEquals(decoder.decode(stdout), "");
        const lines = decoder.decode(stderr).trimEnd().split("\n");
        assertEquals(lines.length, 2, lines.join("\n"));
        assertEquals(lines[0], `error: ${message}`);
        assertEquals(
          lines[1],
          "Usage: main.ts [serial|concurrent|parallel] [options]; see --help",
        );
      });
    }
  }),
);

Deno.test({
  name:
    "main.ts takes the same mode twice as that mode, as deno task serial serial gives it",
  // It stops main.ts with SIGTERM.
  ignore: noSignals,
  fn: withDeadline(async () => {
    await using main = await startServerProcess(["serial", "serial"]);
    assertEquals(main.mode, "serial");
  }),
});

Deno.test(
  "deno task start serial says that the task already chooses a mode, names deno task serial, and exits 2",
  withDeadline(async () => {
    const { code, stdout, stderr } = await new Deno.Command("deno", {
      args: ["task", "--quiet", "start", "serial", "--port=0"],
      cwd: folder,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(code, 2);
    assertEquals(decoder.decode(stdout), "");
    assertStringIncludes(
      decoder.decode(stderr),
      "error: Choose one mode, not concurrent and serial; each deno task already chooses one, so for serial mode run: deno task serial\n",
    );
  }),
);

Deno.test(
  "main.ts --help prints every option with its meaning and default, and exits 0",
  withDeadline(async (t) => {
    for (const flag of ["--help", "-h"]) {
      await t.step(flag, async () => {
        const { code, stdout, stderr } = await mainCommand([flag]).output();
        assertEquals(code, 0);
        assertEquals(decoder.decode(stderr), "");
        const help = decoder.decode(stdout);
        assertMatch(
          help,
          /^Usage: main\.ts \[serial\|concurrent\|parallel\] \[options\]\n/,
        );
        const withDefaults = [
          ["--port N", DEFAULTS.port],
          ["--hostname H", DEFAULTS.hostname],
          ["--sleep-ms N", DEFAULTS.sleepMs],
          ["--head-timeout-ms N", DEFAULTS.headTimeoutMs],
          ["--send-timeout-ms N", DEFAULTS.sendTimeoutMs],
          ["--grace-ms N", DEFAULTS.graceMs],
          ["--max-head-bytes N", DEFAULTS.maxHeadBytes],
          ["--max-in-flight N", "no limit"],
          ["--workers N", DEFAULTS.workers],
        ] as const;
        for (const [option, value] of withDefaults) {
          assertMatch(
            help,
            new RegExp(`\n  ${option} .*\\(default:? ${value}\\)`),
          );
        }
        assertMatch(help, /\n {2}--quiet {2,}\S/);
        assertMatch(help, /\n {2}--trace {2,}\S/);
        assertMatch(help, /\n {2}-h, --help {2,}\S/);
        // Those are all the options it lists, each once: none is left out here.
        const listed = help.split("\n").filter((line) => /^ {2}-/.test(line))
          .map((line) => line.trim().split(/ {2,}/)[0]);
        assertEquals(
          listed.toSorted(),
          [
            ...withDefaults.map(([option]) => option),
            "--quiet",
            "--trace",
            "-h, --help",
          ]
            .toSorted(),
        );
        assertMatch(help, /\nExamples:\n {2}deno run /);
        // Quoted: zsh would take [::1] for a pattern of file names.
        assertStringIncludes(help, "deno run '--allow-net=[::1]' ");
        assertNotMatch(help, / --allow-net=\[/);
      });
    }
  }),
);

Deno.test(
  "main.ts reports a port in use in one line and exits 1",
  withDeadline(async () => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { code, stdout, stderr } = await mainCommand([
      `--port=${taken.addr.port}`,
    ]).output();
    assertEquals(code, 1);
    assertEquals(decoder.decode(stdout), "");
    assertEquals(
      decoder.decode(stderr),
      `error: Address 127.0.0.1:${taken.addr.port} is already in use; stop what uses it or choose another --port\n`,
    );
  }),
);

Deno.test(
  "main.ts reports an address it cannot listen on in one line, no stack trace, and exits 1",
  withDeadline(async (t) => {
    for (
      const [hostname, reason] of [
        ["nonexistent.invalid", /failed to lookup address/],
        ["256.1.1.1", /failed to lookup address/],
        ["127.0.0.1:8080", /invalid host/],
      ] as const
    ) {
      await t.step(hostname, async () => {
        const { code, stdout, stderr } = await mainCommand(
          [`--hostname=${hostname}`, "--port=0"],
          { allowNet: hostname },
        ).output();
        assertEquals(code, 1);
        assertEquals(decoder.decode(stdout), "");
        const lines = decoder.decode(stderr).trimEnd().split("\n");
        assertEquals(lines.length, 1, lines.join("\n"));
        assert(lines[0].startsWith(`error: Cannot listen on `), lines[0]);
        assertMatch(lines[0], reason);
      });
    }
  }),
);

Deno.test({
  name:
    "main.ts listens on IPv6 with --hostname=::1 or [::1], and names the flag when it has no permission",
  // It stops main.ts with SIGTERM and expects exit code 0.
  ignore: noSignals,
  fn: withDeadline(async (t) => {
    for (const hostname of ["::1", "[::1]"]) {
      await t.step(`--hostname=${hostname}`, async () => {
        await using main = await startServerProcess(
          [`--hostname=${hostname}`],
          { allowNet: "[::1]" },
        );
        assert(main.url.startsWith("http://[::1]:"), main.listeningLine);
        assertEquals(await (await fetch(main.url)).text(), hello);
        main.kill("SIGTERM");
        assertEquals((await main.exited()).code, 0);
      });
    }
    await t.step("no permission for [::1]", async () => {
      const { code, stderr } = await mainCommand([
        "--hostname=::1",
        "--port=0",
      ]).output();
      assertEquals(code, 1);
      assertEquals(
        decoder.decode(stderr),
        // Quoted: zsh would take [::1] for a pattern of file names.
        `error: No permission to listen on [::1]:0; run: deno run '--allow-net=[::1]' --allow-read=${folder} ${folder}/main.ts --hostname=::1 --port=0\n`,
      );
    });
  }),
});

Deno.test(
  "main.ts short of a permission names one command with read and net together, the user's own read flag kept, and that command starts it",
  withDeadline(async (t) => {
    const cases = [
      [
        "no permission at all",
        [],
        "read the pages or listen on 127.0.0.1:0",
        "--allow-read=.",
      ],
      [
        "one page readable",
        ["--allow-net=127.0.0.1", "--allow-read=hello.html"],
        "read the pages",
        "--allow-read=.",
      ],
      [
        "--allow-read=. and no net",
        ["--allow-read=."],
        "listen on 127.0.0.1:0",
        "--allow-read=.",
      ],
      [
        "--allow-read and no net",
        ["--allow-read"],
        "listen on 127.0.0.1:0",
        "--allow-read",
      ],
    ] as const;
    for (const [name, flags, cannot, readFlag] of cases) {
      await t.step(name, async () => {
        const { code, stdout, stderr } = await mainInFolder(flags, [
          "serial",
          "--port=0",
        ]).output();
        assertEquals(code, 1);
        assertEquals(decoder.decode(stdout), "");
        const command =
          `deno run --allow-net=127.0.0.1 ${readFlag} main.ts serial --port=0`;
        assertEquals(
          decoder.decode(stderr),
          `error: No permission to ${cannot}; run: ${command}\n`,
        );
        // The command it names has everything: it starts and serves.
        const [deno, ...args] = command.split(" ");
        await using server = await spawnServer(deno, args, { cwd: folder });
        assertEquals(await (await fetch(server.url)).text(), hello);
      });
    }
  }),
);

Deno.test({
  name:
    "main.ts runs without deno.json from another folder, serves, and exits 0 on SIGTERM",
  ignore: noSignals,
  fn: withDeadline(async () => {
    await using main = await startServerProcess(["serial"]);
    assertEquals(main.mode, "serial");
    assertEquals(await (await fetch(main.url)).text(), hello);
    main.kill("SIGTERM");
    const { code, output, stderr } = await main.exited();
    assertEquals(code, 0, stderr);
    assertEquals(stderr, "");
    assertMatch(output, /GET \/ 200 \(\d+ ms\)\n/);
    assertMatch(output, /Stopped\n$/);
  }),
});

Deno.test(
  "main.ts logs the local time of day",
  withDeadline(async () => {
    // UTC+14 all year, so the local hour can never pass for the UTC one.
    await using main = await startServerProcess([], {
      env: { TZ: "Etc/GMT-14" },
    });
    const before = new Date().getUTCHours();
    await (await fetch(main.url)).text();
    main.kill("SIGTERM");
    const after = new Date().getUTCHours();
    const { output } = await main.exited();
    const hour = Number(
      /\n(\d\d):\d\d:\d\d\.\d{3} GET \/ 200 /.exec(output)?.[1],
    );
    assert(
      [before, after].some((utc) => hour === (utc + 14) % 24),
      `UTC hour ${before}, logged: ${output}`,
    );
  }),
);

Deno.test({
  name: "main.ts keeps serving when its standard output fails (> /dev/full)",
  // /dev/full, where every write fails (ENOSPC), is Linux's: macOS has none.
  ignore: Deno.build.os !== "linux",
  fn: withDeadline(async () => {
    const port = freePort();
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        'exec deno "$@" > /dev/full',
        "sh",
        ...denoRunArgs([`--port=${port}`]),
      ],
      cwd: folder,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let status = 0;
    try {
      // It cannot say that it listens: its answer says so.
      status = await waitFor(() => statusOf(port), `an answer on ${port}`);
    } finally {
      child.kill("SIGTERM");
    }
    const { code, stderr } = await child.output();
    assertEquals(status, 200);
    assertEquals(decoder.decode(stderr), "");
    assertEquals(code, 0);
  }),
});

/** A port that was free a moment ago, for a server that cannot print its own. */
function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** The status of the answer to /, or undefined while nothing answers. */
async function statusOf(port: number): Promise<number | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/`);
    await response.body?.cancel();
    return response.status;
  } catch (error) {
    if (error instanceof TypeError) return undefined; // connection refused
    throw error;
  }
}

Deno.test(
  "docs/hardening.md's options table lists every option of --help, with its default",
  withDeadline(async () => {
    const readme = await Deno.readTextFile(
      new URL("../docs/hardening.md", import.meta.url),
    );
    const rows = new Map(
      [...readme.matchAll(/^\| `(--[\w-]+)[^`]*` +\| ([^|]*?) +\|/gm)]
        .map(([, flag, byDefault]) => [flag, byDefault]),
    );
    const { stdout } = await mainCommand(["--help"]).output();
    const flags = decoder.decode(stdout).split("\n")
      .map((line) => /^ {2}(--[\w-]+)/.exec(line)?.[1])
      .filter((flag) => flag !== undefined);
    assertEquals([...rows.keys()].toSorted(), flags.toSorted());
    const named = (flag: string) =>
      flag.slice(2).replace(/-(.)/g, (_, c) => c.toUpperCase());
    for (const flag of flags) {
      const value = DEFAULTS[named(flag) as keyof typeof DEFAULTS];
      const expected = typeof value === "boolean"
        ? ""
        : value === Infinity
        ? "no limit"
        : flag === "--workers"
        ? "one per CPU"
        : `\`${value}\``;
      assertEquals(rows.get(flag), expected, flag);
    }
  }),
);
