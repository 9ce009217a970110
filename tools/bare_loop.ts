/**
 * The benchmark's floor: the least a server on raw `Deno.listen` can do per
 * connection. It accepts, reads once, writes hello.html with the headers
 * main.ts sends for `/` (a response built once, at start-up), and closes;
 * it parses nothing, times nothing and logs nothing. Whatever main.ts
 * spends beyond this, in CPU time or memory, is its own doing rather than
 * the cost of Deno's accept, read, write and close.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read=. tools/bare_loop.ts --port=0
 * ```
 *
 * It prints the same first line as main.ts, so that the same harness starts
 * it, and it answers every connection the same way, whatever it sent.
 *
 * @module
 */

const [, port] = /^--port=(\d+)$/.exec(Deno.args.join(" ")) ?? [];
if (port === undefined) {
  console.error("Usage: bare_loop.ts --port=N");
  Deno.exit(2);
}

const hello = await Deno.readFile(new URL("../hello.html", import.meta.url));
const head = new TextEncoder().encode(
  "HTTP/1.1 200 OK\r\n" +
    "Content-Type: text/html; charset=utf-8\r\n" +
    `Content-Length: ${hello.byteLength}\r\n` +
    "Connection: close\r\n\r\n",
);
const response = new Uint8Array(head.byteLength + hello.byteLength);
response.set(head);
response.set(hello, head.byteLength);

// main.ts's first read is this size too, so that memory figures compare
// like for like; a request that does not fit is answered all the same.
const READ_BYTES = 256;

async function answer(conn: Deno.Conn): Promise<void> {
  try {
    await conn.read(new Uint8Array(READ_BYTES));
    await conn.write(response);
  } catch {
    // A client that reset or went away: there is nothing left to do for it.
  } finally {
    conn.close();
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(port) });
console.log(
  `Listening on http://127.0.0.1:${listener.addr.port}/ (bare loop)`,
);
// void: each connection is answered on its own while the loop accepts the
// next, as main.ts's concurrent mode does; answer() never rejects.
for await (const conn of listener) void answer(conn);
