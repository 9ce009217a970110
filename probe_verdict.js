// @ts-check
/**
 * What a probe of a server makes of what it measured: whether a fast request
 * waited while the server was busy, and the verdict (one at a time, a pool
 * of N, or all at once) in plain words, with what it means for the server's
 * accept loop. Pure functions of plain data, with no network and no page:
 * probe.ts (in a terminal) and lab.js (in the browser) measure, and both
 * read their figures with this module, so that they always agree;
 * `deno test` checks it without either (tests/probe_verdict_test.ts).
 * main.ts serves it to the lab at /probe_verdict.js, and it writes
 * durations for the lab, the probe and the demo alike ({@linkcode duration}).
 *
 * How a probe measures: it sends one slow request and then a fast one, and
 * adds one more slow request at a time while the fast one is still answered
 * at once. When the fast one waits until a slow one ends, the server is
 * full. A server without a slow route is loaded with connections that send
 * nothing instead, released after a while by sending their requests.
 *
 * @module
 */

/**
 * One request of a probe, in milliseconds from the probe's start.
 *
 * @typedef {object} ProbeRequest
 * @property {string} path What it asked for, such as `/sleep` or `/`.
 * @property {"slow" | "fast" | "idle"} kind `idle`: a connection that sent
 *   nothing until `sentMs`, when the probe released it with its request.
 * @property {number} openedMs When its connection was opened.
 * @property {number | null} sentMs When its request was sent; null while an
 *   idle connection has sent nothing.
 * @property {number | null} [answeredMs] When its answer began to come:
 *   undefined while it waits, null when there was none.
 * @property {number | null} [endedMs] When the server answered it or closed
 *   its connection: what frees the server for the next request.
 */

/**
 * One step of a probe: `load` slow requests (or idle connections) in
 * flight, then a fast request, and the first time after it was sent that
 * the server let go of one of the load, if it did.
 *
 * @typedef {object} ProbeStep
 * @property {number} load How many slow requests, or idle connections, were
 *   in flight when the fast one was sent.
 * @property {ProbeRequest} fast The fast request.
 * @property {number | null} loadEndedMs When the server first let go of
 *   one of the load after the fast one was sent (answered it or closed it,
 *   or the probe sent an idle connection's request), or when the probe gave
 *   up waiting for either; null when the fast one was answered first and
 *   none was let go of yet.
 */

/**
 * What a probe measured.
 *
 * @typedef {object} ProbeRun
 * @property {"slow" | "idle"} method How it loaded the server: with slow
 *   requests, or, without a slow route, with connections that send nothing.
 * @property {string} slowPath The slow request's path.
 * @property {string} fastPath The fast request's path.
 * @property {number | null} slowMs The slow request alone; null when it was
 *   not slow (no slow route).
 * @property {number} fastMs The fast request alone.
 * @property {number} max The most slow requests (or idle connections) it
 *   would try.
 * @property {ProbeStep[]} steps One a load, in order: 1, 2…
 * @property {ProbeStep | null} idle The idle check: one connection that
 *   sends nothing, then the fast request. For the idle method it is the
 *   first step.
 * @property {string[]} unseen What it could not see, in sentences.
 */

/**
 * The verdict: the fields `probe.ts --json` prints and the lab sets in
 * `globalThis.probeResult`.
 *
 * @typedef {object} Verdict
 * @property {"serial" | "pool" | "concurrent"} verdict One at a time, a pool
 *   of `atOnce`, or every request it tried at once.
 * @property {number} atOnce The most requests it saw served at once.
 * @property {boolean} atLeast Whether every request it tried went together,
 *   so that `atOnce` is a lower bound.
 * @property {"slow" | "idle"} method See {@linkcode ProbeRun}.
 * @property {number | null} slowMs The slow request alone, or null.
 * @property {number} fastMs The fast request alone.
 * @property {boolean | null} idleHolds Whether one connection that sends
 *   nothing kept the fast request waiting; null when not seen.
 * @property {string} sentence The verdict in one sentence, with its evidence.
 * @property {string[]} meaning What it means in the accept loop's terms.
 * @property {string[]} unseen What the probe could not see.
 */

