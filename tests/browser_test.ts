/**
 * The pages in a real browser, as the async book asks its reader to check
 * them: headless Chromium, driven by Puppeteer, loads `/`, `/sleep` and an
 * unknown path from main.ts, two tabs at once in each mode, and runs the
 * experiment of `/lab` against a server in each mode. What the lab makes of
 * a run's figures is tested without a browser, in lab/analysis_test.ts:
 * these tests check what needs one, the figures themselves and the page.
 *
 * Skipped, with the reason printed, where there is no Chromium. Run with
 * `-- --update-screenshots` to rewrite the PNGs in screenshots/.
 */

import {
  assert,
  assertEquals,
  assertGreater,
  assertGreaterOrEqual,
  assertLess,
  assertLessOrEqual,
  assertStringIncludes,
} from "@std/assert";
import {
  type Chromium,
  chromiumMissing,
  type LabRun,
  type LabTabOptions,
  launchChromium,
} from "./browser.ts";
import {
  type ServerProcess,
  startServerProcess,
} from "../tools/server_process.ts";
import { waitFor, withDeadline } from "./waiting.ts";

const missing = await chromiumMissing();
if (missing) console.log(`browser tests skipped: ${missing}`);
const updateScreenshots = Deno.args.includes("--update-screenshots");
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// Six runs of /lab, each with a server and a browser to start, take a
// while on a busy machine: a deadline catches a hang, not slowness.
const LAB_DEADLINE_MS = 180_000;

/** Writes a screenshot when the run was asked to rewrite them. */
async function save(name: string, png: Uint8Array | undefined) {
  if (!updateScreenshots) return;
  assert(png, `No screenshot for ${name}`);
  assertEquals([...png.subarray(0, 8)], PNG_SIGNATURE);
  await Deno.writeFile(`docs/screenshots/${name}.png`, png);
}

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test({
    name:
      `Chromium shows hello.html for / and /sleep and the 404 page for an unknown path (${mode})`,
    ignore: missing !== undefined,
    fn: withDeadline(async (t) => {
      await using server = await startServerProcess([mode, "--sleep-ms=300"]);
      await using browser = await launchChromium();
      const base = `http://127.0.0.1:${server.port}`;
      const pages = [
        ["/", 200, "Hello! Hi from Deno", "hello"],
        ["/sleep", 200, "Hello! Hi from Deno", ""], // the same page as /
        [
          "/nowhere",
          404,
          "Oops! Sorry, I don't know what you're asking for.",
          "404",
        ],
      ] as const;
      for (const [path, status, text, name] of pages) {
        await t.step(`${path}: ${status}, "${text}"`, async () => {
          const visit = await browser.visit(base + path, {
            screenshot: updateScreenshots,
          });
          assertEquals(
            [visit.status, visit.title, visit.heading, visit.text],
            [status, "Hello!", text.split(" ")[0], text],
          );
          if (name && mode === "concurrent") await save(name, visit.png);
        });
      }
    }),
  });
}

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test({
    name: `Chromium loading /sleep and / in two tabs at once: / ${
      mode === "serial" ? "waits" : "does not wait"
    } (${mode})`,
    ignore: missing !== undefined,
    fn: withDeadline(async () => {
      const sleepMs = 1000;
      await using server = await startServerProcess([
        mode,
        `--sleep-ms=${sleepMs}`,
        "--head-timeout-ms=2000",
      ]);
      await using browser = await launchChromium();
      const base = `http://127.0.0.1:${server.port}`;
      const sleepTab = await browser.openTab();
      const rootTab = await browser.openTab();
      // Which request a serial server takes first is the order it accepts
      // the connections in, not the order the tabs began to load in: on a
      // busy machine, Chromium may get /sleep onto a socket after / even
      // with a head start. So / is asked for only once /sleep is there.
      const sleepSent = Promise.withResolvers<void>();
      const slow = sleepTab.visit(`${base}/sleep`, {
        onRequestSent: sleepSent.resolve,
      });
      await Promise.race([sleepSent.promise, slow]);
      const fast = await rootTab.visit(`${base}/`);
      const sleep = await slow;
      const sleepOverAtMs = sleep.sentAtMs + sleepMs;
      // What a failure shows: the two answers against /sleep, and the log.
      const seen = `/ answered ${
        Math.round(fast.answeredAtMs - sleep.sentAtMs)
      } ms after /sleep was sent, /sleep after ${
        Math.round(sleep.answeredAtMs - sleep.sentAtMs)
      } ms; server log: ${server.lines.slice(1).join(" | ")}`;
      assertEquals([sleep.status, fast.status], [200, 200], seen);
      // The server cannot start the sleep before Chromium sends /sleep, so
      // sleepOverAtMs is the earliest a serial server can get to /, and a
      // concurrent one answers / during the sleep. The two answers are not
      // compared with each other: when they arrive together, Chromium may
      // take them in either order.
      if (mode === "serial") {
        assertGreaterOrEqual(fast.answeredAtMs, sleepOverAtMs, seen);
      } else assertLess(fast.answeredAtMs, sleepOverAtMs, seen);
    }),
  });
}

