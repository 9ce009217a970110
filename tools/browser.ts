/**
 * Headless Chromium for the browser tests, driven by Puppeteer
 * (`puppeteer-core`, which downloads no browser): the system's `chromium`
 * (Debian's package), a fresh profile in `.chromium/` each time, and the
 * flags a machine as root without outside network needs.
 *
 * @module
 */

// The version is pinned here, where the import is, as main.ts pins its own:
// a new Puppeteer may need a newer Chromium than Debian ships.
// deno-lint-ignore no-import-prefix
import puppeteer from "npm:puppeteer-core@25.16.0";

// deno-lint-ignore no-import-prefix
import type { Page } from "npm:puppeteer-core@25.16.0";

/** What a tab saw after loading a page. */
export interface PageVisit {
  /** The HTTP status of the document. */
  status: number;
  /** `document.title`. */
  title: string;
  /** The text of the first `<h1>`. */
  heading: string;
  /** When the load began, in `performance.now()` milliseconds. */
  startedMs: number;
  /** When the page's load event had fired, in `performance.now()` milliseconds. */
  loadedMs: number;
  /**
   * When Chromium began to send the request for the document, in
   * milliseconds on Chromium's own clock: comparable only with the other
   * `*AtMs` times of the same browser, but not slowed down by the round
   * trips to the browser that `startedMs` and `loadedMs` include.
   */
  sentAtMs: number;
  /** When the response head for the document had arrived, on Chromium's clock. */
  answeredAtMs: number;
  /** A PNG screenshot of the loaded page, when asked for. */
  png?: Uint8Array;
}

/** What {@linkcode Tab.visit} may do besides loading the page. */
export interface VisitOptions {
  /** Also capture a PNG screenshot of the loaded page. */
  screenshot?: boolean;
  /**
   * Called once the request for the document has been written to a
   * connected socket, so that the server has it in its accept queue.
   */
  onRequestSent?: () => void;
}

/** A blank tab, ready to load one page. */
export interface Tab {
  /** Loads `url`, reports what the tab showed, and closes the tab. */
  visit(url: string, options?: VisitOptions): Promise<PageVisit>;
}

/** One request of a run of `/lab`, as the page gives it in `labResult`. */
export interface LabEntry {
  /** `/sleep`, `/block` or `/`. */
  path: string;
  /** When it was sent, in milliseconds since the run began. */
  sentMs: number;
  /** When its answer came, in milliseconds since the run began; null if it failed. */
  answeredMs: number | null;
  /** The server's own time for it, from Server-Timing; null if it failed. */
  serverMs: number | null;
  /** Parallel mode: the number of the worker that answered it. */
  worker?: number;
}

/** What a run of `/lab` found and said. */
export interface LabRun {
  /** `globalThis.labResult` at the end of the run. */
  result: LabEntry[];
  /** The mode the page named. */
  mode: string;
  /** The sentences under the waterfall. */
  story: string[];
  /** The labels of the rows marked as having met the blocked worker. */
  met: string[];
  /** What the page's own script printed to the console or threw. */
  printed: string[];
  /** A PNG screenshot of the whole page at the end, when asked for. */
  png?: Uint8Array;
}

/** A headless Chromium with its own profile; dispose of it to stop it. */
export interface Chromium extends AsyncDisposable {
  /**
   * Opens a blank tab ahead of its visit: starting a tab takes a new
   * renderer process, which on a busy machine takes longer than the
   * navigation itself.
   */
  openTab(): Promise<Tab>;
  /** Opens a new tab, loads `url` in it, and reports what it showed. */
  visit(url: string, options?: VisitOptions): Promise<PageVisit>;
  /**
   * Loads `url` (a `/lab?run` address) in a new tab, 720 CSS pixels wide,
   * waits up to `timeoutMs` for the run to end, and reports it.
   */
  runLab(
    url: string,
    options?: { screenshot?: boolean; timeoutMs?: number },
  ): Promise<LabRun>;
}

/** The `chromium` that PATH finds, as the shell finds it, if any. */
async function chromiumPath(): Promise<string | undefined> {
  const { success, stdout } = await new Deno.Command("sh", {
    args: ["-c", "command -v chromium"],
    stderr: "null",
  }).output();
  const path = new TextDecoder().decode(stdout).trim();
  return success && path.startsWith("/") ? path : undefined;
}

/**
 * Why Chromium cannot be used here, or `undefined` when it can: it must be
 * on PATH, and this process allowed to run it and to read it (Puppeteer
 * checks that the file exists before it starts it).
 *
 * @returns A reason to report when the browser tests are skipped.
 *
 * @example Say why the browser tests are skipped
 * ```ts
 * const missing = await chromiumMissing();
 * const note = missing ? `browser tests skipped: ${missing}` : "Chromium is here";
 * console.assert(note.length > 0);
 * ```
 */
export async function chromiumMissing(): Promise<string | undefined> {
  let path;
  try {
    path = await chromiumPath();
  } catch (error) {
    return `no permission to look for chromium with sh (${
      (error as Error).message
    })`;
  }
  if (path === undefined) {
    return "no chromium on PATH; on Debian: apt-get install chromium";
  }
  const allowed = await Promise.all([
    Deno.permissions.query({ name: "run", command: path }),
    Deno.permissions.query({ name: "read", path }),
  ]);
  if (allowed.some(({ state }) => state !== "granted")) {
    return `no permission to run and read ${path}: pass what tools/allow_chromium.ts prints`;
  }
}

