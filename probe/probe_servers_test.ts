/**
 * probe() against real servers nobody here wrote, each where it is
 * installed (the test task allows what allow_programs.ts finds; a test is
 * ignored, with the reason printed, where its program is missing):
 * Python's http.server with threads, without, and with a pool of three;
 * Flask with a lock around its slow route; `php -S`, with a slow route and
 * without; nginx with `limit_conn` in front of main.ts; Node with
 * `maxConnections`, and with a handler that spins; and a listener that
 * never accepts. The handlers are written here (a route that sleeps); the
 * servers that run them are theirs.
 */

import { assert, assertLess, assertMatch, assertRejects } from "@std/assert";
import { probe } from "./probe.ts";
import { startNginx } from "../tools/nginx.ts";
import { expectProbe, missing } from "../tests/probing.ts";
import {
  folder,
  type ServerProcess,
  spawnServer,
  startServerProcess,
} from "../tools/server_process.ts";
import { withDeadline } from "../tests/waiting.ts";

const [noPython, noPhp, noNginx, noNode] = ["python3", "php", "nginx", "node"]
  .map(missing);
const noFlask = noPython ??
  ((await new Deno.Command("python3", { args: ["-c", "import flask"] })
      .output()).success
    ? undefined
    : "Flask is not installed for python3");
for (const why of new Set([noPython, noPhp, noNginx, noNode, noFlask])) {
  if (why) console.log(`probe tests of real servers skipped: ${why}`);
}

/** How long the slow routes written here take, in seconds. */
const SLEEP_S = 0.5;
/** Few at once, to stay quick: enough to see a pool of 3. */
const MAX = 4;

/** Probes `server` and checks the fields of `expected`. */
const expectServer = (
  server: ServerProcess,
  expected: Parameters<typeof expectProbe>[1],
  options: Parameters<typeof expectProbe>[2] = {},
) => expectProbe(server.url, expected, { max: MAX, ...options }, server.lines);

/** A Python program that prints where it listens, then serves. */
function startPython(program: string) {
  return spawnServer("python3", ["-c", program], { cwd: folder });
}

/** Python's http.server with `serverClass`, serving the project's files. */
const httpServer = (serverClass: string) =>
  [
    "import http.server as h",
    `s = h.${serverClass}(("127.0.0.1", 0), h.SimpleHTTPRequestHandler)`,
    `print(f"Listening on http://127.0.0.1:{s.server_port}/ (python)", flush=True)`,
    "s.serve_forever()",
  ].join("\n");

Deno.test({
  name:
    "probe() finds Python's ThreadingHTTPServer (python3 -m http.server), which has no slow route, unknown",
  ignore: noPython !== undefined,
  fn: withDeadline(async () => {
    await using server = await startPython(httpServer("ThreadingHTTPServer"));
    const found = await expectServer(server, {
      verdict: "unknown",
      method: "idle",
      idleHolds: false,
    });
    assertMatch(found.sentence, /--slow=PATH\.$/);
  }),
});

Deno.test({
  name:
    "probe() finds Python's HTTPServer one at a time, held by an idle connection",
  ignore: noPython !== undefined,
  fn: withDeadline(async () => {
    await using server = await startPython(httpServer("HTTPServer"));
    await expectServer(server, {
      verdict: "serial",
      atOnce: 1,
      method: "idle",
      idleHolds: true,
    }, { idleMs: 500 });
  }),
});

Deno.test({
  name:
    "probe() finds a Python pool of 3 threads a pool of 3 that 3 idle connections fill",
  ignore: noPython !== undefined,
  fn: withDeadline(async () => {
    // A thread of the pool serves a connection from its first byte to its
    // end, as cheroot's and Java's pools do.
    await using server = await startPython(`
import http.server, time
from concurrent.futures import ThreadPoolExecutor
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/sleep": time.sleep(${SLEEP_S})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
class Pool(http.server.HTTPServer):
    pool = ThreadPoolExecutor(3)
    def process_request(self, request, address):
        self.pool.submit(self.work, request, address)
    def work(self, request, address):
        try: self.finish_request(request, address)
        finally: self.shutdown_request(request)
s = Pool(("127.0.0.1", 0), Handler)
print(f"Listening on http://127.0.0.1:{s.server_port}/ (pool of 3)", flush=True)
s.serve_forever()
`);
    await expectServer(server, {
      verdict: "pool",
      atOnce: 3,
      refused: 0,
      idleHolds: true,
    }, { idleMs: 500 });
  }),
});

Deno.test({
  name:
    "probe() finds Flask with a lock around /sleep all at once, its /sleep one at a time, and leaves none queued",
  ignore: noFlask !== undefined,
  fn: withDeadline(async () => {
    await using server = await startPython(`
import threading, time
from flask import Flask
from werkzeug.serving import make_server
app = Flask(__name__)
lock = threading.Lock()
@app.get("/")
def index(): return "hi"
@app.get("/sleep")
def sleep():
    with lock: time.sleep(${SLEEP_S})
    return "slept"
# What app.run(threaded=True) runs, on a port it reports.
s = make_server("127.0.0.1", 0, app, threaded=True)
print(f"Listening on http://127.0.0.1:{s.server_port}/ (Flask)", flush=True)
s.serve_forever()
`);
    const found = await expectServer(server, {
      verdict: "concurrent",
      atOnce: MAX,
      slowAtOnce: 1,
    });
    const slow = found.requests.filter((r) => r.kind === "slow");
    assert(slow.every((r) => r.status === 200), JSON.stringify(slow));
    assert(!found.unseen.some((note) => note.includes("unanswered")));
  }),
});