type Mode = "serial" | "concurrent" | "parallel";
type Slow = "sleep" | "block" | "block-sliced" | "block-worker";

/**
 * The slow request's time in the /lab tests where only the first / matters
 * (the guesses, the comparison): the page sends a / every 200 ms from the
 * first, so a second leaves that one well inside it, however busy the
 * machine, and each run takes no longer than it must.
 */
const FIRST_ONLY_MS = 1000;

/** Starts main.ts for the `/lab` tests, in `mode`, on `port` if given. */
async function startLabServer(
  mode: Mode,
  sleepMs: number,
  { port, more = [] }: { port?: number; more?: string[] } = {},
) {
  const server = await startServerProcess([
    mode,
    `--sleep-ms=${sleepMs}`,
    // Short, for an idle connection Chromium opened ahead of time holds
    // a serial server this long: the page names it, and the run goes on.
    "--head-timeout-ms=1000",
    ...(mode === "parallel" ? ["--workers=2"] : []),
    ...more,
    // After startServerProcess()'s --port=0: the last one counts.
    ...(port === undefined ? [] : [`--port=${port}`]),
  ], { denoFlags: mode === "parallel" ? ["--unstable-net"] : [] });
  if (port !== undefined) assertEquals(server.port, port);
  return server;
}

/** The address of `/lab` on `server`, with a run's choices. */
function labUrl(
  server: ServerProcess,
  choices: { run?: boolean; slow: Slow; count: number; predict?: string },
) {
  const { run = true, slow, count, predict } = choices;
  const guess = predict ? `&predict=${predict}` : "";
  return `http://127.0.0.1:${server.port}/lab?${
    run ? "run&" : ""
  }slow=${slow}&count=${count}${guess}`;
}

/**
 * Checks what holds of every run, in every mode: the page named the mode
 * and printed nothing, every request was answered, and the server's time
 * for each, counted from its first byte, lies within the browser's wait.
 */
function checkRun(
  run: LabRun,
  server: ServerProcess,
  { mode, slow, count }: { mode: Mode; slow: Slow; count: number },
) {
  // What a failure shows: each request's times, and the server's log.
  const seen = `${mode}, /${slow}: ${
    run.result.map(({ path, sentMs, answeredMs, serverMs, idleMs }) =>
      `${path} sent ${sentMs}, answered ${answeredMs} ms (server ${serverMs} ms, idle ${idleMs} ms)`
    ).join("; ")
  }; server log: ${server.lines.slice(1).join(" | ")}`;
  assertEquals(run.printed, [], "the page printed to the console");
  assertEquals(run.mode, mode);
  assertEquals(run.result.map((entry) => entry.path), [
    `/${slow}`,
    ...Array(count).fill("/"),
  ]);
  assertEquals(
    run.rows.map((row) => row.state),
    Array(count + 1).fill("answered"),
    seen,
  );
  const result = run.result.map(({ answeredMs, serverMs, idleMs, ...rest }) => {
    assert(
      answeredMs !== null && serverMs !== null,
      `A request failed: ${seen}`,
    );
    assert(idleMs !== undefined && idleMs >= 0, `Idle time ${idleMs}: ${seen}`);
    const waitMs = answeredMs - rest.sentMs;
    // Each figure is rounded to 0.1 ms.
    assertLessOrEqual(
      serverMs,
      waitMs + 0.5,
      `${rest.path}: server time; ${seen}`,
    );
    return { ...rest, answeredMs, serverMs, idleMs, waitMs };
  });
  return { ...run, result };
}

/** Runs `/lab?run` in `browser` against `server` once: see checkRun(). */
async function labRun(
  browser: Chromium,
  server: ServerProcess,
  mode: Mode,
  { slow, count, predict, screenshot, compareScreenshot, ...options }:
    & LabTabOptions
    & {
      slow: Slow;
      count: number;
      predict?: "soon" | "after";
      screenshot?: boolean;
      compareScreenshot?: boolean;
    },
) {
  const run = await browser.runLab(
    labUrl(server, { slow, count, predict }),
    { ...options, screenshot, compareScreenshot },
  );
  return checkRun(run, server, { mode, slow, count });
}

