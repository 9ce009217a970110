// The experiment of lab/index.html, served beside it at /lab/lab.js: runs the slow
// request and the others, draws them, keeps each run and compares them.
// What a run means is analysis.js's; this file measures and draws. It
// keeps no state of its own: the page (the DOM, localStorage) is the state.
// lab/probe.js, the page's probe of another server, draws with its helpers.
import {
  axisOf,
  CURES,
  firstAnswer,
  guessHeld,
  MAX_COUNT,
  MODES,
  readable,
  SLOWS,
  story,
  timeline,
} from "./analysis.js";
import { duration } from "../probe/verdict.js";

const GAP_MS = 200;
// Kept runs: see keep() and docs/browser.md.
const KEY = "lab.runs";
const VERSION = 1;
const KEEP = 30;
// The task that starts each mode: see deno.json.
const task = (m) => `deno task ${m === "concurrent" ? "start" : m}`;

export const $ = (id) => document.getElementById(id);
const form = $("controls");
export const params = new URLSearchParams(location.search);
const asked = `/${params.get("slow")}`;
if ([...SLOWS, ...CURES].includes(asked)) form.slow.value = asked.slice(1);
if (params.has("count")) form.count.value = params.get("count");
if (["soon", "after"].includes(params.get("predict"))) {
  form.predict.value = params.get("predict");
}
const slowChosen = () => `/${form.slow.value}`;
$("guess-slow").textContent = slowChosen();

/**
 * A guess is about one mode and slow request: when either changes, the
 * page clears it and says why, rather than judge it against another.
 */
function askAgain(why) {
  if (form.predict.value === "none") return;
  form.predict.value = "none";
  Object.assign($("guess-why"), { hidden: false, textContent: why });
}
form.addEventListener("change", ({ target }) => {
  if (target.name === "slow") {
    $("guess-slow").textContent = slowChosen();
    askAgain(`Guess again: the slow request is now ${slowChosen()}.`);
  }
  if (target.name === "predict") $("guess-why").hidden = true;
});

/** Mode, worker, handling and idle time from Server-Timing metrics. */
function readMetrics(metrics) {
  const byName = new Map(metrics.map((m) => [m.name, m]));
  const worker = Number(byName.get("worker")?.description);
  return {
    mode: byName.get("mode")?.description,
    worker: Number.isInteger(worker) && worker > 0 ? worker : undefined,
    serverMs: byName.get("handle")?.duration,
    idleMs: byName.get("idle")?.duration,
  };
}

/** Server-Timing metrics parsed from the header, as the browser does. */
function parseHeader(header) {
  return (header ?? "").split(",").map((metric) => {
    const [name, ...rest] = metric.split(";").map((s) => s.trim());
    const fields = Object.fromEntries(rest.map((p) => {
      const [key, value = ""] = p.split("=");
      return [key.trim(), value.trim().replace(/^"(.*)"$/, "$1")];
    }));
    const { desc: description = "", dur = 0 } = fields;
    return { name, description, duration: Number(dur) };
  }).filter((m) => m.name);
}

/** The mode the page names: from its own load, or the latest answer. */
const pageMode = () => $("mode").dataset.mode;
function showMode(found) {
  if (!found || pageMode() === found) return;
  const how = {
    serial: "one connection at a time",
    concurrent: "every connection at once, in one thread",
    parallel: "the concurrent loop in several worker threads",
  }[found] ?? "";
  $("mode").dataset.mode = found;
  $("mode").innerHTML = `Mode: <strong></strong>${how ? ` — ${how}` : ""}`;
  $("mode").querySelector("strong").textContent = found;
  $("guess-mode").textContent = found;
  $("waterfall").classList.toggle("parallel", found === "parallel");
}
// serverTiming is there in secure contexts (127.0.0.1 is one); from
// elsewhere the mode is read from the first answer of a run.
const navigation = performance.getEntriesByType("navigation")[0];
showMode(readMetrics(navigation?.serverTiming ?? []).mode);
if (!pageMode()) {
  $("mode").innerHTML =
    "Mode: <strong>not known yet</strong> — the first answer will say";
}

