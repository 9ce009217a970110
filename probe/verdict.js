// @ts-check
/**
 * What a probe of a server makes of what it measured: whether a fast request
 * waited while the server was busy, or was refused, and the verdict (one at
 * a time, a pool of N, all at once, or unknown) in plain words, with what it
 * means and what to do about it. Pure functions of plain data, with no
 * network and no page: probe.ts (in a terminal) and lab/probe.js (in the
 * browser) measure, and both read their figures with this module, so that
 * they always agree; `deno test` checks it without either
 * (probe/verdict_test.ts). main.ts serves it to the lab at
 * /probe/verdict.js, and it writes durations for the lab, the probe and the
 * demo alike ({@linkcode duration}).
 *
 * How a probe measures: it sends one slow request and then a fast one, and
 * adds one more slow request at a time while the fast one is answered at
 * once. When the fast one waits until a slow one ends, or is refused, the
 * server is full. A server without a slow route is loaded with connections
 * that send nothing instead, released by sending their requests.
 *
 * Every verdict comes from the figures of the requests, and its sentence
 * quotes the same figures: the two cannot disagree.
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
 *   idle connection has sent nothing, or when it could not connect.
 * @property {number | null} [answeredMs] When the first byte of its answer
 *   came: undefined while it waits (or when the probe gave up waiting),
 *   null when the server closed or reset the connection without one.
 * @property {number | null} [endedMs] When the last byte of its answer came
 *   (the server's close that marks the end is later, and not counted), or,
 *   without an answer, when the connection closed or failed; undefined while
 *   it is open.
 * @property {number | null} [status] Its answer's status; null or undefined
 *   where there was none, or where it cannot be seen (the lab's opaque
 *   answers).
 */

/**
 * One step of a probe: the slow requests (or idle connections) it had opened,
 * then a fast request. Which of them were in flight when the fast one was
 * sent, and when the first of those was let go of, is read from their times.
 *
 * @typedef {object} ProbeStep
 * @property {ProbeRequest[]} loads Every slow request (or idle connection)
 *   the probe had opened by then, in order, the step's own last.
 * @property {ProbeRequest} fast The fast request.
 */

/**
 * What a probe measured.
 *
 * @typedef {object} ProbeRun
 * @property {"slow" | "idle"} method How it loaded the server: with slow
 *   requests, or, without a slow route, with connections that send nothing.
 * @property {string} slowPath The slow request's path.
 * @property {string} fastPath The fast request's path.
 * @property {number} fastMs The fast request alone, to its answer's first
 *   byte.
 * @property {number} slowMs The slow request alone, to its answer's last
 *   byte.
 * @property {number | null} slowStatus The slow request's status alone;
 *   null where it cannot be seen.
 * @property {number} idleMs How long an idle connection may hold the fast
 *   request.
 * @property {number} max The most slow requests (or idle connections) it
 *   would try.
 * @property {ProbeRequest[]} requests Every request it made.
 * @property {ProbeStep[]} steps One a load, in order: 1, 2…
 * @property {ProbeStep | null} idle With slow requests: the idle check, as
 *   many connections that send nothing as the server served slow requests
 *   at once (one if all at once), then the fast request; null if not made.
 *   Without a slow route, the steps are that check, and this is not read.
 * @property {string[]} unseen What it could not see, in sentences.
 */

/**
 * The verdict: the fields `probe.ts --json` prints and the lab sets in
 * `globalThis.probeResult`.
 *
 * @typedef {object} Verdict
 * @property {"serial" | "pool" | "concurrent" | "unknown"} verdict One at a
 *   time, a pool of `atOnce`, every request it tried at once, or what it
 *   could not tell (the sentence says why).
 * @property {number | null} atOnce The most slow requests (or idle
 *   connections) in flight while the fast request was still served; null
 *   when unknown.
 * @property {boolean} atLeast Whether every request it tried went together,
 *   so that `atOnce` is a lower bound.
 * @property {number} refused How many of the probe's requests the server
 *   refused: an answer outside 2xx and 3xx, a reset, or a close with no
 *   answer.
 * @property {number | null} slowAtOnce The most slow requests seen served
 *   together, from their answers' times; null without slow requests.
 * @property {"slow" | "idle"} method See {@linkcode ProbeRun}.
 * @property {number | null} slowMs The slow request alone, or null without
 *   a slow route.
 * @property {number} fastMs The fast request alone.
 * @property {boolean | null} idleHolds Whether connections that send nothing
 *   (one, or as many as a pool serves) kept the fast request from being
 *   served; null when not seen.
 * @property {string} sentence The verdict in one sentence, with its evidence.
 * @property {string[]} meaning What it means, and what to do about it.
 * @property {string[]} unseen What the probe could not see.
 */

