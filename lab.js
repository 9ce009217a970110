// The experiment of lab.html, served beside it at /lab.js: runs the slow
// request and the others, draws them, keeps each run and compares them.
const GAP_MS = 200;
// With the slow request, six connections: Chromium's limit for one
// host. A seventh would wait inside the browser, not the server.
const MAX_COUNT = 5;
// A wait this much longer than the requests ahead of it explain, or a
// send this much later than the page asked, is named on the page.
const HOLD_MS = 250;
// Answers this close arrived together: their order is the browser's.
const TOGETHER_MS = 50;
// Kept runs: see keep() and docs/browser.md.
const KEY = "lab.runs";
const VERSION = 1;
const KEEP = 30;
const MODES = ["serial", "concurrent", "parallel"];
const SLOWS = ["/sleep", "/block"];
// The task that starts each mode: see deno.json.
const task = (m) => `deno task ${m === "concurrent" ? "start" : m}`;

const $ = (id) => document.getElementById(id);
const form = $("controls");
const params = new URLSearchParams(location.search);
if (params.get("slow") === "block") form.slow.value = "block";
if (params.has("count")) form.count.value = params.get("count");
if (["soon", "after"].includes(params.get("predict"))) {
  form.predict.value = params.get("predict");
}
const slowChosen = () => form.slow.value === "block" ? "/block" : "/sleep";
form.addEventListener("change", () => {
  $("guess-slow").textContent = slowChosen();
});
$("guess-slow").textContent = slowChosen();

