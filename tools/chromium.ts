/**
 * Headless Chromium driven over the DevTools protocol with Deno's own
 * WebSocket: no npm driver, no browser download, just the system's
 * `chromium` (Debian's package) and a few protocol calls.
 *
 * @module
 */

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
  /** When the page's load event fired, in `performance.now()` milliseconds. */
  loadedMs: number;
  /**
   * When Chromium began to send the request for the document, in
   * milliseconds on Chromium's own clock: comparable only with the other
   * `*AtMs` times of the same browser, but not slowed down by the DevTools
   * round trips that `startedMs` and `loadedMs` include.
   */
  sentAtMs: number;
  /** When the response head for the document had arrived, on Chromium's clock. */
  answeredAtMs: number;
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
  visit(
    url: string,
    options?: VisitOptions,
  ): Promise<PageVisit & { png?: Uint8Array }>;
}

/** A headless Chromium and its DevTools connection. */
export interface Browser extends AsyncDisposable {
  /**
   * Opens a blank tab ahead of its visit: starting a tab takes a new
   * renderer process, which on a busy machine takes longer than the
   * navigation itself.
   */
  openTab(): Promise<Tab>;
  /** Opens a new tab, loads `url` in it, and reports what it showed. */
  visit(
    url: string,
    options?: VisitOptions,
  ): Promise<PageVisit & { png?: Uint8Array }>;
}

/**
 * Why Chromium cannot be used here, or `undefined` when it can.
 *
 * @returns A reason to report when the browser tests are skipped.
 */
export async function chromiumMissing(): Promise<string | undefined> {
  try {
    const { success } = await new Deno.Command("chromium", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return success ? undefined : "`chromium --version` failed";
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      return `no permission to run chromium (${error.message})`;
    }
    return `no chromium on PATH (${
      (error as Error).message
    }); on Debian: apt-get install chromium`;
  }
}

/**
 * Starts headless Chromium with a fresh profile in `profileDir`.
 *
 * @param profileDir An empty folder for the browser's profile; removed afterwards.
 * @returns The browser; dispose of it to stop it.
 */
export async function launchChromium(profileDir: string): Promise<Browser> {
  const child = new Deno.Command("chromium", {
    args: [
      "--headless",
      "--no-sandbox", // needed when running as root, as CI does
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      // This machine reaches no outside network: without these, Chromium
      // keeps trying to, many connections at a time.
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--window-size=640,360",
      `--user-data-dir=${profileDir}`,
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();

  // Chromium names its DevTools address on stderr; keep reading the rest so
  // that a full pipe never stalls it.
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let address: string | undefined;
  while (address === undefined) {
    const { value, done } = await stderr.read();
    if (done) {
      throw new Error(`Chromium exited before DevTools listened:\n${seen}`);
    }
    seen += value;
    address = /DevTools listening on (ws:\/\/\S+)/.exec(seen)?.[1];
  }
  const draining = (async () => {
    while (!(await stderr.read()).done) { /* discard */ }
  })();

  const devtools = await DevTools.connect(address);
  async function openTab(): Promise<Tab> {
    const { targetId } = await devtools.send("Target.createTarget", {
      url: "about:blank",
    });
    const close = () => devtools.send("Target.closeTarget", { targetId });
    let sessionId: string;
    try {
      ({ sessionId } = await devtools.send("Target.attachToTarget", {
        targetId,
        flatten: true,
      }));
      await devtools.send("Page.enable", {}, sessionId);
      await devtools.send("Network.enable", {}, sessionId);
    } catch (error) {
      await close();
      throw error;
    }
    return {
      async visit(url, { screenshot = false, onRequestSent } = {}) {
        try {
          const response = devtools.next(
            "Network.responseReceived",
            sessionId,
            (params) => params.type === "Document",
          );
          const loaded = devtools.next("Page.loadEventFired", sessionId);
          if (onRequestSent) {
            // Chromium reports the raw request headers once they are on
            // the wire, which needs a connected socket. A blank tab
            // requests nothing before its document, so the first report
            // is the document's.
            devtools.next("Network.requestWillBeSentExtraInfo", sessionId)
              .then(onRequestSent);
          }
          const startedMs = performance.now();
          await devtools.send("Page.navigate", { url }, sessionId);
          const [{ response: { status, timing } }] = await Promise.all([
            response,
            loaded,
          ]);
          const loadedMs = performance.now();
          const { result } = await devtools.send("Runtime.evaluate", {
            expression:
              `[document.title, document.querySelector("h1")?.textContent ?? ""]`,
            returnByValue: true,
          }, sessionId);
          const [title, heading] = result.value;
          // Chromium gives its network times as offsets from requestTime,
          // in seconds on its monotonic clock.
          const requestMs = timing.requestTime * 1000;
          const visit = {
            status,
            title,
            heading,
            startedMs,
            loadedMs,
            sentAtMs: requestMs + timing.sendStart,
            answeredAtMs: requestMs + timing.receiveHeadersEnd,
          };
          if (!screenshot) return visit;
          const { data } = await devtools.send("Page.captureScreenshot", {
            format: "png",
          }, sessionId);
          return {
            ...visit,
            png: Uint8Array.from(atob(data), (c) => c.charCodeAt(0)),
          };
        } finally {
          await close();
        }
      },
    };
  }

  return {
    openTab,
    async visit(url, options) {
      return (await openTab()).visit(url, options);
    },
    async [Symbol.asyncDispose]() {
      await devtools.send("Browser.close").catch(() => {});
      devtools.close();
      await child.status;
      await draining;
      await Deno.remove(profileDir, { recursive: true }).catch(() => {});
    },
  };
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** The smallest DevTools protocol client: commands, their answers, and events. */
class DevTools {
  #socket: WebSocket;
  #nextId = 1;
  #answers = new Map<
    number,
    { resolve(result: Json): void; reject(error: Error): void }
  >();
  #waiters = new Set<
    {
      method: string;
      sessionId?: string;
      match(params: Json): boolean;
      resolve(params: Json): void;
    }
  >();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.id !== undefined) {
        const answer = this.#answers.get(message.id);
        this.#answers.delete(message.id);
        if (message.error) {
          answer?.reject(
            new Error(`${message.error.message} (${message.error.code})`),
          );
        } else answer?.resolve(message.result);
        return;
      }
      for (const waiter of this.#waiters) {
        if (
          waiter.method === message.method &&
          waiter.sessionId === message.sessionId && waiter.match(message.params)
        ) {
          this.#waiters.delete(waiter);
          waiter.resolve(message.params);
        }
      }
    };
  }

  static connect(url: string): Promise<DevTools> {
    const socket = new WebSocket(url);
    return new Promise((resolve, reject) => {
      socket.onopen = () => resolve(new DevTools(socket));
      socket.onerror = () =>
        reject(new Error(`Cannot reach DevTools at ${url}`));
    });
  }

  send(method: string, params: Json = {}, sessionId?: string): Promise<Json> {
    const id = this.#nextId++;
    this.#socket.send(JSON.stringify({ id, method, params, sessionId }));
    return new Promise((resolve, reject) =>
      this.#answers.set(id, { resolve, reject })
    );
  }

  /** Resolves with the params of the next `method` event of `sessionId` that `match` accepts. */
  next(
    method: string,
    sessionId: string,
    match: (params: Json) => boolean = () => true,
  ): Promise<Json> {
    return new Promise((resolve) =>
      this.#waiters.add({ method, sessionId, match, resolve })
    );
  }

  close(): void {
    this.#socket.close();
  }
}
