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
  /** The text of the page's body, its white space collapsed. */
  text: string;
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
  /** How long its connection sat open before its first byte, where the server says. */
  idleMs?: number;
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

/** What `/lab` shows at a moment, with or without a run. */
export interface LabView {
  /** `data-state` of the body: `idle`, `running` or `done`. */
  state: string;
  /** The mode the page named. */
  mode: string;
  /** The live rows: each label and `data-state`. */
  rows: { label: string; state: string }[];
  /** The labels of the live rows with a connection drawn open before them. */
  idle: string[];
  /** Whether each time axis is drawn: the live run's and the comparison's. */
  axes: { live: boolean; compare: boolean };
  /** The sentences under the waterfall. */
  story: string[];
  /** The notes under them. */
  notes: string[];
  /** The labels of the rows marked as having met the blocked worker. */
  met: string[];
  /** The verdict on the guess, when the run had one. */
  verdict?: { held: string; text: string };
  /** The guess chosen in the form (`soon`, `after`, `none`), and why the page asks again, if it says. */
  guess: { value: string; why?: string };
  /** The comparison under the live run, block by block. */
  compare: LabBlock[];
}

/** What a run of `/lab` found and said. */
export interface LabRun extends LabView {
  /** `globalThis.labResult` at the end of the run. */
  result: LabEntry[];
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

/** What {@linkcode LabTab.finished} may capture besides the run. */
export interface LabCapture {
  /** Capture the live run: the page down to its notes. */
  screenshot?: boolean;
  /** Capture the comparison of kept runs. */
  compareScreenshot?: boolean;
}

/** What {@linkcode Chromium.openLab} may do besides loading the page. */
export interface LabTabOptions {
  /** Look at every row still waiting for its answer, once a frame, until the first run ends. */
  watchWaiting?: boolean;
  /** What to put in localStorage's `lab.runs` before the page loads. */
  kept?: string;
  /** How long a run may take; 60 s unless told. */
  timeoutMs?: number;
}

/** What {@linkcode Chromium.runLab} may do besides the run. */
export type LabOptions = LabTabOptions & LabCapture;

/** A tab with `/lab` loaded, used as a reader uses it; dispose of it to close it. */
export interface LabTab extends AsyncDisposable {
  /** What the page shows now. */
  look(): Promise<LabView & { printed: string[] }>;
  /** Clicks the slow request and the guess, as a reader does. */
  choose(choice: { slow?: "sleep" | "block"; predict?: string }): Promise<void>;
  /** Presses Run; throws if no run starts. */
  run(): Promise<void>;
  /** Waits for the run under way to end, and reports it. */
  finished(capture?: LabCapture): Promise<LabRun>;
  /**
   * Has the page's browser open a connection to its own server ahead of
   * any request (`<link rel="preconnect">`), as browsers do by themselves.
   */
  preconnect(): Promise<void>;
  /** Waits for the probe of `/lab?probe=URL` to end; returns `probeResult`. */
  probed(): Promise<Record<string, unknown>>;
  /** The probe's verdict as its section heads it, once shown. */
  probeHead(): Promise<string | null>;
  /** A screenshot of the probe's section, as it stands. */
  probeScreenshot(): Promise<Uint8Array>;
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
   * Loads `url` (a `/lab` address) in a new tab, 720 CSS pixels wide. Tabs
   * of one browser share localStorage, so a later run sees the runs kept by
   * earlier ones on the same address.
   */
  openLab(url: string, options?: LabTabOptions): Promise<LabTab>;
  /**
   * Loads `url` (a `/lab?run` address) in a new tab, waits for the run to
   * end, reports it, and closes the tab.
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
 * import { assert } from "@std/assert";
 *
 * const missing = await chromiumMissing();
 * // Either a reason to print, or nothing to say.
 * assert(missing === undefined || missing.length > 0);
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
    return `no permission to run and read ${path}: pass what tests/allow_programs.ts prints`;
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
            text: await page.$eval(
              "body",
              (body) => body.textContent.replace(/\s+/g, " ").trim(),
            ),
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
    async openLab(url, options = {}) {
      return openLab(await browser.newPage(), url, options);
    },
    async runLab(url, options = {}) {
      await using lab = await openLab(await browser.newPage(), url, options);
      return await lab.finished(options);
    },
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(userDataDir, { recursive: true });
    },
  };
}

/** Opens `/lab` at `url` in `page`: see {@linkcode Chromium.openLab}. */
async function openLab(
  page: Page,
  url: string,
  { kept, watchWaiting: watch = false, timeoutMs = 60_000 }: LabTabOptions,
): Promise<LabTab> {
  let printed: string[];
  try {
    await page.setViewport({ width: 720, height: 760 });
    printed = await watchPrinting(page);
    if (kept !== undefined) {
      await page.evaluateOnNewDocument((kept) => {
        localStorage.setItem("lab.runs", kept);
      }, kept);
    }
    await page.goto(url);
    if (watch) await watchWaiting(page);
  } catch (error) {
    await page.close();
    throw error;
  }
  const look = async () => ({
    ...await page.evaluate(readLabPage),
    printed: [...printed],
  });
  return {
    look,
    async choose({ slow, predict }) {
      await page.evaluate((choices) => {
        for (const [name, value] of choices) {
          document.querySelector(`input[name="${name}"][value="${value}"]`)!
            .click();
        }
      }, [["slow", slow], ["predict", predict]].filter(([, v]) => v));
    },
    async run() {
      // click() runs the form's handler before it returns, and a run sets
      // data-state before its first await.
      const state = await page.evaluate(() => {
        document.querySelector("#controls button")!.click();
        return document.body.dataset.state;
      });
      if (state !== "running") {
        throw new Error(`Run did not start a run: the page is ${state}`);
      }
    },
    async finished({ screenshot = false, compareScreenshot = false } = {}) {
      await page.waitForSelector('body[data-state="done"]', {
        timeout: timeoutMs,
      });
      const { result, ...view } = await look();
      if (!result) throw new Error("The run ended without a labResult");
      return {
        ...view,
        result,
        ...(screenshot ? { png: await screenshotRun(page) } : {}),
        ...(compareScreenshot
          ? { comparePng: await (await page.$("#compare"))!.screenshot() }
          : {}),
      };
    },
    async preconnect() {
      await page.evaluate(() => {
        const link = document.createElement("link");
        Object.assign(link, { rel: "preconnect", href: location.origin });
        document.head.append(link);
      });
    },
    async probed() {
      await page.waitForSelector('body[data-state="done"]', {
        timeout: timeoutMs,
      });
      return await page.evaluate(() =>
        (globalThis as unknown as { probeResult: Record<string, unknown> })
          .probeResult
      );
    },
    async probeHead() {
      return await page.evaluate(() => {
        const head = document.querySelector("#probe-head")!;
        return head.hidden
          ? null
          : head.textContent!.replace(/\s+/g, " ").trim();
      });
    },
    async probeScreenshot() {
      return await (await page.$("#probe"))!.screenshot();
    },
    async [Symbol.asyncDispose]() {
      await page.close();
    },
  };
}

/**
 * The little of the page's DOM that the functions below use, which run in
 * the page: Deno's own types have no DOM.
 */
interface PageElement {
  textContent: string | null;
  hidden: boolean;
  dataset: Record<string, string | undefined>;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
  getBoundingClientRect(): { width: number; height: number; bottom: number };
  click(): void;
  append(child: PageElement): void;
}
declare const document: PageElement & {
  body: PageElement;
  head: PageElement;
  createElement(name: string): PageElement;
};
declare const location: { origin: string };
declare const scrollY: number;
declare function requestAnimationFrame(callback: () => void): number;

/** What `/lab` shows now; runs in the page. */
function readLabPage() {
  const all = (selector: string, root: PageElement = document) => [
    ...root.querySelectorAll(selector),
  ];
  const text = (element: PageElement | null) => element?.textContent ?? "";
  const label = (row: PageElement) => text(row.querySelector(".label"));
  const shown = (element: PageElement | null) =>
    (element?.getBoundingClientRect().width ?? 0) > 0;
  const verdict = document.querySelector("#verdict:not([hidden])");
  const why = document.querySelector("#guess-why:not([hidden])");
  const guess = document.querySelector('input[name="predict"]:checked') as
    | PageElement & { value: string }
    | null;
  const page = globalThis as unknown as {
    labResult?: LabEntry[];
    labWaiting?: { looked: number; tipsDrawn: string[] };
  };
  return {
    state: document.body.dataset.state ?? "",
    mode: text(document.querySelector("#mode strong")),
    rows: all("#rows .row").map((row) => ({
      label: label(row),
      state: row.dataset.state ?? "",
    })),
    idle: all("#rows .row").filter((row) => shown(row.querySelector(".idle")))
      .map(label),
    axes: {
      live: shown(document.querySelector("#waterfall .axis")),
      compare: shown(document.querySelector("#compare .axis")),
    },
    story: all("#story p").map(text),
    notes: all("#notes p").map(text),
    met: all("#rows .row.met").map(label),
    ...(verdict
      ? { verdict: { held: verdict.dataset.held ?? "", text: text(verdict) } }
      : {}),
    guess: { value: guess?.value ?? "", ...(why ? { why: text(why) } : {}) },
    compare: all("#compare .block").map((block) => ({
      mode: block.dataset.mode ?? "",
      slow: block.dataset.slow ?? "",
      state: block.dataset.state ?? "",
      ...(block.dataset.first ? { first: block.dataset.first } : {}),
      text: text(block).replace(/\s+/g, " ").trim(),
      rows: all(".row .label", block).map(text),
    })),
    result: page.labResult,
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

/** A screenshot of `/lab` from the top down to the run's notes. */
async function screenshotRun(page: Page): Promise<Uint8Array> {
  const bottom = await page.evaluate(() => {
    const end = document.querySelector("#notes:not([hidden])") ??
      document.querySelector("#story")!;
    return end.getBoundingClientRect().bottom + scrollY;
  });
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
