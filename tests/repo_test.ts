/**
 * The repository around the server: its license, what git ignores, and the
 * tasks in deno.json.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import { findOnPath } from "./allow_chromium.ts";

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

Deno.test("the test task allows chromium only by the path that allow_chromium.ts prints", async () => {
  const task: string = config.tasks.test.command;
  // By name only what is always there (python3: the probe tests run it):
  // never a name Deno may fail to resolve.
  assertEquals(task.match(/--allow-run=\S+/g), [
    "--allow-run=deno,sh,script,python3",
  ]);
  const finder = /\$\((deno run [^)]*allow_chromium\.ts)\)/.exec(task);
  assert(finder !== null, task);
  // Run as the task runs it, so that a permission it lacks shows here.
  const { success, stdout } = await new Deno.Command("deno", {
    args: finder[1].split(" ").slice(1),
    stderr: "inherit",
  }).output();
  assert(success);
  assertMatch(
    new TextDecoder().decode(stdout),
    /^(--allow-run=(\S+\/chromium) --allow-read=\2\n)?$/,
  );
});

Deno.test("LICENSE is the MIT license, with the project's copyright line", async () => {
  const text = await Deno.readTextFile(new URL("../LICENSE", import.meta.url));
  const paragraphs = text.trim().split("\n\n").map((paragraph) =>
    paragraph.replaceAll("\n", " ")
  );
  assertEquals(paragraphs.length, 5);
  assertEquals(paragraphs.slice(0, 2), [
    "MIT License",
    "Copyright 2026 the serial-concurrent server authors",
  ]);
  assertStringIncludes(
    paragraphs[2],
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software",
  );
  assertEquals(
    paragraphs[3],
    "The above copyright notice and this permission notice shall be included in all copies or substantial portions of the Software.",
  );
  assertStringIncludes(
    paragraphs[4],
    'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND',
  );
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

Deno.test("the permissions that docs/parallel.md and main.ts's #! line state agree with deno.json's tasks", () => {
  const read = (path: string) =>
    Deno.readTextFileSync(new URL(path, import.meta.url));
  // Every task that runs main.ts allows reading ".", which holds main.ts,
  // as parallel mode needs and docs/parallel.md says.
  const runsMain = Object.values(
    config.tasks as Record<string, { command: string }>,
  )
    .map(({ command }) => command)
    .filter((command) => / main\.ts /.test(command));
  assertEquals(runsMain.length, 3, runsMain.join("\n"));
  for (const command of runsMain) {
    assertStringIncludes(command, "--allow-read=. ");
  }
  assertStringIncludes(
    read("../docs/parallel.md").replace(/\s+/g, " "),
    "Every task allows reading `.`, the project's folder, which holds it",
  );
  // The #! line allows every read, and the line after it says why.
  const [shebang, ...why] = read("../main.ts").split("\n", 4);
  assertEquals(
    shebang,
    "#!/usr/bin/env -S deno run --allow-net=127.0.0.1 --allow-read",
  );
  assertMatch(
    why.join(" ").replaceAll("// ", ""),
    /allows every read, where deno\.json's tasks allow only `\.`/,
  );
});