/**
 * The Resource Timing entry of `url`, which the browser adds just after
 * the response has ended; none if it never comes (a browser that keeps
 * none), and the page's own clock stands in.
 */
function entryFor(url) {
  return new Promise((resolve) => {
    const observer = new PerformanceObserver((list) => {
      const entry = list.getEntriesByName(url, "resource")[0];
      if (entry) done(entry);
    });
    const timer = setTimeout(() => done(undefined), 2000);
    function done(entry) {
      observer.disconnect();
      clearTimeout(timer);
      resolve(entry);
    }
    observer.observe({ type: "resource" });
    const there = performance.getEntriesByName(url, "resource")[0];
    if (there) done(there);
  });
}

export const round = (ms) => Math.round(ms * 10) / 10;

/** A row for one request, appended to `parent`. */
export function makeRow(parent, label) {
  const row = document.createElement("div");
  row.className = "row";
  row.innerHTML =
    '<span class="label"></span><span class="track"><span class="idle"></span><span class="held"></span><span class="bar"><span class="server"></span></span></span><span class="figures"><b></b><span></span><span class="early"></span></span>';
  row.querySelector(".label").textContent = label;
  parent.append(row);
  return row;
}

/**
 * One request of a run: its row, and a promise of its timings. Until its
 * answer, its time of sending is the page's own.
 */
function send(path, label, url, t0, dueMs) {
  const row = makeRow($("rows"), label);
  const localSentMs = performance.now() - t0;
  const request = { path, dueMs, sentMs: round(localSentMs), row };
  request.done = fetch(url, { cache: "no-store" }).then(async (response) => {
    await response.arrayBuffer();
    const entry = await entryFor(url);
    const metrics = entry?.serverTiming?.length
      ? entry.serverTiming
      : parseHeader(response.headers.get("Server-Timing"));
    const { mode, worker, serverMs, idleMs } = readMetrics(metrics);
    showMode(mode);
    const answeredAt = entry?.responseStart || performance.now();
    Object.assign(request, {
      mode,
      // After fetch() and before sending: waiting for a connection.
      connectionWaitMs: entry ? entry.requestStart - entry.startTime : 0,
      sentMs: round((entry?.requestStart || t0 + localSentMs) - t0),
      answeredMs: round(answeredAt - t0),
      serverMs: serverMs === undefined ? null : round(serverMs),
      ...(idleMs === undefined ? {} : { idleMs: round(idleMs) }),
      ...(worker === undefined ? {} : { worker }),
    });
  }, () => Object.assign(request, { answeredMs: null, serverMs: null }));
  return request;
}

/**
 * Writes the ticks of an axis that fits `spanMs`, shows it, and returns
 * how to place a time on it, as a percentage of its width.
 */
export function drawAxis(ticks, holder, spanMs) {
  const { stepMs, scaleMs, ticks: times } = axisOf(spanMs);
  const percent = (ms) => `${(100 * ms / scaleMs).toFixed(2)}%`;
  holder.style.setProperty("--tick", percent(stepMs));
  ticks.innerHTML = times.map((ms) =>
    `<span class="tick" style="left:${percent(ms)}">${duration(ms)}</span>`
  ).join("");
  ticks.closest(".axis").hidden = false;
  return percent;
}

/** Draws one row of analysis.js's timeline() on `element`. */
function paint(element, row, percent) {
  element.dataset.state = row.state;
  const place = (part, span) => {
    const piece = element.querySelector(part);
    piece.hidden = !span;
    if (!span) return piece;
    piece.style.left = percent(span.fromMs);
    piece.style.width = percent(Math.max(0, span.toMs - span.fromMs));
    return piece;
  };
  place(".bar", { fromMs: row.sentMs, toMs: row.endMs });
  place(".held", row.held);
  const idle = place(".idle", row.idle);
  idle.title = row.idle
    ? `connection open ${duration(row.idle.ms)} before this request`
    : "";
  element.querySelector(".server").style.width = `${row.serverShare * 100}%`;
  element.querySelector(".figures b").textContent = row.wait;
  element.querySelector(".figures span").textContent = row.figures;
  element.querySelector(".early").textContent = row.early;
}

