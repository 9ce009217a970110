/**
 * The benchmark's peer: `Deno.serve()` answering every request with
 * hello.html, as main.ts answers `/`. It prints the same first line as
 * main.ts, so that the same harness starts it.
 *
 * @module
 */

const hello = await Deno.readFile(new URL("../hello.html", import.meta.url));
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => {
    console.log(`Listening on http://127.0.0.1:${port}/ (Deno.serve)`);
  },
}, () =>
  new Response(hello, {
    headers: { "content-type": "text/html; charset=utf-8" },
  }));
