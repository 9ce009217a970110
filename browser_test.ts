/**
 * The pages in a real browser, as the async book asks its reader to check
 * them: headless Chromium, driven by Puppeteer, loads `/`, `/sleep` and an
 * unknown path from main.ts, two tabs at once in each mode, and runs the
 * experiment of `/lab` against a server in each mode.
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
  assertStringIncludes,
} from "@std/assert";
import {
  type Chromium,
  chromiumMissing,
  type LabOptions,
  type LabRun,
  launchChromium,
} from "./tools/browser.ts";
import {
  type ServerProcess,
  startServerProcess,
} from "./tools/server_process.ts";

const missing = await chromiumMissing();
if (missing) console.log(`browser tests skipped: ${missing}`);
const updateScreenshots = Deno.args.includes("--update-screenshots");
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test({
    name:
      `Chromium shows hello.html for / and /sleep and the 404 page for an unknown path (${mode})`,
    ignore: missing !== undefined,
    async fn() {
      await using server = await startServerProcess([mode, "--sleep-ms=300"]);
      await using browser = await launchChromium();
      const base = `http://127.0.0.1:${server.port}`;
      for (
        const [path, status, heading, name] of [
          ["/", 200, "Hello!", "hello"],
          ["/sleep", 200, "Hello!", ""], // the same page as /
          ["/nowhere", 404, "Oops!", "404"],
        ] as const
      ) {
        const visit = await browser.visit(base + path, { screenshot: true });
        assertEquals([visit.status, visit.title, visit.heading], [
          status,
          "Hello!",
          heading,
        ], path);
        assert(visit.png !== undefined);
        assertEquals([...visit.png.subarray(0, 8)], PNG_SIGNATURE);
        if (updateScreenshots && name && mode === "concurrent") {
          await Deno.writeFile(`screenshots/${name}.png`, visit.png);
        }
      }
    },
  });
}

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test({
    name: `Chromium loading /sleep and / in two tabs at once: / ${
      mode === "serial" ? "waits" : "does not wait"
    } (${mode})`,
    ignore: missing !== undefined,
    async fn() {
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
      console.log(
        `  ${mode}: / answered ${
          Math.round(fast.answeredAtMs - sleep.sentAtMs)
        } ms after /sleep was sent, /sleep after ${
          Math.round(sleep.answeredAtMs - sleep.sentAtMs)
        } ms; / took ${Math.round(fast.loadedMs - fast.startedMs)} ms to load`,
      );
      console.log(`  server log: ${server.lines.slice(1).join(" | ")}`);
      assertEquals([sleep.status, fast.status], [200, 200]);
      // The server cannot start the sleep before Chromium sends /sleep, so
      // sleepOverAtMs is the earliest a serial server can get to /, and a
      // concurrent one answers / during the sleep. The two answers are not
      // compared with each other: when they arrive together, Chromium may
      // take them in either order.
      if (mode === "serial") {
        assertGreaterOrEqual(fast.answeredAtMs, sleepOverAtMs);
      } else assertLess(fast.answeredAtMs, sleepOverAtMs);
    },
  });
}

type Mode = "serial" | "concurrent" | "parallel";
type Slow = "sleep" | "block";

/** The flags main.ts runs with in the `/lab` tests, in `mode`. */
function labServerArgs(mode: Mode, sleepMs: number, port?: number) {
  return {
    args: [
      mode,
      `--sleep-ms=${sleepMs}`,
      // Short, for an idle connection Chromium opened ahead of time holds
      // a serial server this long: the page names it, and the run goes on.
      "--head-timeout-ms=1000",
      ...(mode === "parallel" ? ["--workers=2"] : []),
      // After tools/server_process.ts's --port=0: the last one counts.
      ...(port === undefined ? [] : [`--port=${port}`]),
    ],
    denoFlags: mode === "parallel" ? ["--unstable-net"] : [],
  };
}

