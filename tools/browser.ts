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
  /** When the page meant to send it, in milliseconds since the run began. */
  dueMs: number;
  /** When it was sent, in milliseconds since the run began. */
  sentMs: number;
  /** When its answer came, in milliseconds since the run began; null if it failed. */
  answeredMs: number | null;
  /** The server's own time for it, from Server-Timing; null if it failed. */
  serverMs: number | null;
  /** Parallel mode: the number of the worker that answered it. */
  worker?: number;
}

/** One block of the page's comparison of kept runs. */
export interface LabBlock {
  /** `serial`, `concurrent` or `parallel`. */
  mode: string;
  /** `/sleep` or `/block`. */
  slow: string;
  /** `run` when a kept run is drawn, `missing` when there is none. */
  state: string;
  /**
   * For a run: `soon` when its first `/` was answered before the slow
   * request, `after` when with it or after it, `untested` when it was sent
   * only after the slow request had been answered.
   */
  first?: string;
  /** Its text: the heading, and what to do when it is missing. */
  text: string;
  /** The labels of its rows. */
  rows: string[];
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
  /** The verdict on the guess, when the run had one. */
  verdict?: { held: string; text: string };
  /** The comparison under the live run, block by block. */
  compare: LabBlock[];
  /** The width in CSS pixels of each live row's server tip at the end. */
  tips: number[];
  /**
   * With `watchWaiting`: how many times a live row still waiting for its
   * answer was looked at, once per animation frame, and the labels of
   * those that had a server tip drawn then (none should).
   */
  waiting?: { looked: number; tipsDrawn: string[] };
  /** What the page kept in localStorage (`lab.runs`) at the end. */
  kept: string | null;
  /** What the page's own script printed to the console or threw. */
  printed: string[];
  /** A PNG screenshot of the live run at the end, when asked for. */
  png?: Uint8Array;
  /** A PNG screenshot of the comparison at the end, when asked for. */
  comparePng?: Uint8Array;
}

/** What {@linkcode Chromium.runLab} may do besides the run. */
export interface LabOptions {
  /** Capture the live run: the page down to its sentences. */
  screenshot?: boolean;
  /** Capture the comparison of kept runs. */
  compareScreenshot?: boolean;
  /** Look at every row still waiting for its answer, once a frame. */
  watchWaiting?: boolean;
  /** What to put in localStorage's `lab.runs` before the page loads. */
  kept?: string;
  /** How long the run may take; 60 s unless told. */
  timeoutMs?: number;
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
   * waits for the run to end, and reports it. Tabs of one browser share
   * localStorage, so a later run sees the runs kept by earlier ones on the
   * same address.
   */
  runLab(url: string, options?: LabOptions): Promise<LabRun>;
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
    async runLab(url, options = {}) {
      const page = await browser.newPage();
      try {
        await page.setViewport({ width: 720, height: 760 });
        const printed = await watchPrinting(page);
        if (options.kept !== undefined) {
          await page.evaluateOnNewDocument((kept) => {
            localStorage.setItem("lab.runs", kept);
          }, options.kept);
        }
        await page.goto(url);
        if (options.watchWaiting) await watchWaiting(page);
        await page.waitForSelector('body[data-state="done"]', {
          timeout: options.timeoutMs ?? 60_000,
        });
        const run = await page.evaluate(readLabPage);
        return {
          ...run,
          printed,
          ...(options.screenshot ? { png: await screenshotRun(page) } : {}),
          ...(options.compareScreenshot
            ? { comparePng: await (await page.$("#compare"))!.screenshot() }
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
 * The little of the page's DOM that the functions below use, which run in
 * the page: Deno's own types have no DOM.
 */
interface PageElement {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
  getBoundingClientRect(): { width: number; bottom: number };
}
declare const document: PageElement & { body: PageElement };
declare const scrollY: number;
declare function requestAnimationFrame(callback: () => void): number;

/** What `/lab` shows once a run has ended; runs in the page. */
function readLabPage() {
  const all = (selector: string, root: PageElement = document) => [
    ...root.querySelectorAll(selector),
  ];
  const text = (element: PageElement | null) => element?.textContent ?? "";
  const verdict = document.querySelector("#verdict:not([hidden])");
  const page = globalThis as unknown as {
    labResult: LabEntry[];
    labWaiting?: { looked: number; tipsDrawn: string[] };
  };
  return {
    result: page.labResult,
    mode: text(document.querySelector("#mode strong")),
    story: all("#story p").map(text),
    met: all("#rows .row.met .label").map(text),
    ...(verdict
      ? { verdict: { held: verdict.dataset.held ?? "", text: text(verdict) } }
      : {}),
    compare: all("#compare .block").map((block) => ({
      mode: block.dataset.mode ?? "",
      slow: block.dataset.slow ?? "",
      state: block.dataset.state ?? "",
      ...(block.dataset.first ? { first: block.dataset.first } : {}),
      text: text(block).replace(/\s+/g, " ").trim(),
      rows: all(".row .label", block).map(text),
    })),
    tips: all("#rows .row .server").map((tip) =>
      tip.getBoundingClientRect().width
    ),
    ...(page.labWaiting ? { waiting: page.labWaiting } : {}),
    kept: localStorage.getItem("lab.runs"),
  };
}

/**
 * Looks, once an animation frame until the run ends, at every live row of
 * `/lab` still waiting for its answer, and notes any with a server tip.
 */
async function watchWaiting(page: Page) {
  await page.evaluate(() => {
    const seen = { looked: 0, tipsDrawn: [] as string[] };
    (globalThis as unknown as { labWaiting: typeof seen }).labWaiting = seen;
    const look = () => {
      const rows = document.querySelectorAll(
        '#rows .row[data-state="waiting"]',
      );
      for (const row of rows) {
        seen.looked++;
        const tip = row.querySelector(".server")!.getBoundingClientRect();
        if (tip.width > 0) {
          seen.tipsDrawn.push(row.querySelector(".label")!.textContent ?? "");
        }
      }
      if (document.body.dataset.state !== "done") requestAnimationFrame(look);
    };
    look();
  });
}

/** A screenshot of `/lab` from the top down to the run's sentences. */
async function screenshotRun(page: Page): Promise<Uint8Array> {
  const bottom = await page.$eval(
    "#story",
    (story) => story.getBoundingClientRect().bottom + scrollY,
  );
  const { width } = page.viewport()!;
  return await page.screenshot({
    clip: { x: 0, y: 0, width, height: Math.ceil(bottom) + 8 },
  });
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
