/**
 * Raw TCP clients for the tests, the stress script and the benchmark: they
 * send exactly the bytes they are given and read exactly what comes back,
 * which `fetch()` would hide.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Where a server listens. */
export type Address = { hostname: string; port: number };

/** Reads `conn` until the server closes it, and decodes what came. */
export async function readToEnd(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  for (
    let n = await conn.read(buffer);
    n !== null;
    n = await conn.read(buffer)
  ) {
    chunks.push(buffer.slice(0, n));
  }
  const whole = new Uint8Array(
    chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0),
  );
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return decoder.decode(whole);
}

/**
 * Reads one response from `conn`, up to the end of its body by its
 * `Content-Length`, without waiting for the server to close: a server that
 * keeps the connection open (`Deno.serve`), or resets it after answering,
 * still gives a whole response.
 */
export async function readResponse(conn: Deno.Conn): Promise<string> {
  let buffer = new Uint8Array(16 * 1024);
  let received = 0;
  while (true) {
    if (received === buffer.byteLength) {
      const larger = new Uint8Array(buffer.byteLength * 2);
      larger.set(buffer);
      buffer = larger;
    }
    const n = await conn.read(buffer.subarray(received));
    const text = decoder.decode(buffer.subarray(0, received + (n ?? 0)));
    if (n === null) throw new Error(`Closed after ${received} bytes: ${text}`);
    received += n;
    const headEnd = text.indexOf("\r\n\r\n");
    if (headEnd === -1) continue;
    const length = Number(/^content-length: *(\d+)/im.exec(text)?.[1] ?? 0);
    if (received >= headEnd + 4 + length) return text;
  }
}

/** Writes all of `data`, however few bytes each write takes. */
export async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = encoder.encode(text);
  for (let written = 0; written < bytes.byteLength;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/**
 * Connects and sends `request`. Resolves once the request is written, with
 * a promise of the whole response, so that callers control the order in
 * which requests reach the server.
 */
export async function send(
  addr: Address,
  request: string,
): Promise<{ response: Promise<string> }> {
  const conn = await Deno.connect(addr);
  await writeAll(conn, request);
  return { response: readToEnd(conn).finally(() => conn.close()) };
}

/** Malformed request heads of the kinds real networks deliver. */
export function garbageHeads(count: number, seed: number): Uint8Array[] {
  // A small seeded generator (mulberry32), so that a failure can be replayed.
  let state = seed;
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const below = (n: number) => Math.floor(random() * n);
  const randomBytes = (length: number) =>
    Uint8Array.from({ length }, () => below(256));
  const requestLine = "GET /sleep HTTP/1.1";
  const valid = `${requestLine}\r\nHost: localhost\r\n`;
  const kinds: (() => string | Uint8Array)[] = [
    () => randomBytes(1 + below(3000)),
    () =>
      requestLine.slice(0, below(requestLine.length)) + "\r\nHost: x\r\n\r\n",
    () => "GET /" + "a".repeat(8000 + below(20_000)) + " HTTP/1.1\r\n\r\n",
    () =>
      "GET / HTTP/1.1\r\nHost: localhost\r\nX: " + "b".repeat(9000) +
      "\r\n\r\n",
    () => {
      const at = below(valid.length - 2);
      return valid.slice(0, at) + "\0" + valid.slice(at) + "\r\n";
    },
    () => "GET / HTTP/1.1\nX-No-Host: here\n\n",
    () => "GET /\r\nHost: localhost\r\n\r\n",
    () => "GET / HTTP/1.1", // never ends: the client gives up and closes
    () => "\r\n".repeat(1 + below(10)),
    () => `${"X".repeat(1 + below(50))} / HTTP/1.1\r\nHost: localhost\r\n\r\n`,
    () => "G\x7fT / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    () => "GET / HTTP/1.1\r\nHost: localhost\r\n" + "\xff\x00\x01: x\r\n\r\n",
  ];
  return Array.from({ length: count }, () => {
    const head = kinds[below(kinds.length)]();
    return typeof head === "string" ? encoder.encode(head) : head;
  });
}

/**
 * Sends `bytes` as a client that then stops sending, and returns what the
 * server answered: "" when it closed (or reset) the connection instead.
 */
export async function sendGarbage(
  addr: Address,
  bytes: Uint8Array,
): Promise<string> {
  const conn = await Deno.connect(addr);
  try {
    for (let written = 0; written < bytes.byteLength;) {
      written += await conn.write(bytes.subarray(written));
    }
    await conn.closeWrite();
    return await readToEnd(conn);
  } catch (error) {
    // The server may close while the client is still sending (after 431).
    if (
      error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.BrokenPipe
    ) return "";
    throw error;
  } finally {
    conn.close();
  }
}

/**
 * Sends each of `heads` with {@linkcode sendGarbage}, on a connection of its
 * own, `parallel` at a time, and returns the answers in the same order.
 */
export async function floodGarbage(
  addr: Address,
  heads: Uint8Array[],
  parallel: number,
): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < heads.length; i += parallel) {
    const batch = heads.slice(i, i + parallel);
    answers.push(
      ...await Promise.all(batch.map((head) => sendGarbage(addr, head))),
    );
  }
  return answers;
}