/** Starts main.ts for the `/lab` tests, on `port` if given. */
async function startLabServer(mode: Mode, sleepMs: number, port?: number) {
  const { args, denoFlags } = labServerArgs(mode, sleepMs, port);
  const server = await startServerProcess(args, { denoFlags });
  if (port !== undefined) assertEquals(server.port, port);
  return server;
}

/**
 * Runs `/lab?run` in `browser` against `server`, in `mode`, and checks what
 * holds in every mode: the page named the mode, printed nothing, and every
 * request was answered.
 */
async function labRun(
  browser: Chromium,
  server: ServerProcess,
  mode: Mode,
  { slow, count, predict, ...options }: LabOptions & {
    slow: Slow;
    count: number;
    predict?: "soon" | "after";
  },
) {
  const guess = predict ? `&predict=${predict}` : "";
  const run = await browser.runLab(
    `http://127.0.0.1:${server.port}/lab?run&slow=${slow}&count=${count}${guess}`,
    options,
  );
  console.log(
    `  ${mode}, /${slow}: ${
      run.result.map(({ path, sentMs, answeredMs, serverMs, worker }) =>
        `${path} sent ${sentMs}, answered ${answeredMs} ms (server ${serverMs} ms${
          worker ? `, worker ${worker}` : ""
        })`
      ).join("; ")
    }`,
  );
  console.log(`  server log: ${server.lines.slice(1).join(" | ")}`);
  assertEquals(run.printed, [], "the page printed to the console");
  assertEquals(run.mode, mode);
  assertEquals(run.result.map((entry) => entry.path), [
    `/${slow}`,
    ...Array(count).fill("/"),
  ]);
  const result = run.result.map(({ answeredMs, serverMs, ...rest }) => {
    assert(answeredMs !== null && serverMs !== null, "A request failed");
    return { ...rest, answeredMs, serverMs, waitMs: answeredMs - rest.sentMs };
  });
  return { ...run, result };
}

/**
 * Starts main.ts in `mode` and a Chromium, and runs `/lab?run` once: see
 * labRun().
 */
async function runLab(
  mode: Mode,
  { sleepMs, ...options }: Parameters<typeof labRun>[3] & { sleepMs: number },
) {
  await using server = await startLabServer(mode, sleepMs);
  await using browser = await launchChromium();
  return await labRun(browser, server, mode, options);
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
    "Chromium's /lab in serial mode shows / waiting in the backlog while the server spent little on it",
  ignore: missing !== undefined,
  async fn() {
    const sleepMs = 2000;
    const { result: [slow, ...fast], story, png } = await runLab("serial", {
      slow: "sleep",
      count: 3,
      sleepMs,
      screenshot: updateScreenshots,
    });
    if (png) await Deno.writeFile("screenshots/lab-serial.png", png);
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
  },
});

Deno.test({
  name:
    "Chromium's /lab in concurrent mode shows every / answered while /sleep still sleeps",
  ignore: missing !== undefined,
  async fn() {
    const sleepMs = 2000;
    const { result: [slow, ...fast], story, png } = await runLab("concurrent", {
      slow: "sleep",
      count: 3,
      sleepMs,
      screenshot: updateScreenshots,
    });
    if (png) await Deno.writeFile("screenshots/lab-concurrent.png", png);
    for (const root of fast) {
      assertLess(root.answeredMs, slow.sentMs + sleepMs);
    }
    assertStringIncludes(story[0], "Every / was answered while /sleep");
  },
});

