/**
 * The lint rule in lint/forgotten_await.ts: which calls it reports, which it
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

/**
 * Runs each case as a step: `source` must get exactly the reports whose
 * underlined text is in `reported`, in order.
 */
async function expectReports(
  t: Deno.TestContext,
  cases: Record<string, { source: string; reported: string[] }>,
) {
  for (const [name, { source, reported }] of Object.entries(cases)) {
    await t.step(name, () => {
      const reports = Deno.lint.runPlugin(plugin, "case.ts", source);
      assertEquals(
        reports.map((report) => source.slice(...report.range)),
        reported,
        source,
      );
      for (const { id } of reports) assertEquals(id, RULE);
    });
  }
}

const SAVE = "async function save(): Promise<void> {}\n";

Deno.test("forgotten-await reports a chain that leaves the rejection unhandled, and leaves alone one that handles it", async (t) => {
  const chain = (code: string, reported: string[]) => ({
    source: `${SAVE}${code}\n`,
    reported,
  });
  await expectReports(t, {
    ".then(f), no rejection handler": chain(
      "save().then(() => console.log('saved'));",
      ["save().then(() => console.log('saved'))"],
    ),
    ".catch(), no argument": chain("save().catch();", ["save().catch()"]),
    ".finally(f)": chain(
      "save().finally(() => console.log('done'));",
      ["save().finally(() => console.log('done'))"],
    ),
    "a chain of .then": chain(
      "save().then(() => 1).then((n) => console.log(n));",
      ["save().then(() => 1).then((n) => console.log(n))"],
    ),
    ".then(f, null), a rejection handler that is no function": chain(
      "save().then(() => {}, null);",
      ["save().then(() => {}, null)"],
    ),
    ".catch(undefined)": chain("save().catch(undefined);", [
      "save().catch(undefined)",
    ]),
    ".then(f, g), silent": chain(
      "save().then(() => {}, (error) => console.error(error));",
      [],
    ),
    ".catch(g), silent": chain(
      "save().catch((error) => console.error(error));",
      [],
    ),
    ".catch(console.error), a handler that may be a function, silent": chain(
      "save().catch(console.error);",
      [],
    ),
    ".catch(g).finally(f), silent": chain(
      "save().catch(console.error).finally(() => console.log('done'));",
      [],
    ),
  });
  await t.step("the message says why the chain catches nothing", () => {
    const source = `${SAVE}save().finally(() => {});\n`;
    const [{ message, hint }] = Deno.lint.runPlugin(plugin, "c.ts", source);
    assertStringIncludes(message, "save()'s promise runs on its own");
    assertStringIncludes(message, "`.finally(…)` passes its errors on");
    assertStringIncludes(hint ?? "", "`.catch(…)` after it");
  });
});

Deno.test("forgotten-await reports an async function called where it is written", async (t) => {
  await expectReports(t, {
    "an async arrow": {
      source: "(async () => {\n  await Promise.resolve();\n})();\n",
      reported: ["(async () => {\n  await Promise.resolve();\n})()"],
    },
    "an async function expression": {
      source: "(async function () {\n  await Promise.resolve();\n})();\n",
      reported: ["(async function () {\n  await Promise.resolve();\n})()"],
    },
    "a function that is not async, silent": {
      source: "(() => console.log('now'))();\n",
      reported: [],
    },
    "an async generator, silent": {
      source: "(async function* () {})();\n",
      reported: [],
    },
  });
});