/**
 * An answer faster than this is not a slow request: the server has no slow
 * route, and the probe loads it with idle connections instead.
 */
export const NOT_SLOW_MS = 50;

/**
 * A duration as the probe, the lab and the demo write it: `2.0 s`, `37 ms`,
 * `3.7 ms`.
 *
 * @param {number} ms
 * @returns {string}
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals([duration(1520), duration(37.4), duration(3.72)], ["1.5 s", "37 ms", "3.7 ms"]);
 * ```
 */
export function duration(ms) {
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1).replace(/\.0$/, "")} ms`;
}

/**
 * Whether the fast request of `step` waited for the load: it was not
 * answered before the server let go of one of the load (or the probe gave
 * up waiting for either). Order, not time, decides: a busy machine makes
 * everything slower, but not in another order.
 *
 * @param {ProbeStep} step
 * @returns {boolean}
 *
 * @example The fast request came back before any slow one, or after
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const fast = { path: "/", kind: "fast" as const, openedMs: 5, sentMs: 5, answeredMs: 7 };
 * assertEquals(waited({ load: 1, fast, loadEndedMs: null }), false);
 * assertEquals(waited({ load: 1, fast, loadEndedMs: 6 }), true);
 * ```
 */
export function waited({ fast, loadEndedMs }) {
  if (loadEndedMs === null) return false;
  return typeof fast.answeredMs !== "number" || fast.answeredMs >= loadEndedMs;
}

/**
 * Each request's label in a probe's timeline, the terminal's and the lab's:
 * the first two went alone (`/ alone`), the others are numbered by path
 * (`/sleep #1`), and a connection that sent nothing until released is
 * `idle→/`.
 *
 * @param {Pick<ProbeRequest, "path" | "kind">[]} requests In the order the
 *   probe opened them.
 * @returns {string[]}
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const labels = labelsOf([
 *   { path: "/", kind: "fast" }, { path: "/sleep", kind: "slow" },
 *   { path: "/sleep", kind: "slow" }, { path: "/", kind: "fast" },
 *   { path: "/", kind: "idle" }, { path: "/", kind: "fast" },
 * ]);
 * assertEquals(labels, ["/ alone", "/sleep alone", "/sleep #1", "/ #1", "idle→/", "/ #2"]);
 * ```
 */
export function labelsOf(requests) {
  /** @type {Map<string, number>} */
  const counts = new Map();
  return requests.map(({ path, kind }, i) => {
    if (i < 2) return `${path} alone`;
    if (kind === "idle") return `idle→${path}`;
    const number = (counts.get(path) ?? 0) + 1;
    counts.set(path, number);
    return `${path} #${number}`;
  });
}

/**
 * What a probe's figures say: the verdict, its sentence and what it means.
 *
 * @param {ProbeRun} run
 * @returns {Verdict}
 *
 * @example A serial server
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const fast = { path: "/", kind: "fast" as const, openedMs: 1010, sentMs: 1010, answeredMs: 2012 };
 * const step = { load: 1, fast, loadEndedMs: 2010 };
 * const { verdict, atOnce } = verdictOf({
 *   method: "slow", slowPath: "/sleep", fastPath: "/", slowMs: 1000, fastMs: 2,
 *   max: 16, steps: [step], idle: null, unseen: [],
 * });
 * assertEquals([verdict, atOnce], ["serial", 1]);
 * ```
 */