Deno.test({
  name:
    "Chromium's /lab draws no server tip on a bar until its answer has come, and drops kept runs it cannot read",
  ignore: missing !== undefined,
  async fn() {
    const run = await runLab("serial", {
      slow: "sleep",
      count: 3,
      sleepMs: 2000,
      watchWaiting: true,
      kept: "{not JSON",
    });
    // In serial mode every / waits for /sleep: rows waited, frame after
    // frame, and none had a tip.
    assert(run.waiting !== undefined);
    assertGreaterOrEqual(run.waiting.looked, 4, "Few waiting rows were seen");
    assertEquals(run.waiting.tipsDrawn, []);
    // Once answered, every row has one, however short the server's time.
    assertEquals(run.tips.length, 4);
    for (const width of run.tips) assertGreater(width, 0);
    // No guess, so no verdict; the unreadable kept value was replaced.
    assertEquals(run.verdict, undefined);
    assertEquals(keptRuns(run).map(({ mode, slow }) => `${mode} ${slow}`), [
      "serial /sleep",
    ]);
  },
});

Deno.test({
  name:
    "Chromium's /lab keeps a serial run across a restart on the same port: the comparison shows the serial / waiting and the concurrent one not, and the guess's verdict",
  ignore: missing !== undefined,
  async fn() {
    const sleepMs = 2000;
    await using browser = await launchChromium();
    const options = { slow: "sleep", count: 3, predict: "after" } as const;
    let port;
    {
      await using serial = await startLabServer("serial", sleepMs);
      port = serial.port;
      const run = await labRun(browser, serial, "serial", {
        ...options,
        // Kept runs that cannot be read, before the first run: dropped.
        kept: JSON.stringify({
          version: 1,
          runs: ["junk", { mode: "serial" }],
        }),
      });
      assert(run.verdict, "No verdict");
      assertEquals(run.verdict.held, "yes", run.verdict.text);
      assertStringIncludes(
        run.verdict.text,
        "Your guess, only after /sleep, held: in serial mode, / #1 waited ",
      );
      assertEquals(keptRuns(run).length, 1);
    }
    // The serial server has stopped: a concurrent one on the same port is
    // the same origin to the browser, with the same localStorage.
    await using concurrent = await startLabServer("concurrent", sleepMs, port);
    const run = await labRun(browser, concurrent, "concurrent", options);
    const [slow, first] = run.result;
    assert(run.verdict, "No verdict");
    assertEquals(run.verdict.held, "no", run.verdict.text);
    assertStringIncludes(
      run.verdict.text,
      "Your guess, only after /sleep, did not hold: in concurrent mode, / #1 was answered ",
    );
    assertLess(first.answeredMs, slow.sentMs + sleepMs);
    assertEquals(keptRuns(run).length, 2);

    const serialBlock = blockOf(run, "serial", "sleep");
    const concurrentBlock = blockOf(run, "concurrent", "sleep");
    assertEquals([serialBlock.state, serialBlock.first], ["run", "after"]);
    assertEquals([concurrentBlock.state, concurrentBlock.first], [
      "run",
      "soon",
    ]);
    assertEquals(serialBlock.rows, ["/sleep", "/ #1", "/ #2", "/ #3"]);
    // Not run yet: the mode the server is in says how; another mode names
    // its task, on this port.
    assertEquals(run.compare.length, 6);
    assertStringIncludes(
      blockOf(run, "concurrent", "block").text,
      "choose /block above and press Run",
    );
    assertStringIncludes(
      blockOf(run, "parallel", "sleep").text,
      `deno task parallel --port=${port}`,
    );
  },
});

Deno.test({
  name:
    "Chromium's /lab in serial, concurrent and parallel mode (two workers) on one port: the comparison draws all six runs, and in parallel mode the page says which / met the blocked worker",
  ignore: missing !== undefined,
  async fn() {
    const sleepMs = 1500;
    await using browser = await launchChromium();
    let port: number | undefined;
    let last: LabRun | undefined;
    for (const mode of ["serial", "concurrent", "parallel"] as const) {
      await using server = await startLabServer(mode, sleepMs, port);
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
    if (last.comparePng) {
      await Deno.writeFile("screenshots/lab-compare.png", last.comparePng);
    }
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
  },
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
    assertStringIncludes(story[0], "met the blocked worker");
    for (const label of labels) {
      assertEquals(story[0].includes(label), met.includes(label), story[0]);
    }
  }
}