/**
 * An answer faster than this is not a slow request: the server has no slow
 * route, and the probe loads it with idle connections instead.
 */
export const NOT_SLOW_MS = 50;

/**
 * The fast request must take less than this share of the slow one (or of
 * the time an idle connection is given): otherwise a wait cannot be told
 * from its own time.
 */
const FAST_SHARE = 1 / 4;

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
 * Whether a path answered in `ms` with `status` is a slow route: served
 * (2xx or 3xx, or a status that cannot be seen) and {@linkcode NOT_SLOW_MS}
 * or slower.
 *
 * @param {number} ms
 * @param {number | null | undefined} status
 * @returns {boolean}
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals([isSlowRoute(1000, 200), isSlowRoute(1000, 404), isSlowRoute(3, 200)], [true, false, false]);
 * ```
 */
export function isSlowRoute(ms, status) {
  return !refusedStatus(status) && ms >= NOT_SLOW_MS;
}

/**
 * Whether the fast request, `fastMs` alone, is fast enough beside `spanMs`
 * (the slow request alone, or the time an idle connection is given) for
 * the probe to tell a wait from its own time.
 *
 * @param {number} fastMs
 * @param {number} spanMs
 * @returns {boolean}
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals([canTell(3, 1000), canTell(1500, 1500)], [true, false]);
 * ```
 */
export function canTell(fastMs, spanMs) {
  return fastMs < spanMs * FAST_SHARE;
}

/** @param {number | null | undefined} status */
const refusedStatus = (status) =>
  typeof status === "number" && (status < 200 || status > 399);

/**
 * Whether the server refused a request: answered it with a status outside
 * 2xx and 3xx, or closed or reset its connection without an answer (or
 * never let it connect). An idle connection the server closed before the
 * probe sent anything on it was not a request: it is let go of, not
 * refused.
 *
 * @param {ProbeRequest} request
 * @returns {boolean}
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const asked = { path: "/", kind: "fast" as const, openedMs: 1, sentMs: 1 };
 * assertEquals(refused({ ...asked, answeredMs: 2, endedMs: 2, status: 503 }), true);
 * assertEquals(refused({ ...asked, answeredMs: null, endedMs: 2 }), true);
 * assertEquals(refused({ ...asked, answeredMs: 2, endedMs: 2, status: 200 }), false);
 * ```
 */
export function refused(request) {
  if (request.kind === "idle" && request.sentMs === null) return false;
  return request.answeredMs === null || refusedStatus(request.status);
}

/**
 * When the server let go of a load: a slow request's answer's last byte
 * (or its close), or an idle connection's close (or early answer, such as
 * a 408) before the probe released it.
 *
 * @param {ProbeRequest} load
 */
const serverLetGoMs = (load) =>
  load.kind === "slow"
    ? load.endedMs ?? Infinity
    : load.sentMs === null
    ? load.answeredMs ?? load.endedMs ?? Infinity
    : Infinity;

/**
 * When the probe released an idle load by sending its request.
 *
 * @param {ProbeRequest} load
 */
const releasedMs = (load) =>
  load.kind === "idle" ? load.sentMs ?? Infinity : Infinity;

/** @param {ProbeRequest} load */
const letGoMs = (load) => Math.min(serverLetGoMs(load), releasedMs(load));

/** @param {ProbeRequest} request */
const sentAt = (request) => request.sentMs ?? request.openedMs;

/**
 * The loads of `step` in flight when its fast request was sent: sent (or,
 * idle, open) before it, not yet let go of, and not refused.
 *
 * @param {ProbeStep} step
 * @returns {ProbeRequest[]}
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const slow = (sentMs: number, endedMs: number) => ({ path: "/sleep", kind: "slow" as const, openedMs: sentMs, sentMs, answeredMs: endedMs, endedMs });
 * const fast = { path: "/", kind: "fast" as const, openedMs: 20, sentMs: 20, answeredMs: 21 };
 * assertEquals(inFlight({ loads: [slow(5, 15), slow(10, 1010)], fast }).length, 1);
 * ```
 */