/** The comparison's block for `mode` and `slow`. */
function blockOf(run: LabRun, mode: Mode, slow: Slow) {
  const block = run.compare.find((b) =>
    b.mode === mode && b.slow === `/${slow}`
  );
  assert(block, `No block for ${mode} /${slow}`);
  return block;
}

/** The runs kept in localStorage, as the page stored them. */
function keptRuns(run: LabRun): { mode: string; slow: string }[] {
  assert(run.kept !== null, "Nothing kept");
  const kept = JSON.parse(run.kept);
  assertEquals(kept.version, 1);
  return kept.runs;
}

Deno.test({
  name:
    "Chromium's /lab in serial mode shows / waiting in the backlog, with no server tip on a bar until its answer has come",
  ignore: missing !== undefined,
  fn: withDeadline(async () => {
    const sleepMs = 2000;
    await using server = await startLabServer("serial", sleepMs);
    await using browser = await launchChromium();
    const run = await labRun(browser, server, "serial", {
      slow: "sleep",
      count: 3,
      watchWaiting: true,
      screenshot: updateScreenshots,
      kept: "{not JSON",
    });
    await save("lab-serial", run.png);
    const { result: [slow, ...fast], story } = run;
    // The sleep ends sleepMs after /sleep was sent at the earliest, and a
    // serial server takes no other connection before then.
    for (const root of fast) {
      assertGreaterOrEqual(root.answeredMs, slow.sentMs + sleepMs);
    }
    assert(
      fast.some(({ waitMs, serverMs }) =>
        waitMs >= 500 && serverMs * 4 < waitMs
      ),
      "No / waited long in the browser for a short time in the server",
    );
    assertStringIncludes(story[0], "in the kernel's backlog");
    // Every / waited for /sleep: rows waited, frame after frame, and none
    // had a tip. Once answered, every row has one, however short.
    assert(run.waiting !== undefined);
    assertGreaterOrEqual(run.waiting.looked, 4, "Few waiting rows were seen");
    assertEquals(run.waiting.tipsDrawn, []);
    assertEquals(run.tips.length, 4);
    for (const width of run.tips) assertGreater(width, 0);
    // No guess, so no verdict; the unreadable kept value was replaced.
    assertEquals(run.verdict, undefined);
    assertEquals(keptRuns(run).map(({ mode, slow }) => `${mode} ${slow}`), [
      "serial /sleep",
    ]);
  }),
});

Deno.test({
  name:
    "Chromium's /lab in concurrent mode shows every / answered while /sleep still sleeps",
  ignore: missing !== undefined,
  fn: withDeadline(async () => {
    const sleepMs = 2000;
    await using server = await startLabServer("concurrent", sleepMs);
    await using browser = await launchChromium();
    const run = await labRun(browser, server, "concurrent", {
      slow: "sleep",
      count: 3,
      screenshot: updateScreenshots,
    });
    await save("lab-concurrent", run.png);
    const { result: [slow, ...fast], story } = run;
    for (const root of fast) {
      assertLess(root.answeredMs, slow.sentMs + sleepMs);
    }
    assertStringIncludes(story[0], "Every / was answered while /sleep");
  }),
});

Deno.test({
  name:
    "Chromium's /lab shows a connection it opened ahead of time apart from the server's time for the request",
  ignore: missing !== undefined,
  fn: withDeadline(async () => {
    // The case: concurrent mode, /block. --trace logs each
    // connection as it is accepted and as its head arrives.
    const spinMs = 1000;
    await using server = await startLabServer("concurrent", spinMs, {
      more: ["--trace", "--head-timeout-ms=10000"],
    });
    await using browser = await launchChromium();
    await using lab = await browser.openLab(
      labUrl(server, { run: false, slow: "block", count: 1 }),
    );
    await lab.preconnect();
    await idleConnection(server);
    // Another client's /block keeps it idle: while the only thread spins,
    // the connection Chromium opened waits unread.
    const idleForMs = spinMs;
    await (await fetch(`http://127.0.0.1:${server.port}/block`)).body?.cancel();
    await lab.run();
    const run = checkRun(
      await lab.finished({ screenshot: updateScreenshots }),
      server,
      {
        mode: "concurrent",
        slow: "block",
        count: 1,
      },
    );
    await save("lab-preconnect", run.png);
    const labels = run.result.map((r, i) => i ? `/ #${i}` : r.path);
    const opened = labels.filter((_, i) => run.result[i].idleMs >= idleForMs);
    assertGreaterOrEqual(opened.length, 1, "No request used the connection");
    // Chromium may open connections ahead of its own accord too: the page
    // draws each, names them all in one note, and counts none as the
    // server's time (checkRun).
    for (const label of opened) {
      assert(run.idle.includes(label), `${label} has no idle line`);
    }
    const notes = run.notes.filter((note) =>
      note.startsWith("Your browser opened ")
    );
    assertEquals(notes.length, 1, run.notes.join("\n"));
    for (const label of opened) assertStringIncludes(notes[0], label);
    // The spin's time, as the server counted it: more on a busy machine.
    const spun = /because \/block kept the only thread spinning for (\d+\.\d) s/
      .exec(run.story[0]);
    assert(spun, run.story[0]);
    assertGreaterOrEqual(Number(spun[1]), spinMs / 1000, run.story[0]);
  }),
});

