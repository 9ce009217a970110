/**
 * The lint rule in tools/forgotten_await.ts: which calls it reports, which it
 * leaves alone, what it cannot see, and `deno lint` run with it on the
 * README's exercise, small_server.ts with the serial branch's `await` deleted.
 */

import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import plugin from "./forgotten_await.ts";

const RULE = "async-server/forgotten-await";

/** The 1-based line of `source` where `offset` is. */
function lineAt(source: string, offset: number): number {
  return source.slice(0, offset).split("\n").length;
}

Deno.test("forgotten-await reports a call of an async function of the same file whose promise is thrown away", async (t) => {
  // `call` is what the report must underline, on line `line` of `source`.
  const cases = [{
    name: "a statement calling an async function declaration",
    source: "async function save() {}\n\nsave();\n",
    call: "save()",
    line: 3,
  }, {
    name: "a statement calling an async arrow bound to a name",
    source: "const save = async (n: number) => n;\nsave(1);\n",
    call: "save(1)",
    line: 2,
  }, {
    name: "a statement calling an async function expression bound to a name",
    source: "const save = async function () {};\nsave();\n",
    call: "save()",
    line: 2,
  }, {
    name: "a call above the declaration, in a loop, as in small_server.ts",
    source: "for (const conn of [1]) {\n  save(conn);\n}\n" +
      "export async function save(conn: number) {}\n",
    call: "save(conn)",
    line: 2,
  }, {
    name: "a call in another function's body",
    source: "async function save() {}\nfunction run() {\n  save();\n}\n",
    call: "save()",
    line: 3,
  }, {
    name: "an optional call",
    source: "async function save() {}\nsave?.();\n",
    call: "save?.()",
    line: 2,
  }, {
    name: "a branch of && whose value is thrown away",
    source: "async function save() {}\nconst dirty = true;\ndirty && save();\n",
    call: "save()",
    line: 3,
  }, {
    name: "a branch of ?: whose value is thrown away",
    source: "async function save() {}\nconst dirty = true;\n" +
      "dirty ? save() : undefined;\n",
    call: "save()",
    line: 3,
  }];
  for (const { name, source, call, line } of cases) {
    await t.step(name, () => {
      const reports = Deno.lint.runPlugin(plugin, "case.ts", source);
      assertEquals(reports.length, 1, JSON.stringify(reports));
      const [{ id, range, message, hint }] = reports;
      const lineStart = source.split("\n").slice(0, line - 1).join("\n")
        .length;
      const start = source.indexOf(call, lineStart);
      assertEquals({ id, range }, {
        id: RULE,
        range: [start, start + call.length],
      });
      // It names the function, and both ways out of the warning.
      assertStringIncludes(message, "save()");
      assertStringIncludes(hint ?? "", "await save(");
      assertStringIncludes(hint ?? "", "void save(");
    });
  }
});

Deno.test("forgotten-await leaves alone a promise that is awaited, returned, stored, passed on, chained or marked with void", async (t) => {
  const cases = {
    "awaited": "await save();",
    "returned": "function later() {\n  return save();\n}",
    "returned by an arrow's expression body": "const later = () => save();",
    "assigned to a variable": "const saving = save();",
    "stored in a property":
      "const job = { saving: save() };\njob.saving = save();",
    "stored in an array": "const jobs = [save()];\njobs[1] = save();",
    "marked with void": "void save();",
    "chained with .then": "save().then(() => console.log('saved'));",
    "chained with .catch": "save().catch(console.error);",
    "chained with .finally": "save().finally(() => console.log('done'));",
    "passed as an argument": "console.log(save());",
    "inside Promise.all": "await Promise.all([save(), save()]);",
    "yielded": "function* jobs() {\n  yield save();\n}",
    "the last of , whose value is kept": "const saving = (0, save());",
  };
  for (const [name, code] of Object.entries(cases)) {
    await t.step(name, () => {
      const source = `async function save() {}\n${code}\n`;
      assertEquals(Deno.lint.runPlugin(plugin, "case.ts", source), []);
    });
  }
});

Deno.test("forgotten-await leaves alone calls that return no promise, or that it cannot see without types", async (t) => {
  const cases = {
    // An async generator is lazy, as a Rust future is: a call runs nothing.
    "an async generator": "async function* lines() {}\nlines();\n",
    "a function that is not async": "function save() {}\nsave();\n",
    "a name also bound to a function that is not async, as a parameter":
      "async function save() {}\nfunction run(save: () => void) {\n  save();\n}\n",
    // Cannot see: an imported function's declaration is in another file.
    "an imported function": 'import { save } from "./save.ts";\nsave();\n',
    // Cannot see: which object a method belongs to needs types.
    "a method": "const store = { async save() {} };\nstore.save();\n",
    // Cannot see: only the declared type says this returns a promise.
    "a function that returns a promise without being async":
      "function save(): Promise<void> {\n  return Promise.resolve();\n}\n" +
      "save();\n",
  };
  for (const [name, source] of Object.entries(cases)) {
    await t.step(name, () => {
      assertEquals(Deno.lint.runPlugin(plugin, "case.ts", source), []);
    });
  }
});

Deno.test("deno lint, with the plugins deno.json turns on, fails at small_server.ts with the serial branch's await deleted, and names that line", async () => {
  const repo = new URL("../", import.meta.url);
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", repo)),
  );
  const plugins = (config.lint.plugins as string[]).map((plugin) =>
    new URL(plugin, repo).href
  );
  const original = await Deno.readTextFile(new URL("small_server.ts", repo));
  const serial = "await handle(conn);";
  const line = lineAt(original, original.indexOf(serial));
  const edited = original.replace(serial, "handle(conn);");
  // .chromium/ is the one scratch folder the test task may write to; the
  // repository's deno.json leaves it out of lint, so the copy gets its own,
  // with the same plugins.
  await Deno.mkdir(".chromium", { recursive: true });
  const root = await Deno.makeTempDir({ dir: ".chromium" });
  try {
    await Deno.writeTextFile(`${root}/small_server.ts`, edited);
    await Deno.writeTextFile(
      `${root}/deno.json`,
      JSON.stringify({ lint: { plugins } }),
    );
    const { code, stdout, stderr } = await new Deno.Command("deno", {
      args: [
        "lint",
        "--config",
        `${root}/deno.json`,
        `${root}/small_server.ts`,
      ],
      env: { NO_COLOR: "1" },
    }).output();
    const output = new TextDecoder().decode(stdout) +
      new TextDecoder().decode(stderr);
    assertEquals(code, 1, output);
    assertEquals(output.match(/^error\[.*?\]/gm), [`error[${RULE}]`], output);
    assertMatch(
      output,
      new RegExp(`--> .*/small_server\\.ts:${line}:\\d+$`, "m"),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