export function inFlight({ loads, fast }) {
  const at = sentAt(fast);
  return loads.filter((load) =>
    !refused(load) && (load.kind === "idle" || sentAt(load) <= at) &&
    letGoMs(load) > at
  );
}

/**
 * What became of the fast request of `step`: `refused`; `waited`, when it
 * was answered only after the probe released an idle connection of the
 * load, or its answer began nearer to when the server let go of the first
 * of the load in flight than to when it was sent, or had not come when the
 * probe gave up; or `room`, answered before that. Nearer, not merely after:
 * the server writes both answers within microseconds of each other when it
 * frees a slow request and then serves the fast one, and a busy machine may
 * read the two sockets in either order; a server with room answers the
 * fast request long before (its time alone is under a quarter of the slow
 * one's: {@linkcode canTell}). The probe's own release is no race: it comes
 * once it has seen the fast answer, or given up on it.
 *
 * @param {ProbeStep} step
 * @returns {"room" | "waited" | "refused"}
 *
 * @example The fast answer began 0.1 ms before the slow answer's last byte
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const slow = { path: "/sleep", kind: "slow" as const, openedMs: 1010, sentMs: 1010, answeredMs: 2010.4, endedMs: 2010.4 };
 * const fast = { path: "/", kind: "fast" as const, openedMs: 1011, sentMs: 1011, answeredMs: 2010.3, endedMs: 2010.3 };
 * assertEquals(outcomeOf({ loads: [slow], fast }), "waited");
 * assertEquals(outcomeOf({ loads: [slow], fast: { ...fast, answeredMs: 1012 } }), "room");
 * ```
 */
export function outcomeOf(step) {
  const { fast } = step;
  if (refused(fast)) return "refused";
  if (typeof fast.answeredMs !== "number") return "waited";
  const flying = inFlight(step);
  if (fast.answeredMs > Math.min(...flying.map(releasedMs))) return "waited";
  const sent = sentAt(fast);
  const letGo = Math.min(...flying.map(serverLetGoMs));
  if (letGo === Infinity) return "room";
  return fast.answeredMs - sent >= (letGo - sent) / 2 ? "waited" : "room";
}

/**
 * Each request's label in a probe's timeline, the terminal's and the lab's:
 * the requests sent before the load went alone (`/ alone`; the fast one
 * twice when its first time was slow), the others are numbered by path
 * (`/sleep #1`), and a connection that sent nothing until released is
 * `idle→/`.
 *
 * @param {Pick<ProbeRequest, "path" | "kind">[]} requests In the order the
 *   probe opened them: the fast one, the slow one, maybe the fast one again,
 *   then the load and the fast ones.
 * @returns {string[]}
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const labels = probeRowLabels([
 *   { path: "/", kind: "fast" }, { path: "/sleep", kind: "slow" },
 *   { path: "/sleep", kind: "slow" }, { path: "/", kind: "fast" },
 *   { path: "/", kind: "idle" }, { path: "/", kind: "fast" },
 * ]);
 * assertEquals(labels, ["/ alone", "/sleep alone", "/sleep #1", "/ #1", "idle→/", "/ #2"]);
 * ```
 */
export function probeRowLabels(requests) {
  const load = requests.findIndex((r, i) => i > 1 && r.kind !== "fast");
  const alone = load === -1 ? requests.length : load;
  /** @type {Map<string, number>} */
  const counts = new Map();
  return requests.map(({ path, kind }, i) => {
    if (i < alone) return `${path} alone`;
    if (kind === "idle") return `idle→${path}`;
    const number = (counts.get(path) ?? 0) + 1;
    counts.set(path, number);
    return `${path} #${number}`;
  });
}

/**
 * The step at which the server was full, and how: the fast request waited
 * or was refused, or the step's own slow request was refused. Undefined
 * while every step had room.
 *
 * @param {ProbeStep[]} steps
 * @returns {{ step: ProbeStep, index: number, how: "waited" | "refused", by: ProbeRequest } | undefined}
 *
 * @example
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const slow = { path: "/sleep", kind: "slow" as const, openedMs: 10, sentMs: 10, answeredMs: 1010, endedMs: 1010 };
 * const fast = { path: "/", kind: "fast" as const, openedMs: 11, sentMs: 11, answeredMs: 1011, endedMs: 1011 };
 * assertEquals(fullAt([{ loads: [slow], fast }])?.how, "waited");
 * ```
 */
