// The lab's probe of another server, served beside lab/index.html at
// /lab/probe.js: probe.ts's steps from the browser, read by the same
// verdict.js, whose verdict it heads its section with (the probed
// server's, not the lab's own mode). The server is another origin, so each fetch is
// no-cors: its answer is opaque (no status, no headers, no Resource Timing
// details), but the page still sees when it came. It draws with lab.js's
// helpers: the same module the page runs, not a second copy.
import { $, drawAxis, makeRow, paragraphs, params, round } from "./lab.js";
import {
  canTell,
  duration,
  fullAt,
  isSlowRoute,
  probeRowLabels,
  verdictOf,
} from "../probe/verdict.js";

/** Chromium opens at most 6 connections to one host: 5 slow, 1 fast. */
const PROBE_MAX = 5;
const PROBE_IDLE_MS = 2000;
const PROBE_FAST_LIMIT_MS = 10_000;

/**
 * Sends one request to `base`, and returns its record (times from `t0`)
 * with a promise that settles when it is answered or failed. No cache, so
 * that the browser does not hold back a request for the same URL.
 */
function probeSend(base, path, kind, t0, credentials = "omit") {
  const now = () => round(performance.now() - t0);
  const request = { path, kind, openedMs: now(), sentMs: now() };
  const done = fetch(new URL(path, base), {
    mode: "no-cors",
    cache: "no-store",
    credentials,
  }).then(
    () => request.answeredMs = request.endedMs = now(),
    () => {
      request.answeredMs = null;
      request.endedMs = now();
    },
  );
  return { request, done };
}

/**
 * A connection that sends nothing: a preconnect, which the browser opens
 * for requests with credentials. The measured requests go without, on
 * connections of their own; release() sends one with credentials, which
 * takes the preconnected connection, if the browser opened it.
 */
function probeIdle(base, path, t0) {
  const link = document.createElement("link");
  Object.assign(link, { rel: "preconnect", href: base.origin });
  document.head.append(link);
  const request = {
    path,
    kind: "idle",
    openedMs: round(performance.now() - t0),
    sentMs: null,
  };
  const idle = { request, done: new Promise(() => {}) };
  idle.release = () => {
    link.remove();
    if (request.sentMs !== null) return idle.done;
    const sent = probeSend(base, path, "idle", t0, "include");
    request.sentMs = sent.request.sentMs;
    idle.done = sent.done.then(() => {
      request.answeredMs = sent.request.answeredMs;
      request.endedMs = sent.request.endedMs;
    });
    return idle.done;
  };
  return idle;
}

/** Resolves after `ms`, or with the first of `promises`. */
function firstOf(promises, ms) {
  let timer;
  const late = new Promise((resolve) => timer = setTimeout(resolve, ms));
  return Promise.race([...promises, late]).finally(() => clearTimeout(timer));
}

/**
 * One step: the fast request after `loads`, waited for as probe.ts does,
 * until it is answered, one of the loads ends, or `limitMs` has passed.
 */
async function probeStep(base, fastPath, loads, limitMs, t0) {
  const fast = probeSend(base, fastPath, "fast", t0);
  await firstOf([fast.done, ...loads.map((l) => l.done)], limitMs);
  return {
    step: { loads: loads.map((l) => l.request), fast: fast.request },
    fast,
  };
}

