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
  assertGreaterOrEqual,
  assertLess,
  assertStringIncludes,
} from "@std/assert";
import { chromiumMissing, launchChromium } from "./tools/browser.ts";
import { startServerProcess } from "./tools/server_process.ts";

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

/**
 * Starts main.ts in `mode`, runs `/lab?run` in Chromium against it, and
 * checks what holds in every mode: the page named the mode, printed
 * nothing, and every request was answered.
 */
async function runLab(
  mode: "serial" | "concurrent" | "parallel",
  { slow, count, sleepMs }: {
    slow: "sleep" | "block";
    count: number;
    sleepMs: number;
  },
) {
  const parallel = mode === "parallel";
  await using server = await startServerProcess([
    mode,
    `--sleep-ms=${sleepMs}`,
    // Short, for an idle connection Chromium opened ahead of time holds a
    // serial server this long: the page names it, and the run goes on.
    "--head-timeout-ms=1000",
    ...(parallel ? ["--workers=2"] : []),
  ], { denoFlags: parallel ? ["--unstable-net"] : [] });
  await using browser = await launchChromium();
  const run = await browser.runLab(
    `http://127.0.0.1:${server.port}/lab?run&slow=${slow}&count=${count}`,
    { screenshot: updateScreenshots && !parallel },
  );
  if (run.png) await Deno.writeFile(`screenshots/lab-${mode}.png`, run.png);
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

Deno.test({
  name:
    "Chromium's /lab in serial mode shows / waiting in the backlog while the server spent little on it",
  ignore: missing !== undefined,
  async fn() {
    const sleepMs = 2000;
    const { result: [slow, ...fast], story } = await runLab("serial", {
      slow: "sleep",
      count: 3,
      sleepMs,
    });
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
    const { result: [slow, ...fast], story } = await runLab("concurrent", {
      slow: "sleep",
      count: 3,
      sleepMs,
    });
    for (const root of fast) {
      assertLess(root.answeredMs, slow.sentMs + sleepMs);
    }
    assertStringIncludes(story[0], "Every / was answered while /sleep");
  },
});

Deno.test({
  name:
    "Chromium's /lab in parallel mode with two workers and /block says which requests met the blocked worker",
  ignore: missing !== undefined,
  async fn() {
    const { result: [block, ...fast], story, met: metLabels } = await runLab(
      "parallel",
      { slow: "block", count: 5, sleepMs: 1500 },
    );
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
  },
});