export function fullAt(steps) {
  for (const [index, step] of steps.entries()) {
    const outcome = outcomeOf(step);
    if (outcome !== "room") return { step, index, how: outcome, by: step.fast };
    const own = step.loads.at(-1);
    if (own && refused(own)) return { step, index, how: "refused", by: own };
  }
}

/**
 * The most slow requests seen served together: answers whose last bytes
 * came within half a slow time of each other, each having taken at least
 * that, ran together for a while. Served one after another, they end a
 * whole slow time apart.
 *
 * @param {ProbeRequest[]} slows
 * @param {number} slowMs The slow request alone.
 */
function togetherOf(slows, slowMs) {
  const ends = slows.filter((r) => !refused(r) && typeof r.endedMs === "number")
    .map((r) => Number(r.endedMs)).sort((a, b) => a - b);
  let most = 0;
  for (const [i, end] of ends.entries()) {
    const within = ends.slice(i).filter((e) => e - end < slowMs / 2).length;
    most = Math.max(most, within);
  }
  return most || null;
}

/**
 * How the server refused a request, as it follows "was refused".
 *
 * @param {ProbeRequest} request
 */
function refusal(request) {
  if (request.answeredMs !== null) return ` with ${request.status}`;
  return request.sentMs === null
    ? ": it could not connect"
    : ": closed or reset without an answer";
}

/**
 * What a probe's figures say: the verdict, its sentence, what it means and
 * what it could not see.
 *
 * @param {ProbeRun} run
 * @returns {Verdict}
 *
 * @example A serial server: / answered only as /sleep was
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const slow = { path: "/sleep", kind: "slow" as const, openedMs: 1010, sentMs: 1010, answeredMs: 2010, endedMs: 2010, status: 200 };
 * const fast = { path: "/", kind: "fast" as const, openedMs: 1011, sentMs: 1011, answeredMs: 2011, endedMs: 2011, status: 200 };
 * const { verdict, atOnce, refused } = verdictOf({
 *   method: "slow", slowPath: "/sleep", fastPath: "/", fastMs: 2, slowMs: 1000, slowStatus: 200,
 *   idleMs: 2000, max: 16, requests: [slow, fast], steps: [{ loads: [slow], fast }], idle: null, unseen: [],
 * });
 * assertEquals([verdict, atOnce, refused], ["serial", 1, 0]);
 * ```
 */
export function verdictOf(run) {
  const reading = readingOf(run);
  const { verdict, atOnce, atLeast, slowAtOnce, idleHolds } = reading;
  return {
    verdict,
    atOnce,
    atLeast,
    refused: loadedOf(run).filter(refused).length,
    slowAtOnce,
    method: run.method,
    slowMs: run.method === "slow" ? run.slowMs : null,
    fastMs: run.fastMs,
    idleHolds,
    sentence: sentenceOf(run, reading),
    meaning: meaningOf(run, reading),
    unseen: [...run.unseen, ...notesOf(run, reading)],
  };
}

/**
 * The requests the probe made with the server loaded: its steps' and its
 * idle check's, each once.
 *
 * @param {ProbeRun} run
 */
const loadedOf = ({ steps, idle }) => [
  ...new Set(
    [...steps, ...(idle ? [idle] : [])].flatMap((s) => [...s.loads, s.fast]),
  ),
];

/**
 * @typedef {object} Reading What the figures say, before it is worded.
 * @property {Verdict["verdict"]} verdict
 * @property {number | null} atOnce
 * @property {boolean} atLeast
 * @property {number | null} slowAtOnce
 * @property {boolean | null} idleHolds
 * @property {ReturnType<typeof fullAt>} full
 * @property {ProbeStep | undefined} last The last step with room, before
 *   the full one, or the last step.
 * @property {"fast" | "steps" | "alone" | "idle"} [unknown] Why
 *   the verdict is unknown.
 */

/**
 * @param {ProbeRun} run
 * @returns {Reading}
 */