/** Shows the items of `key` that some row needs. */
function showKey(key, rows) {
  const needs = {
    held: rows.some((row) => row.held),
    idle: rows.some((row) => row.idle),
    longer: rows.some((row) => row.figures.includes("*")),
  };
  for (const item of key.querySelectorAll("[data-needs]")) {
    item.hidden = !needs[item.dataset.needs];
  }
}

/** Draws the live run against a time axis that fits it so far. */
function draw(requests, nowMs) {
  const { rows, spanMs } = timeline(requests, nowMs);
  const percent = drawAxis($("ticks"), $("waterfall"), spanMs);
  rows.forEach((row, i) => paint(requests[i].row, row, percent));
  showKey($("key"), rows);
}

// Kept runs, in localStorage for this origin, oldest first:
// { version: 1, runs: [{ mode, slow, at, requests: [{ path, dueMs,
// sentMs, answeredMs, serverMs, idleMs?, worker? }] }] }, at most KEEP.
function writeKept(runs) {
  try {
    localStorage.setItem(KEY, JSON.stringify({ version: VERSION, runs }));
  } catch {
    // No storage here, or it is full: the page works without it.
  }
}
/** The kept runs that can be read; the others are dropped. */
function readKept() {
  let stored;
  try {
    const text = localStorage.getItem(KEY);
    if (text === null) return [];
    stored = JSON.parse(text);
  } catch {
    // Not JSON, or no storage: nothing to read.
  }
  const all = stored?.version === VERSION && Array.isArray(stored.runs)
    ? stored.runs
    : [];
  const runs = all.filter(readable).slice(-KEEP);
  if (runs.length !== all.length || all !== stored?.runs) writeKept(runs);
  return runs;
}
function keep(run) {
  if (readable(run)) writeKept([...readKept(), run].slice(-KEEP));
}

/** Marks the / that met the blocked worker, in parallel mode. */
function markMet(rows, { mode, slow, requests: [first, ...rest] }) {
  rest.forEach((r, i) => {
    const met = mode === "parallel" && slow === "/block" &&
      r.worker === first.worker;
    rows[i + 1].classList.toggle("met", met);
  });
}

/** The latest run of each mode and slow request, on one axis. */
function drawComparison() {
  const runs = readKept();
  const latest = new Map(runs.map((run) => [`${run.mode} ${run.slow}`, run]));
  const drawn = new Map(
    [...latest].map(([key, run]) => [key, timeline(run.requests).rows]),
  );
  const allRows = [...drawn.values()].flat();
  const percent = allRows.length
    ? drawAxis(
      $("compare-ticks"),
      $("compare"),
      Math.max(1000, ...allRows.map((row) => row.endMs)),
    )
    : undefined;
  $("compare-ticks").closest(".axis").hidden = !percent;
  const port = (location.port || "80") === "7878"
    ? ""
    : ` --port=${location.port || 80}`;
  const cures = CURES.filter((cure) => runs.some((run) => run.slow === cure));
  const blocks = [...SLOWS, ...cures].flatMap((slow) =>
    MODES.map((m) => {
      const block = document.createElement("div");
      block.className = "block";
      block.innerHTML = '<h3><span></span><span class="first"></span></h3>';
      block.querySelector("span").textContent = `${m} · ${slow}`;
      Object.assign(block.dataset, { mode: m, slow, state: "missing" });
      const run = latest.get(`${m} ${slow}`);
      if (!run) {
        const command = `${task(m)}${port}`;
        const how = m === pageMode()
          ? `choose <code>${slow}</code> above and press Run`
          : `start the server with <code>${command}</code>, reload this page and run <code>${slow}</code>`;
        block.insertAdjacentHTML("beforeend", `<p>Not run yet: ${how}.</p>`);
        return block;
      }
      const { outcome, short } = firstAnswer(run);
      const at = new Date(run.at).toLocaleTimeString();
      block.querySelector(".first").textContent = `${short} · ${at}`;
      const first = outcome ?? "untested";
      Object.assign(block.dataset, { state: "run", first });
      const rows = drawn.get(`${m} ${slow}`);
      const elements = rows.map((row) => makeRow(block, row.label));
      rows.forEach((row, i) => paint(elements[i], row, percent));
      markMet(elements, run);
      return block;
    })
  );
  $("blocks").replaceChildren(...blocks);
  showKey($("compare-key"), allRows);
  $("clear").disabled = runs.length === 0;
}
$("clear").addEventListener("click", () => {
  try {
    localStorage.removeItem(KEY);
  } catch {
    // No storage here: nothing was kept.
  }
  drawComparison();
});
drawComparison();