/** Probes the server at `address` and shows what it found. */
async function runProbe(address) {
  const button = $("probe-form").querySelector("button");
  if (button.disabled) return;
  button.disabled = true;
  document.body.dataset.state = "running";
  globalThis.probeResult = undefined;
  $("probe-rows").replaceChildren();
  $("probe-waterfall").hidden = false;
  $("probe-head").hidden = true;
  paragraphs($("probe-story"), ["Probing…"]);
  const t0 = performance.now();
  const all = [];
  const track = (sent) => (all.push(sent), sent);
  const redraw = () => drawProbe(all.map((s) => s.request), t0);
  const frame = setInterval(redraw, 100);
  try {
    const base = new URL(address);
    if (base.protocol !== "http:") throw new Error("Give an http:// address");
    const fastPath = "/";
    const slowPath = "/sleep";
    const alone = async (path, kind, limitMs) => {
      const sent = track(probeSend(base, path, kind, t0));
      await firstOf([sent.done], limitMs);
      const { answeredMs, sentMs } = sent.request;
      if (typeof answeredMs !== "number") {
        throw new Error(
          `No answer to ${path} from ${base.origin}: the browser says only that the request failed (refused, reset or not HTTP look the same from here), or it took over ${
            duration(limitMs)
          }`,
        );
      }
      return round(answeredMs - sentMs);
    };
    let fastMs = await alone(fastPath, "fast", PROBE_FAST_LIMIT_MS);
    const slowMs = await alone(slowPath, "slow", 60_000);
    const isSlow = isSlowRoute(slowMs, null);
    const spanMs = isSlow ? slowMs : PROBE_IDLE_MS;
    if (!canTell(fastMs, spanMs)) {
      // The first request to a server may pay for its start: once more.
      const again = await alone(fastPath, "fast", PROBE_FAST_LIMIT_MS);
      fastMs = Math.min(fastMs, again);
    }
    const limitMs = isSlow ? 4 * slowMs + 10_000 : PROBE_IDLE_MS;
    const unseen = [];
    const steps = [];
    const loads = [];
    // Without a slow route, one preconnect is all the browser can hold.
    const max = isSlow ? PROBE_MAX : 1;
    const canStep = canTell(fastMs, spanMs);
    for (let load = 1; canStep && load <= max; load++) {
      if (loads.some((l) => l.request.endedMs != null)) break;
      loads.push(
        isSlow
          ? track(probeSend(base, slowPath, "slow", t0))
          : track(probeIdle(base, fastPath, t0)),
      );
      if (!isSlow) await new Promise((r) => setTimeout(r, 300));
      const { step, fast } = await probeStep(
        base,
        fastPath,
        loads,
        limitMs,
        t0,
      );
      track(fast);
      steps.push(step);
      if (fullAt([step])) break;
    }
    await Promise.all(loads.map((l) => l.release?.() ?? l.done));
    await Promise.all(all.map((s) => s.done));
    let idle = null;
    if (isSlow && steps.length) {
      // The browser holds one preconnect: the verdict says what one tells.
      const quiet = track(probeIdle(base, fastPath, t0));
      // The browser says nothing when its preconnect is open: give it time.
      await new Promise((r) => setTimeout(r, 300));
      const { step, fast } = await probeStep(
        base,
        fastPath,
        [quiet],
        PROBE_IDLE_MS,
        t0,
      );
      track(fast);
      idle = step;
      await quiet.release();
      await fast.done;
    }
    if (isSlow && steps.length === PROBE_MAX && !fullAt(steps)) {
      unseen.push(
        `The browser opens at most 6 connections to one server, so it sees at most ${PROBE_MAX} slow requests at once.`,
      );
    }
    const found = verdictOf({
      method: isSlow ? "slow" : "idle",
      slowPath,
      fastPath,
      fastMs,
      slowMs,
      slowStatus: null,
      idleMs: PROBE_IDLE_MS,
      max,
      requests: all.map((s) => s.request),
      steps,
      idle,
      unseen,
    });
    globalThis.probeResult = {
      url: `${base.origin}/`,
      slowPath,
      fastPath,
      ...found,
      tookMs: Math.round(performance.now() - t0),
    };
    const name = {
      serial: "one at a time",
      pool: `a pool of ${found.atOnce}`,
      concurrent: "all at once",
      unknown: "it could not tell",
    }[found.verdict];
    $("probe-head").querySelector("strong").textContent = found.verdict;
    $("probe-head").querySelector("span").textContent =
      ` — ${name}, for ${base.origin}`;
    $("probe-head").hidden = false;
    paragraphs($("probe-story"), [
      found.sentence,
      ...found.meaning,
      ...found.unseen.map((note) => `Note: ${note}`),
    ]);
    $("probe-verdict").dataset.verdict = found.verdict;
  } catch (error) {
    globalThis.probeResult = { error: error.message };
    paragraphs($("probe-story"), [error.message]);
  } finally {
    clearInterval(frame);
    redraw();
    document.body.dataset.state = "done";
    button.disabled = false;
  }
}

/** Draws the probe's requests: one bar from sent to answered. */
function drawProbe(requests, t0) {
  const nowMs = performance.now() - t0;
  const end = (r) => r.answeredMs ?? r.endedMs ?? nowMs;
  const percent = drawAxis(
    $("probe-ticks"),
    $("probe-waterfall"),
    Math.max(1000, ...requests.map(end)),
  );
  const rows = $("probe-rows");
  requests.forEach((r, i) => {
    const element = rows.children[i] ??
      makeRow(rows, probeRowLabels(requests)[i]);
    const sentMs = r.sentMs ?? end(r);
    element.dataset.state = r.answeredMs === undefined
      ? "waiting"
      : r.answeredMs === null
      ? "failed"
      : "answered";
    const bar = element.querySelector(".bar");
    bar.style.left = percent(sentMs);
    bar.style.width = percent(Math.max(0, end(r) - sentMs));
    const idle = element.querySelector(".idle");
    idle.hidden = r.kind !== "idle";
    idle.style.left = percent(r.openedMs);
    idle.style.width = percent(Math.max(0, sentMs - r.openedMs));
    element.querySelector(".held").hidden = true;
    element.querySelector(".figures b").textContent = duration(end(r) - sentMs);
  });
}

$("probe-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void runProbe($("probe-form").url.value); // it shows its own errors
});
if (params.has("probe")) {
  $("probe-form").url.value = params.get("probe");
  void runProbe(params.get("probe"));
}
