/**
 * The benchmark's peer written in C: nginx, where it is installed
 * (`apt-get install nginx`), started for the benchmark and stopped after it.
 *
 * @module
 */

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * nginx serving hello.html for `/` with one worker process, like the one
 * thread of the Deno servers, from a configuration of its own in `.bench/`.
 */
export async function startNginx(): Promise<
  { port: number } & AsyncDisposable
> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = probe.addr;
  probe.close();
  await Deno.mkdir(".bench", { recursive: true });
  const prefix = await Deno.realPath(await Deno.makeTempDir({ dir: ".bench" }));
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
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location = / { try_files /hello.html =404; }
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