/**
 * One paragraph for each of `texts`, in `holder`; what stands between
 * backticks (the probe's `await handle(conn)`) is set as code.
 */
export function paragraphs(holder, texts) {
  holder.replaceChildren(...texts.map((text) => {
    const p = document.createElement("p");
    p.append(
      ...text.split("`").map((part, i) => {
        if (i % 2 === 0) return part;
        const code = document.createElement("code");
        code.textContent = part;
        return code;
      }),
    );
    return p;
  }));
}

async function run() {
  const button = form.querySelector("button");
  if (button.disabled) return;
  button.disabled = true;
  document.body.dataset.state = "running";
  globalThis.labResult = undefined;
  const modeBefore = pageMode();
  const slowPath = slowChosen();
  const guess = form.predict.value === "none" ? "" : form.predict.value;
  const asked = Math.round(Number(form.count.value)) || 3;
  const count = Math.min(MAX_COUNT, Math.max(1, asked));
  form.count.value = count;
  history.replaceState(null, "", `?slow=${slowPath.slice(1)}&count=${count}`);
  performance.clearResourceTimings();
  $("rows").replaceChildren();
  paragraphs($("story"), []);
  paragraphs($("notes"), []);
  $("verdict").hidden = true;
  const runId = `${Date.now().toString(36)}${
    Math.random().toString(36).slice(2, 6)
  }`;
  const url = (path, i) =>
    new URL(`${path}?lab=${runId}-${i}`, location.href).href;
  const t0 = performance.now();
  const requests = [send(slowPath, slowPath, url(slowPath, 0), t0, 0)];
  let frame = requestAnimationFrame(function tick() {
    draw(requests, performance.now() - t0);
    frame = requestAnimationFrame(tick);
  });
  for (let i = 1; i <= count; i++) {
    const dueMs = i * GAP_MS;
    await new Promise((resolve) =>
      setTimeout(resolve, t0 + dueMs - performance.now())
    );
    requests.push(send("/", `/ #${i}`, url("/", i), t0, dueMs));
  }
  await Promise.all(requests.map((r) => r.done));
  cancelAnimationFrame(frame);
  draw(requests, performance.now() - t0);

  globalThis.labResult = requests.map((r) => {
    const { path, dueMs, sentMs, answeredMs, serverMs, idleMs, worker } = r;
    const entry = { path, dueMs, sentMs, answeredMs, serverMs };
    if (idleMs !== undefined) entry.idleMs = idleMs;
    if (worker !== undefined) entry.worker = worker;
    return entry;
  });
  const mode = requests.find((r) => r.mode)?.mode ?? pageMode();
  const kept = {
    mode,
    slow: slowPath,
    at: Date.now(),
    requests: globalThis.labResult,
  };
  markMet(requests.map((r) => r.row), kept);
  const { sentences, notes } = story({ mode, requests });
  paragraphs($("story"), sentences);
  paragraphs($("notes"), notes);
  $("notes").hidden = notes.length === 0;
  if (guess && mode) {
    const { held, text } = guessHeld(guess, kept);
    Object.assign($("verdict"), { hidden: false, textContent: text });
    $("verdict").dataset.held = held;
  }
  if (modeBefore && mode !== modeBefore) {
    askAgain(`Guess again: the server now runs in ${mode} mode.`);
  }
  keep(kept);
  drawComparison();
  document.body.dataset.state = "done";
  button.disabled = false;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  void run(); // it shows its own errors
});
if (params.has("run")) void run();