Deno.test("forgotten-await sees through !, as, satisfies, parentheses, an array, .call and .apply", async (t) => {
  const wrapped = (code: string, reported: string[]) => ({
    source: `${SAVE}${code}\n`,
    reported,
  });
  await expectReports(t, {
    "save()!": wrapped("save()!;", ["save()"]),
    "save() as Promise<void>": wrapped("save() as Promise<void>;", ["save()"]),
    "save() satisfies Promise<void>": wrapped(
      "save() satisfies Promise<void>;",
      ["save()"],
    ),
    "parentheses": wrapped("((save()));", ["save()"]),
    "an array of calls as a statement": wrapped("[save(), save()!, 1];", [
      "save()",
      "save()",
    ]),
    "save.call(…)": wrapped("save.call(undefined);", ["save.call(undefined)"]),
    "save.apply(…)": wrapped("save.apply(undefined, []);", [
      "save.apply(undefined, [])",
    ]),
    "an async function assigned through as": {
      source:
        "const save = (async () => {}) as () => Promise<void>;\nsave();\n",
      reported: ["save()"],
    },
    "an async function assigned through satisfies": {
      source: "const save = (async () => {}) satisfies () => Promise<void>;\n" +
        "save();\n",
      reported: ["save()"],
    },
    "an array awaited through Promise.all, silent": wrapped(
      "await Promise.all([save(), save()]);",
      [],
    ),
  });
  await t.step("an array's hint says Promise.all", () => {
    const source = `${SAVE}[save()];\n`;
    const [{ hint }] = Deno.lint.runPlugin(plugin, "c.ts", source);
    assertStringIncludes(hint ?? "", "await Promise.all([…])");
  });
});

Deno.test("forgotten-await reports a local function that returns a promise without being async", async (t) => {
  await expectReports(t, {
    "sleep(), which returns new Promise": {
      source: "function sleep(ms: number) {\n" +
        "  return new Promise((resolve) => setTimeout(resolve, ms));\n}\n" +
        "sleep(3000);\n",
      reported: ["sleep(3000)"],
    },
    "an arrow whose body is new Promise": {
      source: "const sleep = (ms: number) =>\n" +
        "  new Promise<void>((resolve) => setTimeout(resolve, ms));\n" +
        "sleep(10);\n",
      reported: ["sleep(10)"],
    },
    "a declared return type of Promise<…>": {
      source: "function later(): Promise<number> {\n  return compute();\n}\n" +
        "declare function compute(): Promise<number>;\nlater();\n",
      reported: ["later()"],
    },
    "a return of another such call, in a branch": {
      source: `${SAVE}function maybe(dirty: boolean) {\n` +
        "  if (dirty) return save();\n  return undefined;\n}\nmaybe(true);\n",
      reported: ["maybe(true)"],
    },
    "a declared return type that is no promise, silent": {
      source: "function check(value: unknown): unknown {\n" +
        "  return value ? Promise.resolve(value) : value;\n}\ncheck(1);\n",
      reported: [],
    },
    "a function that returns no promise, silent": {
      source: "function log(line: string) {\n  console.log(line);\n}\n" +
        "log('x');\n",
      reported: [],
    },
    "a function that calls itself, silent": {
      source:
        "function loop(n: number): void {\n  if (n > 0) return loop(n - 1);\n}\n" +
        "loop(1);\n",
      reported: [],
    },
  });
});

Deno.test("forgotten-await judges a call by the binding its name refers to there", async (t) => {
  await expectReports(t, {
    "a global that shares the name of an inner async function, silent": {
      source: "function worker() {\n" +
        "  const postMessage = async (line: string) => console.log(line);\n" +
        "  return postMessage;\n}\nconsole.log(worker);\n" +
        'postMessage("done");\n',
      reported: [],
    },
    "the async function, though the name is also a parameter elsewhere": {
      source: `${SAVE}function run(save: () => void) {\n  save();\n}\n` +
        "run(() => {});\nsave();\n",
      reported: ["save()"],
    },
    "an inner binding that is no async function, silent": {
      source: `${SAVE}{\n  const save = () => 1;\n  save();\n}\n`,
      reported: [],
    },
    "an inner async function that shadows one that is not": {
      source: "function save() {}\nfunction flush() {\n" +
        "  const save = async () => {};\n  save();\n}\nsave();\nflush();\n",
      reported: ["save()"],
    },
    "var, hoisted out of its block to the function": {
      source: "function run() {\n  save();\n  if (Math.random()) {\n" +
        "    var save = async () => {};\n  }\n}\nrun();\n",
      reported: ["save()"],
    },
    "a function declared in a block, seen in that block only": {
      source: "{\n  async function save() {}\n  save();\n}\n" +
        "function save() {}\nsave();\n",
      reported: ["save()"],
    },
    "a catch clause's parameter: the call in the try block only": {
      source: `${SAVE}try {\n  save();\n} catch (save) {\n  save();\n}\n`,
      reported: ["save()"],
    },
    "a loop's variable, silent": {
      source: `${SAVE}for (const save of [() => {}]) save();\n`,
      reported: [],
    },
  });
});

