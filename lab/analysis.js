// @ts-check
/**
 * What the lab makes of a run: where each row's bar, hold and idle
 * connection go, the verdict on the guess, and the sentences and notes
 * under the waterfall. Pure functions of plain data, with no page: lab.js
 * draws what they return, and `deno test` checks them with no browser
 * (lab/analysis_test.ts). main.ts serves this file at
 * /lab/analysis.js.
 *
 * @module
 */

import { duration } from "../probe/verdict.js";

/**
 * One request of a run, times in milliseconds from the run's start.
 *
 * @typedef {object} LabRequest
 * @property {string} path `/sleep`, `/block`, a cure of it or `/`.
 * @property {number} dueMs When the page meant to send it.
 * @property {number} sentMs When the browser sent it.
 * @property {number | null} [answeredMs] When its answer came: undefined
 *   while it waits, null when it failed.
 * @property {number | null} [serverMs] The server's time for it
 *   (`handle;dur`), null when unknown.
 * @property {number} [idleMs] How long its connection sat open before its
 *   first byte (`idle;dur`), where the server says.
 * @property {number} [worker] Parallel mode: the worker that answered it.
 * @property {number} [connectionWaitMs] From fetch() to sending: the wait
 *   for a free connection inside the browser.
 */

/**
 * A run: its mode, as the server named it, and its requests, the slow one
 * first.
 *
 * @typedef {{ mode?: string, requests: LabRequest[] }} LabRun
 */

/** The modes a server names, in the comparison's order. */
export const MODES = ["serial", "concurrent", "parallel"];
/** The slow requests, in the comparison's order. */
export const SLOWS = ["/sleep", "/block"];
/**
 * The cures for /block: its spin in slices, or in a Worker. The comparison
 * draws them after SLOWS, once a run of them is kept.
 */
export const CURES = ["/block-sliced", "/block-worker"];
/**
 * The most `/` after the slow request: with it, six connections, Chromium's
 * limit for one host. A seventh would wait inside the browser, not the
 * server.
 */
export const MAX_COUNT = 5;
/**
 * A wait this much longer than the requests ahead of it explain, or a send
 * this much later than the page asked, is named on the page.
 */
export const HOLD_MS = 250;
/** Answers this close arrived together: their order is the browser's. */
export const TOGETHER_MS = 50;
/**
 * A request follows its connection within a few milliseconds; one opened
 * this long before its request was opened ahead of time (a preconnect).
 */
export const IDLE_MS = 50;