/**
 * Starts headless Chromium with a fresh profile in a new folder inside
 * `.chromium/` (the one folder the tests may write to), removed afterwards.
 *
 * @returns The browser; dispose of it to stop it and remove its profile.
 * @throws {Error} Where {@linkcode chromiumMissing} gives a reason.
 *
 * @example Load a page
 * ```ts ignore
 * await using chromium = await launchChromium();
 * const { status, heading } = await chromium.visit("http://127.0.0.1:7878/");
 * ```
 */
export async function launchChromium(): Promise<Chromium> {
  const executablePath = await chromiumPath();
  if (executablePath === undefined) throw new Error("No chromium on PATH");
  await Deno.mkdir(".chromium", { recursive: true });
  const userDataDir = await Deno.makeTempDir({ dir: ".chromium" });
  const browser = await puppeteer.launch({
    executablePath,
    userDataDir,
    headless: true,
    // Chromium needs nothing from this environment, and without an env
    // of its own Puppeteer copies all of it: Deno would then ask for
    // --allow-env on every variable.
    env: {},
    // Puppeteer's own flags already turn off background networking,
    // sync and the first-run page; these are the rest this machine needs.
    args: [
      "--no-sandbox", // as root, as CI runs
      "--disable-gpu",
      "--disable-quic",
      "--disable-component-update", // no outside network to update from
    ],
    defaultViewport: { width: 640, height: 360 },
  }).catch(async (error) => {
    await Deno.remove(userDataDir, { recursive: true });
    throw error;
  });

  async function openTab(): Promise<Tab> {
    const page = await browser.newPage();
    return {
      async visit(url, { screenshot = false, onRequestSent } = {}) {
        try {
          if (onRequestSent) await whenRequestSent(page, onRequestSent);
          const startedMs = performance.now();
          const response = await page.goto(url);
          const loadedMs = performance.now();
          const timing = response?.timing();
          if (!response || !timing) throw new Error(`No response for ${url}`);
          // Chromium gives its network times as offsets from requestTime,
          // in seconds on its monotonic clock.
          const requestMs = timing.requestTime * 1000;
          return {
            status: response.status(),
            title: await page.title(),
            heading: await page.$eval("h1", (h1) => h1.textContent),
            startedMs,
            loadedMs,
            sentAtMs: requestMs + timing.sendStart,
            answeredAtMs: requestMs + timing.receiveHeadersEnd,
            ...(screenshot ? { png: await page.screenshot() } : {}),
          };
        } finally {
          await page.close();
        }
      },
    };
  }

  return {
    openTab,
    async visit(url, options) {
      return (await openTab()).visit(url, options);
    },
    async runLab(url, { screenshot = false, timeoutMs = 60_000 } = {}) {
      const page = await browser.newPage();
      try {
        await page.setViewport({ width: 720, height: 760 });
        const printed = await watchPrinting(page);
        await page.goto(url);
        await page.waitForSelector('body[data-state="done"]', {
          timeout: timeoutMs,
        });
        const [result, mode, story, met] = await Promise.all([
          page.evaluate(() =>
            (globalThis as unknown as { labResult: LabEntry[] }).labResult
          ),
          page.$eval("#mode strong", (strong) => strong.textContent),
          page.$$eval("#story p", (ps) => ps.map((p) => p.textContent)),
          page.$$eval(".row.met .label", (ls) => ls.map((l) => l.textContent)),
        ]);
        return {
          result,
          mode,
          story,
          met,
          printed,
          ...(screenshot
            ? { png: await page.screenshot({ fullPage: true }) }
            : {}),
        };
      } finally {
        await page.close();
      }
    },
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(userDataDir, { recursive: true });
    },
  };
}

/**
 * Calls `then` once `page` has written its next request to a connected
 * socket: later than Puppeteer's `request` event, which fires before
 * Chromium has a connection.
 */
async function whenRequestSent(page: Page, then: () => void) {
  const session = await page.createCDPSession();
  // Chromium reports the raw request headers once they are on the wire. A
  // blank tab requests nothing before its document, so the first report is
  // the document's.
  session.once("Network.requestWillBeSentExtraInfo", then);
  await session.send("Network.enable");
}

/**
 * What the page's own script prints or throws, from its first line on; not
 * Chromium's network messages, such as its note of a 408 it retried.
 */
async function watchPrinting(page: Page): Promise<string[]> {
  const printed: string[] = [];
  await page.exposeFunction("reportPrinted", (line: string) => {
    printed.push(line);
  });
  await page.evaluateOnNewDocument(() => {
    const report = (globalThis as unknown as {
      reportPrinted(line: string): void;
    }).reportPrinted;
    for (const name of ["log", "info", "warn", "error", "debug"] as const) {
      console[name] = (...args: unknown[]) => report(args.join(" "));
    }
  });
  page.on("pageerror", (error) => printed.push(String(error)));
  return printed;
}
