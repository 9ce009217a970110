/**
 * The lab's probe of another server, in headless Chromium: `/lab?probe=URL`
 * on one server probes main.ts on another port, in each mode, from the
 * browser, and sets `globalThis.probeResult` with the fields of
 * `probe.ts --json`, and heads its section with that verdict. What the
 * verdict makes of the figures is tested without a browser in
 * verdict_test.ts.
 *
 * Skipped, with the reason printed, where there is no Chromium. Run with
 * `-- --update-screenshots` (deno task screenshots) to rewrite
 * screenshots/lab-probe.png, the serial server's probe.
 */

import { assertEquals } from "@std/assert";
import { chromiumMissing, launchChromium } from "../tests/browser.ts";
import { allAtOnce, SERIAL } from "../tests/probing.ts";
import { startServerProcess } from "../tools/server_process.ts";
import { withDeadline } from "../tests/waiting.ts";

const missing = await chromiumMissing();
if (missing) console.log(`browser tests skipped: ${missing}`);
const updateScreenshots = Deno.args.includes("--update-screenshots");

const cases = [
  [["serial"], SERIAL, "serial — one at a time"],
  // Chromium's six connections to one host, less the fast one:
  [["concurrent"], allAtOnce(5), "concurrent — all at once"],
  // The browser holds one idle connection: whether 3 fill the pool, it
  // cannot tell (probe.ts can: they do).
  [["concurrent", "--max-in-flight=3"], {
    verdict: "pool",
    atOnce: 3,
    atLeast: false,
    refused: 0,
    slowAtOnce: 3,
    method: "slow",
    idleHolds: null,
  }, "pool — a pool of 3"],
] as const;

for (const [args, expected, head] of cases) {
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
      const fields = Object.keys(expected) as (keyof typeof expected)[];
      assertEquals(
        Object.fromEntries(fields.map((key) => [key, result[key]])),
        expected,
        JSON.stringify(result),
      );
      // The probed server's verdict heads the section, not the lab's mode.
      assertEquals(
        await tab.probeHead(),
        `Verdict: ${head}, for ${target.url.slice(0, -1)}`,
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
