/**
 * Copies of the project's files in a scratch folder, for a test that runs
 * a program as a reader would copy it, or changed: with a shorter wait than
 * the one the README shows, say, where the wait is not what it tests.
 *
 * @module
 */

import { assert } from "@std/assert";
import { folder } from "../tools/server_process.ts";

/** A folder of copies, removed when disposed. */
export interface ScratchCopy extends AsyncDisposable {
  /** The folder that holds the copies. */
  readonly folder: string;
  /** The `file:` URL of the copy of `file`, to run it. */
  url(file: string): string;
}

/**
 * Copies `files` of the project into a new folder in `.chromium/`, the one
 * scratch folder the test task may write to, each changed by its function
 * in `edits`, which must change it: a copy that silently stayed as it was
 * would test the original under another name.
 *
 * @example
 * ```ts ignore
 * await using copy = await scratchCopy(["main.ts", "hello.html", "404.html"]);
 * await startServerProcess([], { script: copy.url("main.ts") });
 * ```
 *
 * @param files File names in the project folder.
 * @param edits By file name, what to make of its text.
 * @returns The folder of copies.
 */
export async function scratchCopy(
  files: readonly string[],
  edits: Readonly<Record<string, (text: string) => string>> = {},
): Promise<ScratchCopy> {
  for (const file in edits) {
    assert(files.includes(file), `${file} is edited but not copied`);
  }
  await Deno.mkdir(`${folder}/.chromium`, { recursive: true });
  const copy = await Deno.makeTempDir({ dir: `${folder}/.chromium` });
  const remove = () => Deno.remove(copy, { recursive: true });
  try {
    for (const file of files) {
      const edit = edits[file];
      if (!edit) {
        await Deno.copyFile(`${folder}/${file}`, `${copy}/${file}`);
        continue;
      }
      const text = await Deno.readTextFile(`${folder}/${file}`);
      const edited = edit(text);
      assert(edited !== text, `The edit of ${file} changed nothing`);
      await Deno.writeTextFile(`${copy}/${file}`, edited);
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return {
    folder: copy,
    url: (file) => new URL(`file://${copy}/${file}`).href,
    [Symbol.asyncDispose]: remove,
  };
}
