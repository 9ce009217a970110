/**
 * The parallel benchmark's peer, for `deno serve --parallel` (one isolate
 * per `DENO_JOBS`): answers every request with hello.html, as main.ts
 * answers `/`.
 *
 * @module
 */

const hello = await Deno.readFile(new URL("../hello.html", import.meta.url));

/** What `deno serve` calls for each request, in every isolate. */
export default {
  fetch: () =>
    new Response(hello, {
      headers: { "content-type": "text/html; charset=utf-8" },
    }),
} satisfies Deno.ServeDefaultExport;
