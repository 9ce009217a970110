// deno-lint-ignore-file no-import-prefix
import { deadline } from "jsr:@std/async@^1.5.0/deadline";
import { parseArgs } from "jsr:@std/cli@^1.0.32/parse-args";
const { _: [mode = "concurrent"], port = 7878 } = parseArgs(Deno.args, {
  unknown(arg, key) { // every argument comes here: a typo stops the program
    if (key === "port" || arg === "serial" || arg === "concurrent") return true;
    console.error(`error: Unknown ${key ? "flag" : "mode"} "${arg}"`);
    Deno.exit(2);
  },
});
let hello: Uint8Array, notFound: Uint8Array, listener: Deno.TcpListener;
try { // a missing page, a bad or busy port, no permission
  hello = await Deno.readFile(new URL("hello.html", import.meta.url));
  notFound = await Deno.readFile(new URL("404.html", import.meta.url));
  listener = Deno.listen({ hostname: "127.0.0.1", port });
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  Deno.exit(1);
}
console.log(`Listening on http://127.0.0.1:${listener.addr.port}/ (${mode})`);
for await (const conn of listener) {
  if (mode === "serial") {
    await handle(conn); // the loop waits: one client at a time
  } else {
    void handle(conn); // on purpose, no await: every client at once
  }
}

async function handle(conn: Deno.Conn) {
  try { // a browser may open a connection early and send nothing on it
    const buffer = new Uint8Array(1024);
    const read = await deadline(conn.read(buffer), 3000) ?? 0;
    const text = new TextDecoder().decode(buffer.subarray(0, read));
    const requestLine = text.split("\r\n")[0];
    let [status, page] = ["200 OK", hello];
    if (requestLine === "GET /sleep HTTP/1.1") {
      await new Promise((resolve) => setTimeout(resolve, 5000));
    } else if (requestLine !== "GET / HTTP/1.1") {
      [status, page] = ["404 Not Found", notFound];
    }
    const head = `HTTP/1.1 ${status}\r\nContent-Length: ${page.length}\r\n` +
      "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(head));
    await conn.write(page);
  } catch (error) {
    console.error(`${error}`); // a client that left or sent nothing; go on
  } finally {
    conn.close();
  }
}