function readingOf(run) {
  const { method, steps, fastMs, slowMs, idleMs } = run;
  const base = {
    atOnce: null,
    atLeast: false,
    slowAtOnce: null,
    idleHolds: null,
    full: undefined,
    last: steps.at(-1),
  };
  if (!canTell(fastMs, method === "slow" ? slowMs : idleMs)) {
    return { ...base, verdict: "unknown", unknown: "fast" };
  }
  if (!steps.length) return { ...base, verdict: "unknown", unknown: "steps" };
  const full = fullAt(steps);
  const last = full ? steps[full.index - 1] : steps.at(-1);
  const slows = (steps.at(-1)?.loads ?? []).filter((r) => r.kind === "slow");
  const slowAtOnce = method === "slow" ? togetherOf(slows, slowMs) : null;
  const atOnce = inFlight(full ? full.step : /** @type {ProbeStep} */ (last))
    .length;
  const common = { ...base, full, last, slowAtOnce };
  if (full && atOnce === 0) {
    return { ...common, verdict: "unknown", unknown: "alone" };
  }
  if (method === "idle") {
    // Its steps are the idle check: connections that send nothing held it
    // full, or held nothing at all.
    if (!full) {
      const unknown = "idle";
      return { ...common, verdict: "unknown", unknown, idleHolds: false };
    }
    const verdict = atOnce === 1 ? "serial" : "pool";
    return { ...common, verdict, atOnce, idleHolds: true };
  }
  const verdict = !full ? "concurrent" : atOnce === 1 ? "serial" : "pool";
  const { idle } = run;
  let idleHolds = null;
  if (idle) {
    const enough = idle.loads.length >= (verdict === "pool" ? atOnce : 1);
    idleHolds = outcomeOf(idle) !== "room" ? true : enough ? false : null;
  }
  return { ...common, verdict, atOnce, atLeast: !full, idleHolds };
}

/**
 * How long the fast request of `step` waited (Infinity for no answer), and
 * when the first load in flight was let go of (which, and how long after
 * the fast one was sent; Infinity when none was).
 *
 * @param {ProbeStep} step
 */
function figuresOf(step) {
  const { fast } = step;
  const sent = sentAt(fast);
  const end = fast.answeredMs ?? fast.endedMs;
  const waitMs = typeof end === "number" ? end - sent : Infinity;
  const [first] = inFlight(step).sort((a, b) => letGoMs(a) - letGoMs(b));
  const letGo = (first ? letGoMs(first) : Infinity) - sent;
  return { waitMs, letGoMs: letGo, first };
}

/**
 * A request's label, as the timeline gives it.
 *
 * @param {ProbeRun} run
 * @param {ProbeRequest} request
 */
const labelIn = (run, request) =>
  probeRowLabels(run.requests)[run.requests.indexOf(request)] ?? request.path;

/**
 * "0.2 ms after" or "3 ms before": how `ms` stands against `otherMs`.
 *
 * @param {number} ms
 * @param {number} otherMs
 */
const against = (ms, otherMs) =>
  ms >= otherMs
    ? `${duration(ms - otherMs)} after`
    : `${duration(otherMs - ms)} before`;

/**
 * @param {ProbeRun} run
 * @param {Reading} reading
 */
