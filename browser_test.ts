/**
 * The pages in a real browser, as the async book asks its reader to check
 * them: headless Chromium loads `/`, `/sleep` and an unknown path from
 * main.ts, and two tabs at once in each mode.
 *
 * Skipped, with the reason printed, where there is no Chromium. Run with
 * `-- --update-screenshots` to rewrite the PNGs in screenshots/.
 */

import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLess,
} from "@std/assert";
import { chromiumMissing, launchChromium } from "./tools/chromium.ts";
import { startServerProcess } from "./tools/server_process.ts";

const missing = await chromiumMissing();
if (missing) console.log(`browser tests skipped: ${missing}`);
const updateScreenshots = Deno.args.includes("--update-screenshots");
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

async function startChromium() {
  // A fresh profile each time, inside the project (the tests may write
  // nowhere else), and removed afterwards.
  await Deno.mkdir(".chromium", { recursive: true });
  return launchChromium(await Deno.makeTempDir({ dir: ".chromium" }));
}

for (const mode of ["serial", "concurrent"] as const) {
  Deno.test({
    name:
      `Chromium shows hello.html for / and /sleep and the 404 page for an unknown path (${mode})`,
    ignore: missing !== undefined,
    async fn() {
      await using server = await startServerProcess([mode, "--sleep-ms=300"]);
      await using browser = await startChromium();
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
      await using browser = await startChromium();
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
