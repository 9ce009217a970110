/**
 * The repository around the server: the test task's permissions.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { findOnPath } from "./tools/allow_chromium.ts";

const config = JSON.parse(
  await Deno.readTextFile(new URL("deno.json", import.meta.url)),
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
  const task: string = config.tasks.test;
  assertEquals(task.match(/--allow-run=\S+/g), ["--allow-run=deno"]);
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
    /^(--allow-run=\S+\/chromium\n)?$/,
  );
});