function sentenceOf(run, reading) {
  const { method, slowPath, fastPath: fast, fastMs, slowMs, idleMs } = run;
  const { verdict, atOnce, full, last, unknown, slowAtOnce } = reading;
  const bySlow = method === "slow";
  const loaded = (/** @type {number} */ count) =>
    bySlow
      ? `${count} ${slowPath} in flight`
      : `${count} connection${count === 1 ? "" : "s"} open that sent nothing`;
  if (unknown === "fast") {
    const beside = bySlow
      ? `GET ${slowPath}'s ${duration(slowMs)}`
      : `the ${duration(idleMs)} it gives an idle connection (--idle-ms)`;
    return `Unknown: GET ${fast} took ${
      duration(fastMs)
    } alone, more than a quarter of ${beside}, so a wait cannot be told from its own time; give a path the server answers at once with --fast=PATH.`;
  }
  if (unknown === "steps") {
    return "Unknown: the probe made no step with the server loaded.";
  }
  if (unknown === "alone") {
    const by = /** @type {NonNullable<typeof full>} */ (full).by;
    return `Unknown: ${labelIn(run, by)} was refused${
      refusal(by)
    } with nothing else of the probe's in flight, though it was served alone: a limit on how often, not on how many at once?`;
  }
  const answered = (/** @type {ProbeStep} */ step) =>
    `answered ${duration(figuresOf(step).waitMs)} after it was sent`;
  if (unknown === "idle") {
    const step = /** @type {ProbeStep} */ (last);
    const status = run.slowStatus === null ? "" : `${run.slowStatus} `;
    return `Unknown: with ${loaded(inFlight(step).length)}, ${fast} was still ${
      answered(step)
    }, so connections hold nothing here, and that tells nothing about requests: GET ${slowPath} is not slow (answered ${status}in ${
      duration(slowMs)
    }); give a path the server takes a while to answer with --slow=PATH.`;
  }
  const n = Number(atOnce);
  const earlier = last
    ? `; with ${inFlight(last).length} it was ${answered(last)}`
    : "";
  if (verdict === "concurrent") {
    const { waitMs, letGoMs } = figuresOf(/** @type {ProbeStep} */ (last));
    const before = letGoMs === Infinity
      ? "before any of them ended"
      : `${duration(letGoMs - waitMs)} before the first of them ended`;
    return `All at once: with ${loaded(n)}, ${fast} was ${
      answered(/** @type {ProbeStep} */ (last))
    }, ${before}.${slowClause(run, n, slowAtOnce)}`;
  }
  const head = verdict === "serial" ? "One at a time" : `A pool of ${n}`;
  const { step, how, by } = /** @type {NonNullable<typeof full>} */ (full);
  if (how === "refused") {
    const who = by === step.fast ? fast : labelIn(run, by);
    return `${head}, refusing the rest: with ${loaded(n)}, ${who} was refused${
      refusal(by)
    }${earlier}.`;
  }
  const { waitMs, letGoMs, first } = figuresOf(step);
  const them = n === 1
    ? (bySlow ? `the ${slowPath}` : "it")
    : "the first of them";
  const freed = bySlow
    ? `${them} ended`
    : first && releasedMs(first) <= serverLetGoMs(first)
    ? `the probe sent a request on ${them}`
    : `the server closed ${them}`;
  const answer = waitMs === Infinity
    ? `${fast} got no answer while the probe waited`
    : `${fast} was answered only ${duration(waitMs)} after it was sent, ${
      against(waitMs, letGoMs)
    } ${freed}`;
  return `${head}: with ${loaded(n)}, ${answer}${earlier}.`;
}

/**
 * The slow requests' own concurrency, when it was less than it seemed.
 *
 * @param {ProbeRun} run
 * @param {number} n
 * @param {number | null} slowAtOnce
 */
function slowClause({ slowPath, steps }, n, slowAtOnce) {
  if (slowAtOnce === null || slowAtOnce >= n) return "";
  const ends = (steps.at(-1)?.loads ?? []).filter((r) => !refused(r))
    .map((r) => r.endedMs).filter((ms) => typeof ms === "number")
    .sort((a, b) => a - b);
  const spanMs = Number(ends.at(-1)) - Number(ends[0]);
  const apart = `their answers ended over ${duration(spanMs)}, ${
    duration(spanMs / (ends.length - 1))
  } apart on average`;
  return slowAtOnce === 1
    ? ` But the ${n} ${slowPath} themselves were served one at a time: ${apart}.`
    : ` But at most ${slowAtOnce} of the ${n} ${slowPath} were served together: ${apart}.`;
}

/**
 * What the verdict means, in terms of any server, with Deno's form as the
 * example, and what to do about it.
 *
 * @param {ProbeRun} run
 * @param {Reading} reading
 */
