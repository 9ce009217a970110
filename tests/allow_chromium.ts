/**
 * Prints `--allow-run=` and `--allow-read=` with the absolute path of the
 * `chromium` that PATH finds, and nothing where there is none: the test task
 * passes them on to `deno test`. Allowing `chromium` by name instead makes
 * Deno print "Failed to resolve 'chromium' for allow-run" before every test
 * module on a machine without it, while an absolute path is never resolved.
 * Puppeteer reads the file too: it checks that it exists before running it.
 *
 * Run it with `--allow-env=PATH --allow-read`: PATH may name any folder.
 *
 * @module
 */

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
  const chromium = await findOnPath("chromium", Deno.env.get("PATH") ?? "");
  if (chromium !== undefined) {
    console.log(`--allow-run=${chromium} --allow-read=${chromium}`);
  }
}
