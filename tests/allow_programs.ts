/**
 * Prints `--allow-run=` with the absolute paths of the `chromium` that PATH
 * finds and of the servers nobody here wrote that the probe's tests run
 * (`python3`, `php`, `nginx`, `node`), and `--allow-read=` with chromium's,
 * leaving out what is not there: the test task passes them on to `deno
 * test`, and the tests that need a program missing here are ignored.
 * Allowing them by name instead makes Deno print "Failed to resolve
 * 'chromium' for allow-run" before every test module on a machine without
 * it, while an absolute path is never resolved. Puppeteer reads chromium's
 * file too: it checks that it exists before running it.
 *
 * Run it with `--allow-env=PATH --allow-read`: PATH may name any folder.
 *
 * @module
 */

/** The programs the tests run when they are there, besides Deno and sh. */
const PROGRAMS = ["chromium", "python3", "php", "nginx", "node"];

/**
 * Finds a program as a shell does: the first executable file called `name`
 * in the folders of `path`.
 *
 * @param name The program's file name.
 * @param path Folders separated by `:`, as in PATH.
 * @returns The program's path, or `undefined` when no folder has it.
 */
export async function findOnPath(
  name: string,
  path: string,
): Promise<string | undefined> {
  for (const folder of path.split(":")) {
    if (folder === "") continue;
    const candidate = `${folder}/${name}`;
    try {
      const { isFile, mode } = await Deno.stat(candidate);
      if (isFile && ((mode ?? 0) & 0o111) !== 0) return candidate;
    } catch (error) {
      // A folder that is missing or unreadable is skipped, as a shell
      // skips it; a missing --allow-read is a mistake to show.
      if (error instanceof Deno.errors.NotCapable) throw error;
    }
  }
}

if (import.meta.main) {
  const path = Deno.env.get("PATH") ?? "";
  const found = await Promise.all(
    PROGRAMS.map((name) => findOnPath(name, path)),
  );
  const run = found.filter((program) => program !== undefined);
  const chromium = found[PROGRAMS.indexOf("chromium")];
  const flags = [
    ...(run.length ? [`--allow-run=${run.join(",")}`] : []),
    ...(chromium ? [`--allow-read=${chromium}`] : []),
  ];
  if (flags.length) console.log(flags.join(" "));
}