/** @param {string[]} names */
function list(names) {
  if (names.length < 2) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

/**
 * A sentence from a template: a number in it is a duration, and an array is
 * joined with commas and "and".
 *
 * @param {TemplateStringsArray} strings
 * @param {unknown[]} values
 */
function say(strings, ...values) {
  /** @type {(v: unknown) => string} */
  const show = (v) =>
    typeof v === "number"
      ? duration(v)
      : Array.isArray(v)
      ? list(v.map(show))
      : String(v);
  return strings.reduce((text, s, i) => text + show(values[i - 1]) + s);
}

/** @param {unknown} v */
const isMs = (v) => typeof v === "number" && Number.isFinite(v) && v >= 0;
/** @param {LabRequest} r */
const waitMs = (r) => Number(r.answeredMs) - r.sentMs;
/** @param {LabRequest} r */
const heldMs = (r) => r.sentMs - r.dueMs;
/**
 * How long before the browser sent the request the server had accepted its
 * connection. The server's idle time runs from accept() to its first read,
 * and a busy thread that reads late adds its own lag to it; the browser
 * sees that lag as wait outside the server's time, so idle + server - wait
 * is what is left from before the request was sent.
 *
 * @param {LabRequest} r
 */
const earlyMs = (r) =>
  Math.round((Number(r.idleMs) + Number(r.serverMs) - waitMs(r)) * 10) / 10;
/**
 * Whether the request came on a connection opened ahead of time.
 *
 * @param {LabRequest} r
 */
const opened = (r) =>
  isMs(r.idleMs) && isMs(r.answeredMs) && isMs(r.serverMs) &&
  earlyMs(r) >= IDLE_MS;
/**
 * A server that sends no `idle;dur` counts from accept(): its time can be
 * longer than the browser's wait when the connection was opened first.
 *
 * @param {LabRequest} r
 */
const longer = (r) =>
  r.idleMs === undefined && isMs(r.answeredMs) &&
  Number(r.serverMs) > waitMs(r) &&
  duration(Number(r.serverMs)) !== duration(waitMs(r));

/**
 * The label of the request at `index` of its run: its path for the slow
 * one, then `/ #1`, `/ #2`…
 *
 * @param {LabRequest} request
 * @param {number} index
 */
const runRowLabel = (request, index) => index ? `/ #${index}` : request.path;

/**
 * A time axis that fits `spanMs`: a round step, at most six of them, and a
 * little room after the last time.
 *
 * @param {number} spanMs
 * @returns {{ stepMs: number, scaleMs: number, ticks: number[] }}
 */
export function axisOf(spanMs) {
  const stepMs = [100, 250, 500, 1000, 2000, 5000, 10000, 30000]
    .find((s) => spanMs / s <= 6) ?? 60000;
  const scaleMs = Math.ceil(spanMs * 1.04 / (stepMs / 2)) * (stepMs / 2);
  const ticks = [];
  for (let ms = 0; ms <= scaleMs; ms += stepMs) ticks.push(ms);
  return { stepMs, scaleMs, ticks };
}

/**
 * @typedef {object} Row What one request's row shows, in milliseconds.
 * @property {string} label
 * @property {"waiting" | "answered" | "failed"} state
 * @property {number} sentMs Where its bar begins.
 * @property {number} endMs Where its bar ends: its answer, or now.
 * @property {number} serverShare How much of the bar is the server's, 0 to 1.
 * @property {{ fromMs: number, toMs: number } | undefined} held The
 *   browser's hold, from when the page asked to when it sent.
 * @property {{ fromMs: number, toMs: number, ms: number } | undefined} idle
 *   The connection open and unused before the request (from 0 at the
 *   earliest), once answered.
 * @property {string} wait The bold figure: the wait, once answered.
 * @property {string} figures The rest: the server's time and worker, or
 *   how long it has waited so far, or "failed".
 * @property {string} early Under them, how long before the request its
 *   connection was opened, when it is drawn.
 */

/**
 * A run's rows and the axis that fits them, at `nowMs` into the run (a
 * kept run has ended: every row is answered).
 *
 * @param {LabRequest[]} requests
 * @param {number} [nowMs]
 * @returns {{ rows: Row[], spanMs: number }}
 */
export function timeline(requests, nowMs = 0) {
  const rows = requests.map((r, i) => rowOf(r, runRowLabel(r, i), nowMs));
  return { rows, spanMs: Math.max(1000, ...rows.map((row) => row.endMs)) };
}

/**
 * @param {LabRequest} r
 * @param {string} label
 * @param {number} nowMs
 * @returns {Row}
 */
function rowOf(r, label, nowMs) {
  const state = r.answeredMs === null
    ? "failed"
    : r.answeredMs === undefined
    ? "waiting"
    : "answered";
  const answered = state === "answered";
  const endMs = answered ? Number(r.answeredMs) : nowMs;
  const spent = Math.max(0, endMs - r.sentMs);
  const held = heldMs(r) > HOLD_MS
    ? { fromMs: r.dueMs, toMs: r.sentMs }
    : undefined;
  const early = earlyMs(r);
  const idle = answered && opened(r)
    ? { fromMs: Math.max(0, r.sentMs - early), toMs: r.sentMs, ms: early }
    : undefined;
  const server = isMs(r.serverMs) ? Number(r.serverMs) : undefined;
  const share = answered && server !== undefined ? server / spent : 0;
  const serverText = server === undefined ? "?" : duration(server);
  const mark = longer(r) ? "*" : "";
  const worker = r.worker ? ` · worker ${r.worker}` : "";
  const figures = state === "failed"
    ? "failed"
    : !answered
    ? say`waiting… ${spent}`
    : ` · server ${serverText}${mark}${worker}`;
  return {
    label,
    state,
    sentMs: r.sentMs,
    endMs,
    serverShare: Math.min(1, share) || 0,
    held,
    idle,
    wait: answered ? duration(spent) : "",
    figures,
    early: idle ? say`opened ${early} early` : "",
  };
}

/** @param {LabRequest[]} requests */
const answeredWithTimes = (requests) =>
  requests.every((r) => isMs(r.answeredMs) && isMs(r.serverMs));

/**
 * Requests that waited longer than the requests ahead of them explain. A
 * thread serves one connection at a time while its loop is held (serial
 * mode, or /block): a request can be begun once it was sent and the one
 * before it on that thread was answered. A longer wait means a connection
 * this page cannot see held the loop: in serial mode, an idle one the
 * browser opened ahead of time, until the server's head timeout.
 *
 * @param {(LabRequest & { label: string })[]} requests
 */
function holdsOf(requests) {
  // When the server began on it: its first byte, or with an older server,
  // its accept().
  /** @param {LabRequest} r */
  const begunMs = (r) => Number(r.answeredMs) - Number(r.serverMs);
  const byStart = [...requests].sort((a, b) => begunMs(a) - begunMs(b));
  return byStart.flatMap((r, i) => {
    const startMs = begunMs(r);
    // Answers come back to the page in any order within a few
    // milliseconds: one a little after this start still freed it.
    const before = byStart.slice(0, i).filter((o) => o.worker === r.worker)
      .map((o) => Number(o.answeredMs)).filter((ms) => ms <= startMs + HOLD_MS);
    const extraMs = startMs - Math.max(r.sentMs, ...before);
    return extraMs > HOLD_MS ? [{ label: r.label, extraMs }] : [];
  });
}

/**
 * When the first / was answered, against the slow request: `soon` (before
 * it), `after` (with it or after it), or no outcome when the first / was
 * only sent once the slow request had been answered.
 *
 * @param {LabRun} run A run whose first two requests were answered.
 * @returns {{ outcome?: "soon" | "after", short: string }}
 */
export function firstAnswer({ requests: [slow, first] }) {
  const slowAt = Number(slow.answeredMs);
  if (first.sentMs >= slowAt) {
    const why = heldMs(first) > HOLD_MS
      ? "your browser held it back"
      : say`${slow.path} ended before ${first.dueMs}`;
    return {
      short: say`/ #1 was sent only after ${slow.path} was answered: ${why}`,
    };
  }
  if (Number(first.answeredMs) >= slowAt - TOGETHER_MS) {
    return {
      outcome: "after",
      short: say`first / waited for ${slow.path}: ${waitMs(first)}`,
    };
  }
  return { outcome: "soon", short: say`first / answered in ${waitMs(first)}` };
}

/**
 * Whether the guess held, with the run's own numbers.
 *
 * @param {"soon" | "after"} guess
 * @param {LabRun} run
 * @returns {{ held: "yes" | "no" | "untested", text: string }}
 */
export function guessHeld(guess, run) {
  const [slow, first] = run.requests;
  const guessed = guess === "soon"
    ? "within a few milliseconds"
    : `only after ${slow.path}`;
  const { outcome, short } = answeredWithTimes(run.requests)
    ? firstAnswer(run)
    : { outcome: undefined, short: "a request got no answer" };
  if (!outcome) {
    return {
      held: "untested",
      text: `Your guess, ${guessed}, could not be tested: ${short}.`,
    };
  }
  const [wait, slowAt] = [waitMs(first), Number(slow.answeredMs)];
  const facts = outcome === "after"
    ? say`/ #1 waited ${wait} for an answer that came only with ${slow.path}'s, at ${slowAt}; the server spent ${first.serverMs} on it.`
    : say`/ #1 was answered ${wait} after it was sent, while ${slow.path} was answered only at ${slowAt}.`;
  const held = guess === outcome ? "yes" : "no";
  const how = held === "yes" ? "held" : "did not hold";
  return {
    held,
    text: `Your guess, ${guessed}, ${how}: in ${run.mode} mode, ${facts}`,
  };
}

/**
 * What a finished run shows: a few sentences that read its figures, and
 * notes on what else its figures hold (the browser's holds, connections
 * opened ahead of time, waits the run cannot explain), each once.
 *
 * @param {LabRun} run
 * @returns {{ sentences: string[], notes: string[] }}
 */
export function story({ mode, requests: plain }) {
  const requests = plain.map((r, i) => ({ ...r, label: runRowLabel(r, i) }));
  /** @param {{ label: string }[]} rs */
  const labels = (rs) => rs.map((r) => r.label);
  const [slow, ...fast] = requests;
  const failed = labels(requests.filter((r) => r.answeredMs === null));
  if (failed.length) {
    return {
      sentences: [say`${failed} got no answer: is the server still running?`],
      notes: [],
    };
  }
  if (requests.some((r) => !isMs(r.serverMs))) {
    return {
      sentences: [
        "This server sends no Server-Timing, so the page cannot tell the server's time from the wait.",
      ],
      notes: [],
    };
  }
  const notes = [];
  // The browser held a request back: that wait is not the server's.
  const held = requests.filter((r) => heldMs(r) > HOLD_MS);
  /** @param {LabRequest} r */
  const why = (r) =>
    (r.connectionWaitMs ?? 0) > HOLD_MS
      ? "a browser sends at most six requests at a time to one host (another tab on this server may have had the rest), and a tool that runs the page in virtual time, such as Chromium's --virtual-time-budget, holds them back too"
      : "the page's own timer fired late, on a busy machine or in a tab in the background";
  // Sent only once the slow request was answered: they show nothing.
  const slowAt = Number(slow.answeredMs);
  const late = held.filter((r) => r !== slow && r.sentMs >= slowAt);
  const shown = fast.filter((r) => !late.includes(r));
  const sentences = shown.length ? modeSentences(mode, slow, shown) : [];
  if (late.length) {
    const [names, dues] = [labels(late), late.map((r) => r.dueMs)];
    const [it, reason] = [late.length > 1 ? "them" : "it", why(late[0])];
    sentences.push(
      say`Your browser held back ${names}: the page asked for ${it} at ${dues}, but the browser sent ${it} only after ${slow.path} was answered, at ${slowAt}, so this run cannot show whether the server would have made ${it} wait. Why: ${reason}.`,
    );
  }
  for (const r of held.filter((r) => !late.includes(r))) {
    const [ms, reason] = [heldMs(r), why(r)];
    notes.push(
      say`Your browser sent ${r.label} ${ms} after the page asked for it (the dotted line), and that part of its wait is not the server's. Why: ${reason}.`,
    );
  }
  const idle = requests.filter(opened);
  if (idle.length) {
    const { label } = idle[0];
    const [idleMs, serverMs] = [earlyMs(idle[0]), Number(idle[0].serverMs)];
    const each = idle.map((r) => say`${earlyMs(r)} for ${r.label}`);
    const note = idle.length === 1
      ? say`Your browser opened ${label}'s connection ${idleMs} before it sent the request on it (the thin line): the server counts from the request's first byte, so its ${serverMs} leaves that idle time out.`
      : say`Your browser opened connections ahead of time and left them idle before it sent a request on them: ${each} (the thin lines). The server counts from each request's first byte, so its times leave that idle time out.`;
    notes.push(
      mode === "serial"
        ? `${note} Meanwhile a serial server waits on that connection and accepts no other.`
        : note,
    );
  }
  const early = labels(requests.filter(longer));
  if (early.length) {
    const each = early.length > 1 ? "each" : "the";
    notes.push(
      say`* ${early}: the server's time is longer than your browser's wait, because this server counts from accepting a connection, and your browser opened ${each} connection before it sent the request.`,
    );
  }
  for (const { label, extraMs } of holdsOf(requests)) {
    notes.push(
      mode === "serial"
        ? say`${label} waited ${extraMs} more than the requests ahead of it explain. The likeliest reason: an idle connection your browser opened ahead of time (a preconnect) held the serial loop until the server's head timeout closed it — the server's log shows it as closed: sent nothing within the head timeout.`
        : say`${label} waited ${extraMs} before the server began on it, which nothing in this run explains: a busy machine?`,
    );
  }
  return { sentences, notes };
}

/**
 * What the run shows about its mode, in two sentences.
 *
 * @param {string | undefined} mode
 * @param {LabRequest & { label: string }} slow
 * @param {(LabRequest & { label: string })[]} fast
 */
function modeSentences(mode, slow, fast) {
  /** @param {{ label: string }[]} rs */
  const labels = (rs) => rs.map((r) => r.label);
  /**
   * @template {LabRequest} T
   * @param {T[]} rs
   * @param {(r: T) => number} ms
   */
  const longest = (rs, ms) => rs.reduce((a, b) => (ms(b) > ms(a) ? b : a));
  const server = (/** @type {LabRequest} */ r) => Number(r.serverMs);
  const [slowAt, spent] = [Number(slow.answeredMs), server(slow)];
  const worst = longest(fast, (r) => waitMs(r) - server(r));
  const [worstWait, worstServer] = [waitMs(worst), server(worst)];
  const backlog =
    say`${worst.label} waited ${worstWait} in your browser, but the server spent ${worstServer} on it: the rest it waited in the kernel's backlog`;
  const cure = CURES.includes(slow.path);
  if (mode === "serial") {
    const before = labels(fast.filter((r) => Number(r.answeredMs) < slowAt));
    const freed = cure
      ? [
        say`${slow.path} freed the thread, not the loop: a serial loop awaits the whole request, however it spends its time.`,
      ]
      : [];
    return [
      say`${backlog}, because the serial loop was not calling accept() while it served ${slow.path}.`,
      before.length
        ? say`${before} came before ${slow.path}: the serial server takes connections in the order the kernel queued them, one at a time.`
        : say`Every / was answered after ${slow.path}, on which the server spent ${spent}: one connection at a time.`,
      ...freed,
    ];
  }
  if (mode === "parallel" && slow.path === "/block") {
    const met = fast.filter((r) => r.worker === slow.worker);
    const others = fast.filter((r) => r.worker !== slow.worker);
    const spun = say`worker ${
      String(slow.worker)
    }, which spun on /block for ${spent}`;
    let first = say`None of the / met the blocked worker, ${spun}.`;
    if (met.length) {
      const [names, top] = [labels(met), longest(met, waitMs)];
      const [topWait, topServer] = [waitMs(top), server(top)];
      const [its, they] = met.length > 1
        ? ["their connections", "they"]
        : ["its connection", "it"];
      first =
        say`${names} met the blocked worker: the kernel gave ${its} to ${spun}, so ${they} waited up to ${topWait} in your browser for a server time of ${topServer}.`;
    }
    const workers = [...new Set(others.map((r) => `worker ${r.worker}`))];
    const [names, was] = [labels(others), others.length > 1 ? "were" : "was"];
    const within = Math.max(...others.map(waitMs));
    return [
      first,
      others.length
        ? say`${names} went to ${workers.sort()} and ${was} answered within ${within}: the kernel picks a worker for each connection, and a blocked one holds only its own.`
        : "Every / went to the blocked worker this time: the kernel picks a worker for each connection, so run again to see some go to another.",
    ];
  }
  if (slow.path === "/block") {
    return [
      say`${backlog}, because /block kept the only thread spinning for ${spent}, so the loop could not call accept() meanwhile.`,
      "The concurrent loop serves many connections at once only while their handlers await; a handler that computes holds everyone up.",
    ];
  }
  const after = labels(fast.filter((r) => Number(r.answeredMs) >= slowAt));
  const slowest = waitMs(longest(fast, waitMs));
  const workers = [...new Set(fast.map((r) => `worker ${r.worker}`))].sort();
  const by = mode === "parallel" ? say`, by ${workers}` : "";
  const loop = mode === "parallel" ? "Each worker's" : "The";
  const sent = after.length
    ? say`${after} came after ${slow.path} ended: sent too late to overlap it.`
    : "";
  if (slow.path === "/block-sliced") {
    return [
      sent ||
      say`/block-sliced took ${spent} on the server, yet every / was answered within ${slowest}${by}: between its slices of spin, each followed by an await of a timer, the loop accepted and answered them.`,
      "The slices cost time: the same spin as /block, with a turn of the loop after each slice, takes longer in all.",
    ];
  }
  if (slow.path === "/block-worker") {
    return [
      sent ||
      say`/block-worker took ${spent} on the server, spinning in a Worker it started, yet every / was answered within ${slowest}${by}: the loop's thread only awaited the Worker's answer.`,
      mode === "parallel"
        ? "The Worker costs its start, a thread and a module to load for each request, and from a worker thread far more: Deno 2.9.6 answers the first message of a Worker started there only after about a second. The spin it ran kept another core busy."
        : "The Worker costs its start, a thread and a module to load for each request, and the spin it ran kept another core busy.",
    ];
  }
  return [
    sent ||
    say`Every / was answered while /sleep was still waiting on its timer, the slowest in ${slowest}${by}.`,
    say`${loop} concurrent loop went back to accept() as soon as /sleep's handler awaited its timer, so nothing waited in the backlog; the server spent ${spent} on /sleep itself.`,
  ];
}

/**
 * Whether a kept run has the shape docs/browser.md gives it: a mode and
 * slow request named, two to six requests, every time a finite number of
 * milliseconds, not negative. `idleMs` and `worker` may be missing.
 *
 * @param {unknown} value
 * @returns {value is LabRun & { slow: string, at: number }}
 */
export function readable(value) {
  const run = /** @type {any} */ (value);
  return MODES.includes(run?.mode) &&
    [...SLOWS, ...CURES].includes(run.slow) &&
    isMs(run.at) && Array.isArray(run.requests) &&
    run.requests.length >= 2 && run.requests.length <= MAX_COUNT + 1 &&
    run.requests.every((/** @type {any} */ r, /** @type {number} */ i) =>
      r?.path === (i ? "/" : run.slow) &&
      [r.dueMs, r.sentMs, r.answeredMs, r.serverMs].every(isMs) &&
      (r.idleMs === undefined || isMs(r.idleMs)) &&
      (r.worker === undefined || (Number.isInteger(r.worker) && r.worker > 0))
    );
}