/** Mode, worker and handle time from Server-Timing metrics. */
function readMetrics(metrics) {
  const byName = new Map(metrics.map((m) => [m.name, m]));
  const worker = Number(byName.get("worker")?.description);
  return {
    mode: byName.get("mode")?.description,
    worker: Number.isInteger(worker) && worker > 0 ? worker : undefined,
    serverMs: byName.get("handle")?.duration,
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

let mode;
function showMode(found) {
  if (!found || mode === found) return;
  mode = found;
  const how = {
    serial: "one connection at a time",
    concurrent: "every connection at once, in one thread",
    parallel: "the concurrent loop in several worker threads",
  }[mode] ?? "";
  $("mode").innerHTML = `Mode: <strong></strong>${how ? ` — ${how}` : ""}`;
  $("mode").querySelector("strong").textContent = mode;
  $("guess-mode").textContent = mode;
  $("waterfall").classList.toggle("parallel", mode === "parallel");
}
// serverTiming is there in secure contexts (127.0.0.1 is one); from
// elsewhere the mode is read from the first answer of a run.
const navigation = performance.getEntriesByType("navigation")[0];
showMode(readMetrics(navigation?.serverTiming ?? []).mode);
if (!mode) {
  $("mode").innerHTML =
    "Mode: <strong>not known yet</strong> — the first answer will say";
}

// A Resource Timing entry arrives just after its response has ended:
// look for it a few times, or give up and use the page's clock.
async function entryFor(url) {
  for (let tries = 0; tries < 20; tries++) {
    const entry = performance.getEntriesByName(url, "resource")[0];
    if (entry) return entry;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const round = (ms) => Math.round(ms * 10) / 10;
function duration(ms) {
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1).replace(/\.0$/, "")} ms`;
}
function list(names) {
  if (names.length < 2) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}
/**
 * A sentence from a template: a number in it is a duration (2.0 s,
 * 3.7 ms), and an array of names is joined with commas and "and".
 */
function say(strings, ...values) {
  const show = (v) =>
    typeof v === "number"
      ? duration(v)
      : Array.isArray(v)
      ? list(v.map(show))
      : v;
  return strings.reduce((text, s, i) => text + show(values[i - 1]) + s);
}

const labelOf = (r, i) => i ? `/ #${i}` : r.path;
const labels = (rs) => rs.map((r) => r.label);
const longest = (rs, ms) => rs.reduce((a, b) => (ms(b) > ms(a) ? b : a));
const waitMs = (r) => r.answeredMs - r.sentMs;
const heldMs = (r) => r.sentMs - r.dueMs;
// The server counts from accept(), the browser from sending: the
// connection is always opened first, sometimes well ahead of time.
// Marked with * whenever the figures show the server's time longer.
const longer = (r) =>
  r.serverMs > waitMs(r) && duration(r.serverMs) !== duration(waitMs(r));

/** A row for one request, appended to `parent`. */
function makeRow(parent, label) {
  const row = document.createElement("div");
  row.className = "row";
  row.innerHTML =
    '<span class="label"></span><span class="track"><span class="held"></span><span class="bar"><span class="server"></span></span></span><span class="figures"></span>';
  row.querySelector(".label").textContent = label;
  parent.append(row);
  return row;
}

/** One request of a run: its row, and a promise of its timings. */
function send(path, label, runId, index, t0, dueMs) {
  const url = new URL(`${path}?lab=${runId}-${index}`, location.href).href;
  const row = makeRow($("rows"), label);
  const localSentMs = performance.now() - t0;
  const request = { path, label, row, dueMs, localSentMs };
  request.done = fetch(url, { cache: "no-store" }).then(async (response) => {
    await response.arrayBuffer();
    const entry = await entryFor(url);
    const metrics = entry?.serverTiming?.length
      ? entry.serverTiming
      : parseHeader(response.headers.get("Server-Timing"));
    const { mode, worker, serverMs } = readMetrics(metrics);
    showMode(mode);
    const answeredAt = entry?.responseStart || performance.now();
    Object.assign(request, {
      // After fetch() and before sending: waiting for a connection.
      connectionWaitMs: entry ? entry.requestStart - entry.startTime : 0,
      sentMs: round((entry?.requestStart || t0 + request.localSentMs) - t0),
      answeredMs: round(answeredAt - t0),
      serverMs: serverMs === undefined ? null : round(serverMs),
      worker,
    });
  }, () => {
    const sentMs = round(localSentMs);
    const failed = { failed: true, answeredMs: null, serverMs: null };
    Object.assign(request, { sentMs, ...failed });
  });
  return request;
}

/**
 * Writes the ticks of an axis that fits `spanMs` into `ticks`, and
 * returns how to place a time on it, as a percentage of its width.
 */
function axis(ticks, holder, spanMs) {
  const step = [100, 250, 500, 1000, 2000, 5000, 10000, 30000]
    .find((s) => spanMs / s <= 6) ?? 60000;
  const scale = Math.ceil(spanMs * 1.04 / (step / 2)) * (step / 2);
  const percent = (ms) => `${(100 * ms / scale).toFixed(2)}%`;
  holder.style.setProperty("--tick", percent(step));
  const spans = [];
  for (let ms = 0; ms <= scale; ms += step) {
    spans.push(
      `<span class="tick" style="left:${percent(ms)}">${duration(ms)}</span>`,
    );
  }
  ticks.innerHTML = spans.join("");
  return percent;
}

/**
 * Draws one request on its row: the hold before it was sent, if any,
 * then the wait, and the server's time only once its answer has come.
 */
function paint(row, r, percent, nowMs) {
  let state = r.answeredMs === undefined ? "waiting" : "answered";
  if (r.failed) state = "failed";
  row.dataset.state = state;
  const sent = r.sentMs ?? r.localSentMs;
  const end = state === "answered" ? r.answeredMs : nowMs;
  const bar = row.querySelector(".bar");
  bar.style.left = percent(sent);
  bar.style.width = percent(Math.max(0, end - sent));
  const held = row.querySelector(".held");
  held.hidden = !(sent - r.dueMs > HOLD_MS);
  held.style.left = percent(r.dueMs);
  held.style.width = percent(Math.max(0, sent - r.dueMs));
  const tip = state === "answered" ? (r.serverMs ?? 0) / (end - sent) : 0;
  const share = Math.min(1, tip) || 0;
  row.querySelector(".server").style.width = `${share * 100}%`;
  const figures = row.querySelector(".figures");
  if (state !== "answered") {
    figures.textContent = state === "failed"
      ? "failed"
      : say`waiting… ${end - sent}`;
  } else {
    const [server, worker] = [r.serverMs ?? "?", r.worker];
    const mark = longer(r) ? "*" : "";
    figures.innerHTML = say`<b>${end - sent}</b> · server ${server}${mark}` +
      (worker ? ` · worker ${worker}` : "");
  }
  return !held.hidden;
}

/** Draws the live run against a time axis that fits it so far. */
function draw(requests, nowMs) {
  const ends = requests.map((r) => r.answeredMs ?? nowMs);
  const percent = axis($("ticks"), $("waterfall"), Math.max(1000, ...ends));
  const held = requests.map((r) => paint(r.row, r, percent, nowMs));
  $("key-held").hidden = !held.includes(true);
}

/**
 * Requests that waited longer than the requests ahead of them
 * explain. A thread serves one connection at a time while its loop
 * is held (serial mode, or /block): a request can be accepted once
 * it was sent and the one before it on that thread was answered.
 * A longer wait means a connection this page cannot see held the
 * loop: in serial mode, an idle one the browser opened ahead of
 * time (a preconnect), until the server's head timeout.
 */
function holdsOf(requests) {
  const byAccept = [...requests].sort((a, b) =>
    (a.answeredMs - a.serverMs) - (b.answeredMs - b.serverMs)
  );
  return byAccept.flatMap((r, i) => {
    const acceptMs = r.answeredMs - r.serverMs;
    // Answers come back to the page in any order within a few
    // milliseconds: one a little after this accept still freed it.
    const before = byAccept.slice(0, i).filter((o) => o.worker === r.worker)
      .map((o) => o.answeredMs).filter((ms) => ms <= acceptMs + HOLD_MS);
    const heldMs = acceptMs - Math.max(r.sentMs, ...before);
    return heldMs > HOLD_MS ? [{ request: r, heldMs }] : [];
  });
}

/**
 * When the first / was answered, against the slow request: "soon"
 * (before it), "after" (with it or after it), or no outcome when the
 * first / was only sent once the slow request had been answered.
 */
function firstAnswer({ requests: [slow, first] }) {
  const wait = waitMs(first);
  if (first.sentMs >= slow.answeredMs) {
    const why = heldMs(first) > HOLD_MS
      ? "your browser held it back"
      : say`${slow.path} ended before ${first.dueMs}`;
    return {
      short: say`/ #1 was sent only after ${slow.path} was answered: ${why}`,
    };
  }
  if (first.answeredMs >= slow.answeredMs - TOGETHER_MS) {
    return {
      outcome: "after",
      short: say`first / waited for ${slow.path}: ${wait}`,
    };
  }
  return { outcome: "soon", short: say`first / answered in ${wait}` };
}

/** Whether the guess held, with this run's own numbers. */
function verdictOf(guess, run) {
  const [slow, first] = run.requests;
  const guessed = guess === "soon"
    ? "within a few milliseconds"
    : `only after ${slow.path}`;
  const failed = { short: "a request got no answer" };
  const { outcome, short } = readable(run) ? firstAnswer(run) : failed;
  const text = `Your guess, ${guessed}, could not be tested: ${short}.`;
  if (!outcome) return { held: "untested", text };
  const [wait, slowAt] = [waitMs(first), slow.answeredMs];
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

/** A few sentences that read this run's figures, then notes. */
function story(requests) {
  const [slow, ...fast] = requests;
  const failed = labels(requests.filter((r) => r.failed));
  if (failed.length) {
    return [say`${failed} got no answer: is the server still running?`];
  }
  if (requests.some((r) => r.serverMs === null)) {
    return [
      "This server sends no Server-Timing, so the page cannot tell the server's time from the wait.",
    ];
  }
  // The browser held a request back: that wait is not the server's.
  const held = requests.filter((r) => heldMs(r) > HOLD_MS);
  const why = (r) =>
    r.connectionWaitMs > HOLD_MS
      ? "a browser sends at most six requests at a time to one host (another tab on this server may have had the rest), and a tool that runs the page in virtual time, such as Chromium's --virtual-time-budget, holds them back too"
      : "the page's own timer fired late, on a busy machine or in a tab in the background";
  // Sent only once the slow request was answered: they show nothing.
  const late = held.filter((r) => r !== slow && r.sentMs >= slow.answeredMs);
  const shown = fast.filter((r) => !late.includes(r));
  const sentences = shown.length ? modeSentences(slow, shown) : [];
  if (late.length) {
    const [names, dues] = [labels(late), late.map((r) => r.dueMs)];
    const [it, reason] = [late.length > 1 ? "them" : "it", why(late[0])];
    sentences.push(
      say`Your browser held back ${names}: the page asked for ${it} at ${dues}, but the browser sent ${it} only after ${slow.path} was answered, at ${slow.answeredMs}, so this run cannot show whether the server would have made ${it} wait. Why: ${reason}.`,
    );
  }
  for (const r of held.filter((r) => !late.includes(r))) {
    const [ms, reason] = [heldMs(r), why(r)];
    const text =
      say`Your browser sent ${r.label} ${ms} after the page asked for it (the dotted line), and that part of its wait is not the server's. Why: ${reason}.`;
    sentences.push({ note: true, text });
  }
  const early = labels(requests.filter(longer));
  if (early.length) {
    const each = early.length > 1 ? "each" : "the";
    const text =
      say`* ${early}: the server's time is longer than your browser's wait, because your browser opened ${each} connection before it sent the request, and the server's clock starts when it accepts a connection.`;
    sentences.push({ note: true, text });
  }
  for (const { request: { label }, heldMs: extraMs } of holdsOf(requests)) {
    const text = mode === "serial"
      ? say`${label} waited ${extraMs} more than the requests ahead of it explain. The likeliest reason: an idle connection your browser opened ahead of time (a preconnect) held the serial loop until the server's head timeout answered it with 408 — the server's log shows that 408.`
      : say`${label} waited ${extraMs} before the server accepted it, which nothing in this run explains: a busy machine?`;
    sentences.push({ note: true, text });
  }
  return sentences;
}

/** What this run shows about the mode, in two sentences. */
function modeSentences(slow, fast) {
  const worst = longest(fast, (r) => waitMs(r) - r.serverMs);
  const [worstWait, worstServer] = [waitMs(worst), worst.serverMs];
  const backlog =
    say`${worst.label} waited ${worstWait} in your browser, but the server spent ${worstServer} on it: the rest it waited in the kernel's backlog`;
  if (mode === "serial") {
    const before = labels(fast.filter((r) => r.answeredMs < slow.answeredMs));
    return [
      say`${backlog}, because the serial loop was not calling accept() while it served ${slow.path}.`,
      before.length
        ? say`${before} came before ${slow.path}: the serial server takes connections in the order the kernel queued them, one at a time.`
        : say`Every / was answered after ${slow.path}, on which the server spent ${slow.serverMs}: one connection at a time.`,
    ];
  }
  if (mode === "parallel" && slow.path === "/block") {
    const met = fast.filter((r) => r.worker === slow.worker);
    const others = fast.filter((r) => r.worker !== slow.worker);
    const spun =
      say`worker ${slow.worker}, which spun on /block for ${slow.serverMs}`;
    let first = say`None of the / met the blocked worker, ${spun}.`;
    if (met.length) {
      const [names, top] = [labels(met), longest(met, waitMs)];
      const topMs = waitMs(top);
      const [its, they] = met.length > 1
        ? ["their connections", "they"]
        : ["its connection", "it"];
      first =
        say`${names} met the blocked worker: the kernel gave ${its} to ${spun}, so ${they} waited up to ${topMs} in your browser for a server time of ${top.serverMs}.`;
    }
    const workers = [...new Set(others.map((r) => `worker ${r.worker}`))];
    const names = labels(others);
    const was = others.length > 1 ? "were" : "was";
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
      say`${backlog}, because /block kept the only thread spinning for ${slow.serverMs}, so the loop could not call accept() meanwhile.`,
      "The concurrent loop serves many connections at once only while their handlers await; a handler that computes holds everyone up.",
    ];
  }
  const after = labels(fast.filter((r) => r.answeredMs >= slow.answeredMs));
  const slowest = waitMs(longest(fast, waitMs));
  const workers = [...new Set(fast.map((r) => `worker ${r.worker}`))].sort();
  const by = mode === "parallel" ? say`, by ${workers}` : "";
  const loop = mode === "parallel" ? "Each worker's" : "The";
  return [
    after.length
      ? say`${after} came after /sleep ended: sent too late to overlap it.`
      : say`Every / was answered while /sleep was still waiting on its timer, the slowest in ${slowest}${by}.`,
    say`${loop} concurrent loop went back to accept() as soon as /sleep's handler awaited its timer, so nothing waited in the backlog; the server spent ${slow.serverMs} on /sleep itself.`,
  ];
}

// Kept runs, in localStorage for this origin, oldest first:
// { version: 1, runs: [{ mode, slow, at, requests: [{ path, dueMs,
// sentMs, answeredMs, serverMs, worker? }] }] }, at most KEEP runs.
const isMs = (v) => typeof v === "number" && Number.isFinite(v) && v >= 0;
function readable(run) {
  return MODES.includes(run?.mode) && SLOWS.includes(run.slow) &&
    isMs(run.at) && Array.isArray(run.requests) &&
    run.requests.length >= 2 && run.requests.length <= MAX_COUNT + 1 &&
    run.requests.every((r, i) =>
      r?.path === (i ? "/" : run.slow) &&
      [r.dueMs, r.sentMs, r.answeredMs, r.serverMs].every(isMs) &&
      (r.worker === undefined || (Number.isInteger(r.worker) && r.worker > 0))
    );
}
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
  const shown = [...latest.values()];
  const ends = shown.flatMap((run) => run.requests.map((r) => r.answeredMs));
  const span = Math.max(1000, ...ends);
  const percent = axis($("compare-ticks"), $("compare"), span);
  const port = (location.port || "80") === "7878"
    ? ""
    : ` --port=${location.port || 80}`;
  const blocks = SLOWS.flatMap((slow) =>
    MODES.map((m) => {
      const block = document.createElement("div");
      block.className = "block";
      block.innerHTML = '<h3><span></span><span class="first"></span></h3>';
      block.querySelector("span").textContent = `${m} · ${slow}`;
      Object.assign(block.dataset, { mode: m, slow, state: "missing" });
      const run = latest.get(`${m} ${slow}`);
      if (!run) {
        const command = `${task(m)}${port}`;
        const how = m === mode
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
      const rows = run.requests.map((r, i) => makeRow(block, labelOf(r, i)));
      rows.forEach((row, i) => paint(row, run.requests[i], percent));
      markMet(rows, run);
      return block;
    })
  );
  if (shown.some((run) => run.requests.some(longer))) {
    const p = document.createElement("p");
    p.textContent =
      "* The server's time is longer than your browser's wait: your browser opened the connection before it sent the request, and the server's clock starts when it accepts a connection.";
    blocks.push(p);
  }
  $("blocks").replaceChildren(...blocks);
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

let runs = 0;
async function run() {
  const button = form.querySelector("button");
  if (button.disabled) return;
  button.disabled = true;
  document.body.dataset.state = "running";
  globalThis.labResult = undefined;
  const slowPath = slowChosen();
  const guess = form.predict.value === "none" ? "" : form.predict.value;
  const asked = Math.round(Number(form.count.value)) || 3;
  const count = Math.min(MAX_COUNT, Math.max(1, asked));
  form.count.value = count;
  history.replaceState(null, "", `?slow=${slowPath.slice(1)}&count=${count}`);
  performance.clearResourceTimings();
  $("rows").replaceChildren();
  $("story").replaceChildren();
  $("verdict").hidden = true;
  const runId = `${Date.now().toString(36)}${++runs}`;
  const t0 = performance.now();
  const requests = [send(slowPath, slowPath, runId, 0, t0, 0)];
  let frame = requestAnimationFrame(function tick() {
    draw(requests, performance.now() - t0);
    frame = requestAnimationFrame(tick);
  });
  for (let i = 1; i <= count; i++) {
    const dueMs = i * GAP_MS;
    await new Promise((resolve) =>
      setTimeout(resolve, t0 + dueMs - performance.now())
    );
    requests.push(send("/", `/ #${i}`, runId, i, t0, dueMs));
  }
  await Promise.all(requests.map((r) => r.done));
  cancelAnimationFrame(frame);
  draw(requests, performance.now() - t0);

  globalThis.labResult = requests.map((r) => {
    const { path, dueMs, sentMs, answeredMs, serverMs, worker } = r;
    const entry = { path, dueMs, sentMs, answeredMs, serverMs };
    return worker === undefined ? entry : { ...entry, worker };
  });
  const at = Date.now();
  const kept = { mode, slow: slowPath, at, requests: globalThis.labResult };
  markMet(requests.map((r) => r.row), kept);
  $("story").replaceChildren(
    ...story(requests).map((sentence) => {
      const p = document.createElement("p");
      p.textContent = sentence.text ?? sentence;
      p.className = sentence.note ? "note" : "";
      return p;
    }),
  );
  if (guess && mode) {
    const { held, text } = verdictOf(guess, kept);
    Object.assign($("verdict"), { hidden: false, textContent: text });
    $("verdict").dataset.held = held;
  }
  // Ask again before the next run.
  form.predict.value = "none";
  keep(kept);
  drawComparison();
  document.body.dataset.state = "done";
  button.disabled = false;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  run();
});
if (params.has("run")) run();
