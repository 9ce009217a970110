/**
 * The benchmark's peer written in C: nginx, where it is installed
 * (`apt-get install nginx`), started for the benchmark and stopped after it;
 * and, for the probe's tests, in front of another server.
 *
 * @module
 */

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What {@linkcode startNginx} serves, and where it keeps its files. */
export interface NginxOptions {
  /** The folder its configuration goes in, under a temporary folder; `.bench`. */
  folder?: string;
  /** More of its `http` block, such as a `limit_conn_zone`. */
  http?: string;
  /** Its `location` blocks; hello.html for `/` unless given. */
  locations?: string;
}

/**
 * nginx serving hello.html for `/` (or `locations`) with one worker process,
 * like the one thread of the Deno servers, from a configuration of its own
 * in a temporary folder under `folder`.
 */
export async function startNginx({
  folder = ".bench",
  http = "",
  locations = "location = / { try_files /hello.html =404; }",
}: NginxOptions = {}): Promise<{ port: number } & AsyncDisposable> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = probe.addr;
  probe.close();
  await Deno.mkdir(folder, { recursive: true });
  const prefix = await Deno.realPath(await Deno.makeTempDir({ dir: folder }));
  const root = await Deno.realPath(new URL("../", import.meta.url));
  // Started as root, nginx runs its worker as an unprivileged user, which
  // may not be allowed into this folder: run it as whoever runs the bench.
  const { stdout } = await new Deno.Command("sh", { args: ["-c", "id -un"] })
    .output();
  const user = new TextDecoder().decode(stdout).trim();
  await Deno.writeTextFile(
    `${prefix}/nginx.conf`,
    `daemon off;
user ${user};
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  types { }
  default_type "text/html; charset=utf-8";
  ${http}
  server {
    listen 127.0.0.1:${port};
    root ${root};
    ${locations}
  }
}
`,
  );
  const child = new Deno.Command("nginx", {
    args: ["-p", prefix, "-c", `${prefix}/nginx.conf`],
    stdout: "null",
  }).spawn();
  for (let tries = 0;; tries++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (error) {
      if (tries === 50) {
        child.kill("SIGTERM");
        await child.status;
        throw new Error(`nginx did not listen on port ${port}: ${error}`);
      }
      await delay(100);
    }
  }
  return {
    port,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(prefix, { recursive: true });
    },
  };
}
