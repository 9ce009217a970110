/**
 * The lab's probe of another server, in headless Chromium: `/lab?probe=URL`
 * on one server probes main.ts on another port, in each mode, from the
 * browser, and sets `globalThis.probeResult` with the fields of
 * `probe.ts --json`. What the verdict makes of the figures is tested
 * without a browser in probe_verdict_test.ts.
 *
 * Skipped, with the reason printed, where there is no Chromium. Run with
 * `-- --update-screenshots` (deno task screenshots) to rewrite
 * screenshots/lab-probe.png, the serial server's probe.
 */

import { assertEquals } from "@std/assert";
import { chromiumMissing, launchChromium } from "../tests/browser.ts";
import { startServerProcess } from "../tools/server_process.ts";
import { withDeadline } from "../tests/waiting.ts";

const missing = await chromiumMissing();
if (missing) console.log(`browser tests skipped: ${missing}`);
const updateScreenshots = Deno.args.includes("--update-screenshots");

const cases = [
  [["serial"], {
    verdict: "serial",
    atOnce: 1,
    atLeast: false,
    method: "slow",
    idleHolds: true,
  }],
  [["concurrent"], {
    verdict: "concurrent",
    atOnce: 5, // Chromium's six connections to one host, less the fast one
    atLeast: true,
    method: "slow",
    idleHolds: false,
  }],
  [["concurrent", "--max-in-flight=3"], {
    verdict: "pool",
    atOnce: 3,
    atLeast: false,
    method: "slow",
    idleHolds: false,
  }],
] as const;

for (const [args, expected] of cases) {
  Deno.test({
    name: `/lab?probe=URL finds main.ts ${args.join(" ")}: ${expected.verdict}`,
    ignore: missing !== undefined,
    fn: withDeadline(async () => {
      await using lab = await startServerProcess(["concurrent", "--quiet"]);
      await using target = await startServerProcess(
        [...args, "--sleep-ms=1000", "--quiet"],
      );
      await using browser = await launchChromium();
      const url = `${lab.url}lab?probe=${encodeURIComponent(target.url)}`;
      await using tab = await browser.openLab(url);
      const result = await tab.probed();
      const { verdict, atOnce, atLeast, method, idleHolds } = result;
      assertEquals(
        { verdict, atOnce, atLeast, method, idleHolds },
        expected,
        JSON.stringify(result),
      );
      assertEquals((await tab.look()).printed, []);
      if (updateScreenshots && args.join(" ") === "serial") {
        await Deno.writeFile(
          "docs/screenshots/lab-probe.png",
          await tab.probeScreenshot(),
        );
      }
    }, 120_000),
  });
}