// The rule reads a file's text to rule out names it never declares (most
// calls: imports and globals) before it reads any scope; these are the
// spellings of a declaration that reading must still find.
Deno.test("forgotten-await finds a declaration however it is spelled, and an import shadowed by one", async (t) => {
  await expectReports(t, {
    "a comment between the name and its =": {
      source: "const save /* later */ = async () => {};\nsave();\n",
      reported: ["save()"],
    },
    "a line comment and a line break before =": {
      source: "const save // later\n  = async () => {};\nsave();\n",
      reported: ["save()"],
    },
    "a line comment between function and the name": {
      source: "async function // a note\nsave() {}\nsave();\n",
      reported: ["save()"],
    },
    "a comment of 300 characters between the name and its =": {
      source: `const save /* ${
        "x".repeat(294)
      } */ = async () => {};\nsave();\n`,
      reported: ["save()"],
    },
    "a comment and a line break between function and the name": {
      source: "async function /* saves */\nsave() {}\nsave();\n",
      reported: ["save()"],
    },
    "a definite assignment, !:": {
      source: "let done!: Promise<void>;\ndone;\n",
      reported: ["done"],
    },
    "an optional parameter typed to return a promise, ?:": {
      source: "function run(save?: () => Promise<void>) {\n  save?.();\n}\n" +
        "run();\n",
      reported: ["save?.()"],
    },
    "an import shadowed by an inner async function": {
      source: 'import { save } from "./store.ts";\nfunction run() {\n' +
        "  async function save() {}\n  save();\n}\nrun();\nsave();\n",
      reported: ["save()"],
    },
    "a name escaped where it is declared, silent (docs/lint.md)": {
      source: "const s\\u0061ve = async () => {};\nsave();\n",
      reported: [],
    },
    "a name declared only inside a longer one, silent": {
      source: "const saveAll = async () => {};\nsaveAll;\nsave();\n",
      reported: [],
    },
  });
});

Deno.test("forgotten-await reports, as typescript-eslint does, promises it can tell without types", async (t) => {
  await expectReports(t, {
    "a variable holding new Promise": {
      source:
        "const promise = new Promise<string>((resolve) => resolve('ready'));\n" +
        "promise;\n",
      reported: ["promise"],
    },
    "Promise.reject(…).catch() with no handler": {
      source: "Promise.reject(new Error('no')).catch();\n",
      reported: ["Promise.reject(new Error('no')).catch()"],
    },
    "a variable or a parameter declared Promise<…> or () => Promise<…>": {
      source: "let pending: Promise<void> | undefined;\n" +
        "function run(save: () => Promise<void>, log: () => void) {\n" +
        "  save();\n  log();\n  pending?.then(() => {});\n}\n" +
        "run(async () => {}, () => {});\n",
      reported: ["save()", "pending?.then(() => {})"],
    },
    "a method of the class, called on this": {
      source: "class Store {\n  async save() {}\n" +
        "  #flush(): Promise<void> {\n    return Promise.resolve();\n  }\n" +
        "  run() {\n    this.save();\n    this.#flush();\n" +
        "    setTimeout(() => this.save(), 0);\n  }\n}\nnew Store().run();\n",
      reported: ["this.save()", "this.#flush()"],
    },
    "a method of the class, called on this inside a function: another this": {
      source: "class Store {\n  async save() {}\n  run() {\n" +
        "    [1].forEach(function (this: Store) {\n      this.save();\n" +
        "    });\n  }\n}\nnew Store().run();\n",
      reported: [],
    },
  });
  await t.step(
    "the message names what it reports: this.#flush(), an async function called where it is written",
    () => {
      const source = "class Store {\n  async #flush() {}\n" +
        "  run() {\n    this.#flush();\n  }\n}\n(async () => {})();\n";
      const reports = Deno.lint.runPlugin(plugin, "c.ts", source);
      assertEquals(reports.map(({ message }) => message.split(":")[0]), [
        "this.#flush()'s promise runs on its own",
        "This async function's promise runs on its own",
      ]);
      assertStringIncludes(reports[0].hint ?? "", "`await this.#flush(…)`");
      assertStringIncludes(reports[1].hint ?? "", "`void` before it");
    },
  );
});