/**
 * Resolves once `server`, run with --trace, has accepted a connection that
 * has not sent its head yet; throws after `withinMs`, so that the test ends,
 * and its browser and server are stopped, even when none comes.
 */
async function idleConnection(server: ServerProcess, withinMs = 20_000) {
  const idle = () => {
    const numbers = (event: string) =>
      server.lines.map((line) =>
        new RegExp(` #(\\d+) ${event}`).exec(line)?.[1]
      ).filter((n) => n !== undefined);
    const spoken = new Set(numbers("head:"));
    return numbers("accepted").some((n) => !spoken.has(n));
  };
  await waitFor(idle, "a connection accepted that has sent no head", {
    ms: withinMs,
  });
}

Deno.test({
  name:
    "Chromium's /lab draws no axis before a run, keeps the guess for the next run, asks again when the mode or slow request changes, and compares runs across a restart on the same port",
  ignore: missing !== undefined,
  fn: withDeadline(async () => {
    const sleepMs = FIRST_ONLY_MS;
    const choices = { slow: "sleep", count: 3 } as const;
    await using browser = await launchChromium();
    let serial: ServerProcess | undefined = await startLabServer(
      "serial",
      sleepMs,
    );
    const port = serial.port;
    try {
      await using lab = await browser.openLab(
        labUrl(serial, { ...choices, run: false }),
        // Kept runs that cannot be read, before the first run: dropped.
        { kept: JSON.stringify({ version: 1, runs: ["junk", { mode: 1 }] }) },
      );
      const before = await lab.look();
      assertEquals(before.state, "idle");
      assertEquals(before.axes, { live: false, compare: false });
      assertEquals(before.rows, []);
      assertEquals(
        before.compare.map((b) => b.state),
        Array(6).fill("missing"),
      );
      assertEquals(before.guess, { value: "none" });

      await lab.choose({ predict: "after" });
      await lab.run();
      const first = checkRun(await lab.finished(), serial, {
        mode: "serial",
        ...choices,
      });
      assert(first.verdict, "No verdict");
      assertEquals(first.verdict.held, "yes", first.verdict.text);
      assertStringIncludes(
        first.verdict.text,
        "Your guess, only after /sleep, held: in serial mode, / #1 waited ",
      );
      assertEquals(first.guess, { value: "after" }, "The guess did not stay");
      assertEquals(first.axes, { live: true, compare: true });
      assertEquals(keptRuns(first).length, 1);

      // The same tab, the same guess, and a concurrent server on the same
      // port: the same origin to the browser, with the same localStorage.
      await serial.stop();
      serial = undefined;
      await using concurrent = await startLabServer("concurrent", sleepMs, {
        port,
      });
      await lab.run();
      const second = checkRun(await lab.finished(), concurrent, {
        mode: "concurrent",
        ...choices,
      });
      assert(second.verdict, "No verdict");
      assertEquals(second.verdict.held, "no", second.verdict.text);
      assertStringIncludes(
        second.verdict.text,
        "Your guess, only after /sleep, did not hold: in concurrent mode, / #1 was answered ",
      );
      assertEquals(second.guess, {
        value: "none",
        why: "Guess again: the server now runs in concurrent mode.",
      });
      assertEquals(keptRuns(second).length, 2);
      const serialBlock = blockOf(second, "serial", "sleep");
      const concurrentBlock = blockOf(second, "concurrent", "sleep");
      assertEquals([serialBlock.state, serialBlock.first], ["run", "after"]);
      assertEquals([concurrentBlock.state, concurrentBlock.first], [
        "run",
        "soon",
      ]);
      assertEquals(serialBlock.rows, ["/sleep", "/ #1", "/ #2", "/ #3"]);
      // Not run yet: the mode the server is in says how; another mode
      // names its task, on this port.
      assertStringIncludes(
        blockOf(second, "concurrent", "block").text,
        "choose /block above and press Run",
      );
      assertStringIncludes(
        blockOf(second, "parallel", "sleep").text,
        `deno task parallel --port=${port}`,
      );

      // A guess made, then another slow request chosen: asked again.
      await lab.choose({ predict: "soon" });
      assertEquals((await lab.look()).guess, { value: "soon" });
      await lab.choose({ slow: "block" });
      assertEquals((await lab.look()).guess, {
        value: "none",
        why: "Guess again: the slow request is now /block.",
      });
    } finally {
      await serial?.stop();
    }
  }, LAB_DEADLINE_MS),
});