export function verdictOf(run) {
  const { method, steps, max, slowMs, fastMs, idle, unseen } = run;
  const last = steps.at(-1);
  if (!last) throw new RangeError("A probe without a step has no verdict");
  const full = waited(last);
  const atOnce = last.load;
  const verdict = !full ? "concurrent" : atOnce === 1 ? "serial" : "pool";
  const idleHolds = idle ? waited(idle) : null;
  const notes = [...unseen];
  if (!full && atOnce < max) {
    notes.push(
      `It stopped at ${atOnce} of the ${max} it meant to try: the server may serve more at once.`,
    );
  }
  return {
    verdict,
    atOnce,
    atLeast: !full,
    method,
    slowMs,
    fastMs,
    idleHolds,
    sentence: sentenceOf(run, verdict, atOnce),
    meaning: meaningOf(verdict, atOnce, idleHolds, method),
    unseen: notes,
  };
}

/**
 * How long the fast request of `step` took, or waited for.
 *
 * @param {ProbeStep} step
 */
const fastWaitMs = ({ fast }) =>
  Number(fast.answeredMs ?? fast.endedMs) - Number(fast.sentMs);

/**
 * @param {ProbeRun} run
 * @param {Verdict["verdict"]} verdict
 * @param {number} atOnce
 */
function sentenceOf({ method, steps, slowPath, fastPath }, verdict, atOnce) {
  const last = /** @type {ProbeStep} */ (steps.at(-1));
  const before = steps.at(-2);
  const fast = fastPath;
  const slow = method === "slow"
    ? (n = 1) => `${n} ${slowPath}`
    : (n = 1) => `${n} connection${n === 1 ? "" : "s"} that sent nothing`;
  const open = method === "slow" ? "in flight" : "open";
  const release = method === "slow"
    ? "until one of them was answered"
    : "until the probe sent their requests";
  const wait = duration(fastWaitMs(last));
  if (verdict === "serial") {
    return method === "slow"
      ? `One at a time: ${fast}, sent while one ${slowPath} ran, waited ${wait}, until ${slowPath} was answered.`
      : `One at a time: with one connection open that sent nothing, ${fast} waited ${wait}, until the probe sent a request on it.`;
  }
  if (verdict === "pool") {
    const earlier = before
      ? `; with ${before.load} it was answered in ${
        duration(fastWaitMs(before))
      }`
      : "";
    return `A pool of ${atOnce}: with ${
      slow(atOnce)
    } ${open}, ${fast} waited ${wait}, ${release}${earlier}.`;
  }
  return `All at once: with ${
    slow(atOnce)
  } ${open}, ${fast} was still answered in ${wait}.`;
}

/**
 * @param {Verdict["verdict"]} verdict
 * @param {number} atOnce
 * @param {boolean | null} idleHolds
 * @param {ProbeRun["method"]} method
 */
function meaningOf(verdict, atOnce, idleHolds, method) {
  const meaning = [
    {
      serial:
        "The accept loop waits for each connection to be done before it accepts the next (`await handle(conn)` in the loop): later clients wait in the kernel's backlog. A pool of one thread does the same, and so does a larger pool whose workers hold one lock across the whole job. Detach the handler (`void handle(conn)`, no `await`) or spawn a task per connection.",
      pool:
        `At most ${atOnce} at once: a pool of ${atOnce} threads or workers, or a limit such as main.ts's --max-in-flight=${atOnce} (the async book's for_each_concurrent(${atOnce})). Request ${
          atOnce + 1
        } waits for one of the first ${atOnce} to end. If you started more workers, something they share lets only ${atOnce} work at once.`,
      concurrent:
        "The loop does not wait for one connection before accepting the next (a detached `handle(conn)`, or a task or thread per connection): every request the probe sent was served at once. A limit above what it tried, it cannot see.",
    }[verdict],
  ];
  if (idleHolds === true) {
    const too = verdict === "serial" ? " too" : "";
    meaning.push(
      `A connection that sends nothing holds it${too}: a browser's spare connection, opened ahead of time, keeps everyone else waiting until the server gives up reading it. A deadline on the first read bounds that (small_server.ts gives it 3 s).`,
    );
  } else if (idleHolds === false && method === "slow") {
    meaning.push("A connection that sends nothing did not hold it.");
  }
  return meaning;
}
