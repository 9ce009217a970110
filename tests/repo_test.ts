/**
 * The repository around the server: what git ignores, and the tasks in
 * deno.json.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import { findOnPath } from "./allow_programs.ts";

const config = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
);

Deno.test("findOnPath() takes the first executable file of that name, as a shell does", async () => {
  // .chromium/ is the one scratch folder the test task may write to.
  await Deno.mkdir(".chromium", { recursive: true });
  const root = await Deno.makeTempDir({ dir: ".chromium" });
  try {
    const [empty, plain, runnable] = ["empty", "plain", "runnable"].map(
      (name) => `${root}/${name}`,
    );
    for (const folder of [empty, plain, runnable]) await Deno.mkdir(folder);
    await Deno.writeTextFile(`${plain}/chromium`, "", { mode: 0o644 });
    await Deno.writeTextFile(`${runnable}/chromium`, "#!/bin/sh\n", {
      mode: 0o755,
    });
    assertEquals(
      await findOnPath("chromium", `${root}/missing:${empty}:${plain}`),
      undefined,
    );
    assertEquals(
      await findOnPath("chromium", `${empty}::${plain}:${runnable}`),
      `${runnable}/chromium`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the test task allows chromium and the probe's servers only by the paths that allow_programs.ts prints", async () => {
  const task: string = config.tasks.test.command;
  // By name only what is always there: never a name Deno may fail to resolve.
  assertEquals(task.match(/--allow-run=\S+/g), ["--allow-run=deno,sh,script"]);
  const finder = /\$\((deno run [^)]*allow_programs\.ts)\)/.exec(task);
  assert(finder !== null, task);
  // Run as the task runs it, so that a permission it lacks shows here.
  const { success, stdout } = await new Deno.Command("deno", {
    args: finder[1].split(" ").slice(1),
    stderr: "inherit",
  }).output();
  assert(success);
  const printed = new TextDecoder().decode(stdout);
  const flags = /^(?:--allow-run=(\S+)(?: --allow-read=(\S+))?\n)?$/.exec(
    printed,
  );
  assert(flags !== null, printed);
  const [, run = "", read] = flags;
  for (const path of run.split(",").filter(Boolean)) {
    assertMatch(path, /^\/\S*\/(chromium|python3|php|nginx|node)$/);
  }
  if (read !== undefined) {
    assertMatch(read, /\/chromium$/);
    assert(run.split(",").includes(read), printed);
  }
});

Deno.test(".gitignore ignores deno.lock and every scratch folder that deno.json excludes", async () => {
  const ignored =
    (await Deno.readTextFile(new URL("../.gitignore", import.meta.url)))
      .split("\n").filter((line) => line !== "" && !line.startsWith("#"));
  // A lock made through a local JSR mirror would break every real user.
  assert(ignored.includes("deno.lock"), ignored.join(" "));
  // What the browser tests and the benchmark write there stays out of git.
  assert(config.exclude.length > 0);
  for (const folder of config.exclude) {
    assert(ignored.includes(folder), `${folder} is not ignored`);
  }
});

Deno.test("deno.json gives every task a description, and every file a task runs exists", async (t) => {
  for (
    const [name, { description, command }] of Object.entries<
      { description?: string; command: string }
    >(config.tasks)
  ) {
    await t.step(name, async () => {
      assert(description?.trim(), `The task ${name} has no description`);
      for (const [file] of command.matchAll(/[\w./-]+\.ts\b/g)) {
        const where = new URL(`../${file}`, import.meta.url);
        const found = await Deno.stat(where).then(() => true, () => false);
        assert(found, `The task ${name} runs ${file}, which is not there`);
      }
    });
  }
});

Deno.test("every task that runs main.ts allows reading `.`, which holds main.ts, as parallel mode needs", () => {
  const runsMain = Object.values(
    config.tasks as Record<string, { command: string }>,
  )
    .map(({ command }) => command)
    .filter((command) => / main\.ts /.test(command));
  assertEquals(runsMain.length, 3, runsMain.join("\n"));
  for (const command of runsMain) {
    assertStringIncludes(command, "--allow-read=. ");
  }
});

/** The modules and pages at the top and in each folder of code. */
async function repositoryFiles(): Promise<string[]> {
  const files = [];
  for (const folder of ["", "lab/", "probe/", "lint/", "tools/", "tests/"]) {
    for await (const { name, isFile } of Deno.readDir(new URL(folder, root))) {
      if (isFile && /\.(ts|js|html)$/.test(name)) files.push(folder + name);
    }
  }
  return files;
}
const root = new URL("../", import.meta.url);

/**
 * The repository's files that `path` imports: static and dynamic imports of
 * a module, and the scripts of a page (whose paths are main.ts's URLs,
 * which are its files' paths).
 */
async function localImports(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(path, root));
  const specifiers = [
    ...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g),
  ].map(([, specifier]) => new URL(specifier, new URL(path, root)));
  const scripts = [...text.matchAll(/<script[^>]* src="(\/[^"]+)"/g)]
    .map(([, src]) => new URL(src.slice(1), root));
  return [...specifiers, ...scripts].map((url) =>
    url.href.slice(root.href.length)
  );
}

Deno.test("imports go one way: main.ts imports nothing local, the lab only the lab and the probe's verdict, no tool a test helper, no test helper a tool", async (t) => {
  const files = await repositoryFiles();
  const imports = new Map(
    await Promise.all(
      files.map(async (f) => [f, await localImports(f)] as const),
    ),
  );
  const isTest = (path: string) => path.endsWith("_test.ts");
  const under = (folder: string) => (path: string) => path.startsWith(folder);
  // A module of tools/ that another tool imports is a library the tools
  // are made of (raw clients, server processes), which tests may use too.
  const libraries = new Set(
    files.filter(under("tools/")).flatMap((f) => imports.get(f)!),
  );
  const tools = files.filter((f) => under("tools/")(f) && !libraries.has(f));
  const helpers = files.filter((f) => under("tests/")(f) && !isTest(f));
  assert(tools.includes("tools/demo.ts") && libraries.has("tools/clients.ts"));
  assert(helpers.includes("tests/testing.ts"));
  const offending = (from: string[], allowed: (to: string) => boolean) =>
    from.flatMap((f) =>
      imports.get(f)!.filter((to) => !allowed(to)).map((to) => `${f} -> ${to}`)
    );
  for (
    const [rule, from, allowed] of [
      ["main.ts imports nothing local", ["main.ts"], () => false],
      [
        "the lab imports only the lab and the probe's verdict module",
        files.filter((f) => under("lab/")(f) && !isTest(f)),
        (to: string) => under("lab/")(to) || to === "probe/verdict.js",
      ],
      [
        "no tool imports a test helper",
        files.filter(under("tools/")),
        (to: string) => !under("tests/")(to),
      ],
      [
        "no test helper imports a tool",
        helpers,
        (to: string) => !tools.includes(to),
      ],
    ] as const
  ) {
    await t.step(rule, () => {
      assert(from.length > 0);
      assertEquals(offending([...from], allowed), []);
    });
  }
});

Deno.test("deno.json exports the three products under their keys, each from its folder", async () => {
  assertEquals(config.exports, {
    ".": "./main.ts",
    "./probe": "./probe/probe.ts",
    "./lint": "./lint/forgotten_await.ts",
  });
  for (const file of Object.values(config.exports) as string[]) {
    assert((await Deno.stat(new URL(file, root))).isFile, file);
  }
});