Deno.test({
  name:
    "Chromium's /lab in serial, concurrent and parallel mode (two workers) on one port: the comparison draws all six runs, and in parallel mode the page says which / met the blocked worker",
  ignore: missing !== undefined,
  fn: withDeadline(async () => {
    const sleepMs = FIRST_ONLY_MS;
    await using browser = await launchChromium();
    let port: number | undefined;
    let last: LabRun | undefined;
    for (const mode of ["serial", "concurrent", "parallel"] as const) {
      await using server = await startLabServer(mode, sleepMs, { port });
      port = server.port;
      await labRun(browser, server, mode, { slow: "sleep", count: 3 });
      const block = await labRun(browser, server, mode, {
        slow: "block",
        count: mode === "parallel" ? 5 : 3,
        compareScreenshot: updateScreenshots && mode === "parallel",
      });
      if (mode === "parallel") checkMet(block);
      last = block;
    }
    assert(last);
    await save("lab-compare", last.comparePng);
    const first = (mode: Mode, slow: Slow) => blockOf(last, mode, slow).first;
    assertEquals(
      last.compare.map((block) => block.state),
      Array(6).fill("run"),
    );
    // A serial loop and a spinning thread make the first / wait; a
    // concurrent loop with /sleep does not.
    assertEquals(first("serial", "sleep"), "after");
    assertEquals(first("serial", "block"), "after");
    assertEquals(first("concurrent", "sleep"), "soon");
    assertEquals(first("parallel", "sleep"), "soon");
  }, LAB_DEADLINE_MS),
});

Deno.test({
  name:
    "Chromium's /lab offers /block's cures: in concurrent mode the first / comes before either, the page names the cure it saw, and the comparison adds its blocks",
  ignore: missing !== undefined,
  fn: withDeadline(async () => {
    await using browser = await launchChromium();
    await using server = await startLabServer("concurrent", FIRST_ONLY_MS);
    let last: LabRun | undefined;
    for (const slow of ["block-sliced", "block-worker"] as const) {
      last = await labRun(browser, server, "concurrent", {
        slow,
        count: 3,
        predict: "soon",
      });
      assertEquals(last.verdict?.held, "yes", last.verdict?.text);
      assertStringIncludes(last.story[0], `/${slow} took `);
      assertEquals(blockOf(last, "concurrent", slow).first, "soon");
    }
    // The six of /sleep and /block, then three for each cure kept.
    assertEquals(
      last!.compare.map((block) => block.slow),
      ["/sleep", "/block", "/block-sliced", "/block-worker"].flatMap((slow) =>
        Array(3).fill(slow)
      ),
    );
  }, LAB_DEADLINE_MS),
});

/**
 * Checks a parallel run with /block: each answer names worker 1 or 2, and
 * the page marks and names exactly the / that met /block's worker.
 */
function checkMet({ result: [block, ...fast], story, met: metLabels }: {
  result: { worker?: number }[];
  story: string[];
  met: string[];
}) {
  const labels = fast.map((_, i) => `/ #${i + 1}`);
  const met = labels.filter((_, i) => fast[i].worker === block.worker);
  for (const { worker } of [block, ...fast]) {
    assert(worker === 1 || worker === 2, `worker ${worker}`);
  }
  assertEquals(metLabels, met);
  // The first sentence names exactly the requests that met it.
  if (met.length === 0) {
    assertStringIncludes(story[0], "None of the / met the blocked worker");
  } else {
    assertStringIncludes(
      story[0],
      `met the blocked worker: the kernel gave ${
        met.length > 1 ? "their connections" : "its connection"
      } to worker ${block.worker},`,
    );
    for (const label of labels) {
      assertEquals(story[0].includes(label), met.includes(label), story[0]);
    }
  }
}
