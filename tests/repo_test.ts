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
import { findOnPath } from "../tools/allow_chromium.ts";

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

Deno.test("the test task allows chromium only by the path that tools/allow_chromium.ts prints", async () => {
  const task: string = config.tasks.test.command;
  // By name only what is always there: never a name Deno may fail to resolve.
  assertEquals(task.match(/--allow-run=\S+/g), ["--allow-run=deno,sh,script"]);
  const finder = /\$\((deno run [^)]*tools\/allow_chromium\.ts)\)/.exec(task);
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

Deno.test(".gitignore ignores deno.lock, and its comments name no file the repository lacks", async () => {
  const lines =
    (await Deno.readTextFile(new URL("../.gitignore", import.meta.url)))
      .split("\n");
  const ignored = lines.filter((line) => line !== "" && !line.startsWith("#"));
  assert(ignored.includes("deno.lock"), ignored.join(" "));
  const named = lines.filter((line) => line.startsWith("#")).flatMap((line) =>
    line.match(/[\w.-]+\.(?:md|json|lock|ts|txt)\b/g) ?? []
  );
  for (const name of named) {
    if (ignored.includes(name)) continue;
    const found = await Deno.stat(new URL(`../${name}`, import.meta.url)).then(
      () => true,
      () => false,
    );
    assert(found, `.gitignore names ${name}, which is not in the repository`);
  }
});

Deno.test("deno.json gives every task a description, which deno task lists", async () => {
  const { success, stdout } = await new Deno.Command("deno", {
    args: ["task"],
    cwd: new URL("..", import.meta.url),
    env: { NO_COLOR: "1" },
  }).output();
  assert(success);
  const listing = new TextDecoder().decode(stdout);
  for (
    const [name, { description }] of Object.entries<{ description?: string }>(
      config.tasks,
    )
  ) {
    assert(description, `The task ${name} has no description`);
    assertStringIncludes(listing, `- ${name}\n    // ${description}\n`);
  }
});
