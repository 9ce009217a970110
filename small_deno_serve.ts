// deno-lint-ignore-file no-import-prefix
import { parseArgs } from "jsr:@std/cli@^1.0.32/parse-args";
const { port = 7878, "sleep-ms": ms = 5000 } = parseArgs(Deno.args, {
  unknown(arg, key) { // every argument comes here: a typo stops the program
    if (key === "port" || key === "sleep-ms") return true;
    console.error(`error: Unknown argument "${arg}"`);
    Deno.exit(2);
  },
});
const page = (name: string) => Deno.readFile(new URL(name, import.meta.url));
try { // a bad value, a missing page, a bad or busy port, no permission
  if (!/^\d+$/.test(`${ms}`)) throw new RangeError(`Invalid --sleep-ms: ${ms}`);
  const [hello, notFound] = [await page("hello.html"), await page("404.html")];
  // No serial mode: Deno.serve's accept loop never awaits this handler.
  Deno.serve({ hostname: "127.0.0.1", port }, async (request) => {
    const path = new URL(request.url).pathname, until = performance.now() + ms;
    if (path === "/sleep") await new Promise((ok) => setTimeout(ok, ms));
    while (path === "/block" && performance.now() < until); // never awaits
    if (["/", "/sleep", "/block"].includes(path)) return new Response(hello);
    return new Response(notFound, { status: 404 });
  });
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  Deno.exit(1);
}