Deno.test("forgotten-await leaves alone a promise that is awaited, returned, stored, passed on, handled or marked with void", async (t) => {
  const cases = {
    "awaited": "await save();",
    "returned": "function later() {\n  return save();\n}",
    "returned by an arrow's expression body": "const later = () => save();",
    "assigned to a variable": "const saving = save();",
    "stored in a property":
      "const job = { saving: save() };\njob.saving = save();",
    "stored in an array": "const jobs = [save()];\njobs[1] = save();",
    "marked with void": "void save();",
    "marked with void, a chain": "void save().then(() => {});",
    "passed as an argument": "console.log(save());",
    "inside Promise.all": "await Promise.all([save(), save()]);",
    "yielded": "function* jobs() {\n  yield save();\n}",
    "the last of , whose value is kept": "const saving = (0, save());",
    "the test of ?:, whose value decides": "const n = save() ? 1 : 2;",
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
    // Cannot see: an imported function's declaration is in another file.
    "an imported function": 'import { save } from "./save.ts";\nsave();\n',
    // Cannot see: which object a method belongs to needs types.
    "a method of another object":
      "const store = { async save() {} };\nstore.save();\n",
    // Cannot see: a parameter's value is the caller's.
    "a parameter with no declared type":
      "function run(save) {\n  save();\n}\nrun(async () => {});\n",
    // Cannot see: what a wrapper returns needs its types.
    "a wrapper's result": "const save = once(async () => {});\nsave();\n" +
      "function once<T>(f: T): T {\n  return f;\n}\n",
    // Cannot see: map's result is an array of promises, from its types.
    "an array of promises from map": "[1, 2].map(async (n) => n);\n",
  };
  for (const [name, source] of Object.entries(cases)) {
    await t.step(name, () => {
      assertEquals(Deno.lint.runPlugin(plugin, "case.ts", source), []);
    });
  }
});

/**
 * Runs `deno lint` with `plugins` on one file holding `source`, under a
 * deadline, and gives its exit code and output. .chromium/ is the one
 * scratch folder the test task may write to; the repository's deno.json
 * leaves it out of lint, so the file gets a deno.json of its own.
 */
async function denoLint(
  name: string,
  source: string,
  plugins: string[],
): Promise<{ code: number; output: string }> {
  await Deno.mkdir(".chromium", { recursive: true });
  const root = await Deno.makeTempDir({ dir: ".chromium" });
  try {
    await Deno.writeTextFile(`${root}/${name}`, source);
    await Deno.writeTextFile(
      `${root}/deno.json`,
      JSON.stringify({ lint: { plugins } }),
    );
    const { code, stdout, stderr } = await new Deno.Command("deno", {
      args: ["lint", "--config", `${root}/deno.json`, `${root}/${name}`],
      env: { NO_COLOR: "1" },
      signal: AbortSignal.timeout(60_000),
    }).output();
    const decoder = new TextDecoder();
    return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

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
  const { code, output } = await denoLint(
    "small_server.ts",
    original.replace(serial, "handle(conn);"),
    plugins,
  );
  assertEquals(code, 1, output);
  assertEquals(output.match(/^error\[.*?\]/gm), [`error[${RULE}]`], output);
  assertMatch(
    output,
    new RegExp(`--> .*/small_server\\.ts:${line}:\\d+$`, "m"),
  );
});

Deno.test("deno lint with the rule reads a banner of slashes after a called name in linear time", async () => {
  // A pattern that tried every way to split `////…` into comments took
  // minutes on 44 slashes; this has 400. denoLint()'s deadline turns a hang
  // into a failure.
  const { code, output } = await denoLint(
    "banner.ts",
    'import { save } from "./store.ts";\n' +
      `// save ${"/".repeat(400)}\nsave();\n`,
    [new URL("forgotten_await.ts", import.meta.url).href],
  );
  assertEquals(code, 0, output);
  assertStringIncludes(output, "Checked 1 file");
});