function meaningOf(run, reading) {
  const { verdict, atOnce, full, idleHolds, unknown, slowAtOnce } = reading;
  const n = Number(atOnce);
  const fast = run.fastPath;
  if (verdict === "unknown") {
    return unknown === "idle"
      ? [
        "With no slow request to measure, the probe only saw that connections which send nothing do not hold this server; how many requests it serves at once it did not see.",
      ]
      : [];
  }
  const loopWaits =
    "It waits on each connection: its loop (or its one thread) reads a connection and serves it to the end before it takes the next, so a connection that sends nothing holds everyone, as a browser's spare connection does, until the server gives up reading it. The cure is in the loop: serve each connection on its own, with a detached handler (in Deno, `void handle(conn)` instead of `await handle(conn)`) or a task or thread per connection. Meanwhile a deadline on the first read bounds the hold (small_server.ts gives it 3 s).";
  const handlingBlocks =
    `Connections are read at once (one that sends nothing held nothing), but handling blocks: the handler keeps the server's one thread busy (CPU work, or a blocking call such as \`time.sleep\` or a synchronous read in async code), or every request goes through one worker or one lock. A change to the loop will not help: give the thread back while the slow work runs, in slices with an await between them, in a worker thread, or as an async call (in Deno, /block's cures: \`/block-sliced\` and \`/block-worker\`).`;
  const whyNot = run.method === "slow" && run.idle === null
    ? "its time was up before it could check whether connections that send nothing hold it"
    : "it could not check with enough connections that send nothing";
  if (full?.how === "refused") {
    const meaning = [
      `It serves ${n} at once and refuses the rest at once, instead of queueing them: a limit on connections or requests, such as nginx's limit_conn or Node's server.maxConnections. A client beyond ${n} gets an error, not a wait.`,
    ];
    if (idleHolds) {
      meaning.push(
        `Connections that send nothing count against it too: with ${n} of them open, ${fast} was refused or kept waiting.`,
      );
    }
    return meaning;
  }
  if (verdict === "serial") {
    if (idleHolds === true) return [loopWaits];
    if (idleHolds === false) return [handlingBlocks];
    return [
      `Which kind of one at a time, the probe could not tell: ${whyNot}. Either its loop waits on each connection (the cure: serve each connection on its own, in Deno \`void handle(conn)\`), or handling blocks its one thread (the cure: give the thread back during the slow work, in slices, a worker thread or an async call).`,
    ];
  }
  if (verdict === "pool") {
    const limit = `At most ${n} at once: request ${
      n + 1
    } waits for one of the first ${n} to end.`;
    const counts =
      `${n} threads or workers each serving one connection to its end, or a limit on open connections such as main.ts's --max-in-flight=${n} (the async book's for_each_concurrent(${n}))`;
    if (idleHolds === true) {
      return [
        `${limit} And ${n} connections that send nothing fill it: it counts connections, not requests (${counts}), so spare connections from browsers, or slow clients, take its room. Reading requests before handing them to a worker (async I/O in front of the pool), or a deadline on the first read, keeps idle connections from holding it.`,
      ];
    }
    const which = idleHolds === false
      ? `Connections that send nothing hold none of it: it counts requests, not connections, such as ${n} workers behind a front that reads requests at once, or a limit around the handler.`
      : `Whether ${n} connections that send nothing fill it too (${counts}), the probe could not tell: ${whyNot}.`;
    return [
      `${limit} ${which} If you started more workers, something they share lets only ${n} work at once.`,
    ];
  }
  const meaning = [
    "The loop does not wait for one connection before accepting the next (a detached handler, or a task or thread per connection): every request the probe sent was served at once. A limit above what it tried, it cannot see.",
  ];
  if (slowAtOnce !== null && slowAtOnce < n) {
    const few = slowAtOnce === 1 ? "one" : `${slowAtOnce}`;
    meaning.push(
      `The slow requests, though, ran ${few} at a time: something they all take, such as a lock held across the slow work or one worker or database connection for all of them, lets ${few} run at a time. The loop is not the limit (${fast} was answered meanwhile): hold the lock only around what must not run twice, or give the slow work more workers.`,
    );
  }
  if (idleHolds === true) {
    meaning.push(
      "A connection that sends nothing holds it: a browser's spare connection, opened ahead of time, keeps everyone else waiting until the server gives up reading it. A deadline on the first read bounds that (small_server.ts gives it 3 s).",
    );
  } else if (idleHolds === false) {
    meaning.push("A connection that sends nothing did not hold it.");
  }
  return meaning;
}

/**
 * What the figures show the probe did not see.
 *
 * @param {ProbeRun} run
 * @param {Reading} reading
 */
function notesOf({ max, steps, slowPath }, { verdict, atOnce }) {
  if (verdict !== "concurrent" || Number(atOnce) >= max) return [];
  const stopped = steps.length < max
    ? ` (the first ${slowPath} was answered before it could send more)`
    : "";
  return [
    `It saw ${atOnce} in flight of the ${max} it meant to try${stopped}: the server may serve more at once.`,
  ];
}