/** `php -S` with `router`, from a folder of its own, on a free port. */
async function startPhp(router: string): Promise<ServerProcess> {
  // .chromium/ is the one scratch folder the test task may write to.
  await Deno.mkdir(`${folder}/.chromium`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${folder}/.chromium` });
  await Deno.writeTextFile(`${dir}/router.php`, router);
  const remove = () => Deno.remove(dir, { recursive: true });
  try {
    const server = await spawnServer("php", [
      "-S",
      "127.0.0.1:0",
      "router.php",
    ], {
      cwd: dir,
      asListening: (line) =>
        /Development Server \((http:\/\/[^)]+)\) started/.exec(line)
          ?.[1].replace(/(.*)/, "Listening on $1/ (php -S)"),
    });
    return {
      ...server,
      async [Symbol.asyncDispose]() {
        await server[Symbol.asyncDispose]();
        await remove();
      },
    };
  } catch (error) {
    await remove();
    throw error;
  }
}

const phpRouter = (slow: boolean) =>
  `<?php
$path = parse_url($_SERVER["REQUEST_URI"], PHP_URL_PATH);
if (${slow ? "true" : "false"} && $path === "/sleep") { usleep(${
    SLEEP_S * 1e6
  }); echo "slept"; return true; }
if ($path === "/") { echo "hi"; return true; }
http_response_code(404);
echo "not found";
return true;
`;

Deno.test({
  name:
    "probe() finds php -S one at a time while idle connections hold nothing: handling blocks, whatever order its closes are read in",
  ignore: noPhp !== undefined,
  fn: withDeadline(async (t) => {
    await using server = await startPhp(phpRouter(true));
    // Its answers end with their close: the slow one's close may be read
    // after the fast answer that came after it.
    for (const run of [1, 2, 3]) {
      await t.step(`run ${run}`, async () => {
        const found = await expectServer(server, {
          verdict: "serial",
          atOnce: 1,
          slowAtOnce: 1,
          idleHolds: false,
        }, { max: 2 });
        assertMatch(found.sentence, /^One at a time: /);
      });
    }
  }),
});

Deno.test({
  name: "probe() finds php -S without a slow route unknown",
  ignore: noPhp !== undefined,
  fn: withDeadline(async () => {
    await using server = await startPhp(phpRouter(false));
    await expectServer(server, { verdict: "unknown", method: "idle" });
  }),
});

Deno.test({
  name:
    "probe() finds nginx with limit_conn 2 in front of main.ts concurrent a pool of 2 that refuses",
  ignore: noNginx !== undefined,
  fn: withDeadline(async () => {
    await using app = await startServerProcess(
      ["concurrent", `--sleep-ms=${SLEEP_S * 1000}`, "--quiet"],
    );
    await using nginx = await startNginx({
      folder: ".chromium",
      http:
        "limit_conn_zone $binary_remote_addr zone=addr:1m; limit_conn_log_level info;",
      locations:
        `location / { limit_conn addr 2; proxy_pass http://127.0.0.1:${app.port}; }`,
    });
    const found = await expectProbe(`http://127.0.0.1:${nginx.port}/`, {
      verdict: "pool",
      atOnce: 2,
      refused: 1,
      idleHolds: false,
    }, { max: MAX });
    assertMatch(found.sentence, /refusing the rest.* refused with 503/);
  }),
});

/** A Node server whose /sleep is `slow`, changed by `setUp`. */
function startNode(slow: string, setUp = "") {
  return spawnServer("node", [
    "-e",
    `
const server = require("http").createServer((request, response) => {
  if (request.url === "/sleep") { ${slow} }
  else response.end("hi");
});
${setUp}
server.listen(0, "127.0.0.1", () =>
  console.log(\`Listening on http://127.0.0.1:\${server.address().port}/ (node)\`));
`,
  ]);
}

Deno.test({
  name:
    "probe() finds Node with maxConnections=2 a pool of 2 that refuses the rest",
  ignore: noNode !== undefined,
  fn: withDeadline(async () => {
    await using server = await startNode(
      `setTimeout(() => response.end("slept"), ${SLEEP_S * 1000})`,
      "server.maxConnections = 2;",
    );
    const found = await expectServer(server, {
      verdict: "pool",
      atOnce: 2,
      refused: 2,
    });
    assertMatch(found.sentence, /closed or reset without an answer/);
  }),
});

Deno.test({
  name:
    "probe() finds Node with a handler that spins one at a time while idle connections hold nothing: handling blocks",
  ignore: noNode !== undefined,
  fn: withDeadline(async () => {
    await using server = await startNode(`
    const until = Date.now() + ${SLEEP_S * 1000};
    while (Date.now() < until);
    response.end("spun");
  `);
    const found = await expectServer(server, {
      verdict: "serial",
      atOnce: 1,
      idleHolds: false,
    });
    assertMatch(found.meaning[0], /A change to the loop will not help/);
  }),
});

Deno.test({
  name:
    "probe() gives up on a server that listens but never accepts within its connect timeout, in one line",
  ignore: noPython !== undefined,
  fn: withDeadline(async () => {
    // A queue of one connection, taken by its own: the kernel answers no
    // more, and a connect waits until it gives up (over 2 minutes).
    await using server = await startPython(`
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
port = s.getsockname()[1]
held = socket.create_connection(("127.0.0.1", port))
print(f"Listening on http://127.0.0.1:{port}/ (never accepts)", flush=True)
time.sleep(600)
`);
    const started = performance.now();
    const error = await assertRejects(() => probe(server.url));
    assertLess(performance.now() - started, 10_000);
    assertMatch(
      (error as Error).message,
      /^127\.0\.0\.1:\d+ did not accept a connection within 3\.0 s[^\n]*$/,
    );
  }),
});
