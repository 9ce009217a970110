/**
 * Compares the forgotten-await rule (lint/forgotten_await.ts) with
 * typescript-eslint's `no-floating-promises` (default options, full types)
 * on folders of TypeScript, as docs/lint.md reports:
 *
 * ```sh
 * npm i --prefix /tmp/tseslint typescript-eslint eslint typescript
 * deno run --allow-read --allow-write=/tmp --allow-env --allow-run=node,deno \
 *   lint/compare_floating.ts --eslint=/tmp/tseslint FOLDER…
 * ```
 *
 * Each folder is one TypeScript program (its `.ts` files, Deno's types
 * beside them); imports that do not resolve are typed `any`, for both. A
 * report of the rule is right when it falls inside a statement that
 * typescript-eslint reports; a statement typescript-eslint reports and the
 * rule does not is a miss, sorted by what the statement calls. Comments
 * that turn either linter off are ignored, so both judge the same code.
 * `--list` prints each disagreement.
 */

const RULE = "async-server/forgotten-await";

/** A report, or a statement: a file and a span of lines and columns. */
interface Span {
  file: string;
  start: [number, number];
  end: [number, number];
}

const options = Deno.args.filter((arg) => arg.startsWith("--"));
const folders = Deno.args.filter((arg) => !arg.startsWith("--"));
const listing = options.includes("--list");
const eslintOption = options.find((option) => option.startsWith("--eslint="));
const unknown = options.find((option) =>
  option !== "--list" && option !== eslintOption
);
if (eslintOption === undefined || folders.length === 0 || unknown) {
  console.error(
    (unknown ? `Unknown option ${unknown}; usage: ` : "Usage: ") +
      "compare_floating.ts --eslint=DIR [--list] FOLDER… (DIR holds " +
      "node_modules with typescript-eslint, eslint and typescript)",
  );
  Deno.exit(2);
}
const eslintDir = await Deno.realPath(eslintOption.slice("--eslint=".length))
  .catch(() => undefined);
const eslint = `${eslintDir}/node_modules/eslint/bin/eslint.js`;
for (const path of [eslint, ...folders]) {
  if (!await Deno.stat(path).then(() => true, () => false)) {
    console.error(`Not found: ${path}`);
    Deno.exit(2);
  }
}

const rulePath = new URL("forgotten_await.ts", import.meta.url).pathname;
const scratch = await Deno.makeTempDir({ prefix: "compare_floating_" });
const total = { files: 0, eslint: 0, rule: 0, right: 0, wrong: 0, missed: 0 };
const missedBy = new Map<string, number>();
try {
  const denoTypes = `${scratch}/deno.d.ts`;
  await Deno.writeTextFile(denoTypes, await run("deno", ["types"], "."));
  for (const folder of await Promise.all(folders.map(Deno.realPath))) {
    const files = (await typescriptIn(folder)).sort();
    const statements = await typescriptEslint(folder, files, denoTypes);
    const reports = await forgottenAwait(folder, files);
    const found = statements.filter((statement) =>
      reports.some((report) => inside(report, statement))
    );
    const wrong = reports.filter((report) =>
      !statements.some((statement) => inside(report, statement))
    );
    const missed = statements.filter((statement) => !found.includes(statement));
    console.log(
      `${folder}: ${files.length} files; typescript-eslint ` +
        `${statements.length} statements, the rule ${reports.length} ` +
        `reports: ${reports.length - wrong.length} right, ${wrong.length} ` +
        `wrong; ${missed.length} statements missed`,
    );
    for (
      const [label, list] of [["wrong", wrong], ["missed", missed]] as const
    ) {
      for (const span of list) {
        const text = await textOf(span);
        if (label === "missed") {
          const kind = await shapeOf(span.file, text);
          missedBy.set(kind, (missedBy.get(kind) ?? 0) + 1);
          if (listing) {
            console.log(`  missed (${kind}) ${where(span)} ${text}`);
          }
        } else if (listing) console.log(`  wrong ${where(span)} ${text}`);
      }
    }
    total.files += files.length;
    total.eslint += statements.length;
    total.rule += reports.length;
    total.right += reports.length - wrong.length;
    total.wrong += wrong.length;
    total.missed += missed.length;
  }
  console.log(
    `Total: ${total.files} files; typescript-eslint ${total.eslint} ` +
      `statements; the rule ${total.rule} reports, ${total.right} right, ` +
      `${total.wrong} wrong; ${total.eslint - total.missed} statements ` +
      `found, ${total.missed} missed`,
  );
  for (const [kind, count] of [...missedBy].sort((a, b) => b[1] - a[1])) {
    console.log(`  missed: ${count} ${kind}`);
  }
} catch (error) {
  // A program that failed says why in one paragraph; its stack adds nothing.
  console.error(error instanceof Error ? error.message : error);
  Deno.exitCode = 1;
} finally {
  await Deno.remove(scratch, { recursive: true });
}

/** The `.ts` files under `folder`, but for declarations and node_modules. */
async function typescriptIn(folder: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(folder)) {
    const path = `${folder}/${entry.name}`;
    if (entry.isDirectory && entry.name !== "node_modules") {
      files.push(...await typescriptIn(path));
    } else if (
      entry.isFile && entry.name.endsWith(".ts") &&
      !entry.name.endsWith(".d.ts")
    ) {
      files.push(path);
    }
  }
  return files;
}

/** The statements typescript-eslint reports in `files`. */
async function typescriptEslint(
  folder: string,
  files: string[],
  denoTypes: string,
): Promise<Span[]> {
  const tsconfig = `${scratch}/tsconfig.json`;
  await Deno.writeTextFile(
    tsconfig,
    JSON.stringify({
      compilerOptions: {
        target: "esnext",
        module: "esnext",
        moduleResolution: "bundler",
        moduleDetection: "force",
        lib: ["esnext"],
        allowImportingTsExtensions: true,
        noEmit: true,
        strict: true,
        skipLibCheck: true,
        types: [],
      },
      files: [denoTypes, ...files],
    }),
  );
  const config = `${scratch}/eslint.config.mjs`;
  const plugin = `${eslintDir}/node_modules/typescript-eslint/dist/index.js`;
  await Deno.writeTextFile(
    config,
    `import tseslint from ${JSON.stringify(plugin)};
export default [{
  files: ["**/*.ts"],
  languageOptions: {
    parser: tseslint.parser,
    parserOptions: { project: ${JSON.stringify(tsconfig)} },
  },
  plugins: { "@typescript-eslint": tseslint.plugin },
  rules: { "@typescript-eslint/no-floating-promises": "error" },
  linterOptions: { noInlineConfig: true, reportUnusedDisableDirectives: "off" },
}];
`,
  );
  const output = await run(
    "node",
    [
      "--max-old-space-size=8192",
      eslint,
      "--config",
      config,
      "--format",
      "json",
      "--no-warn-ignored",
      ...files,
    ],
    folder,
    [0, 1],
  );
  const results: {
    filePath: string;
    messages: {
      ruleId: string | null;
      fatal?: boolean;
      message: string;
      line: number;
      column: number;
      endLine: number;
      endColumn: number;
    }[];
  }[] = JSON.parse(output);
  return results.flatMap(({ filePath, messages }) =>
    messages.flatMap((message) => {
      if (message.fatal) {
        console.error(
          `  eslint could not read ${filePath}: ${message.message}`,
        );
      }
      return message.ruleId === "@typescript-eslint/no-floating-promises"
        ? [{
          file: filePath,
          start: [message.line, message.column - 1] as [number, number],
          end: [message.endLine, message.endColumn - 1] as [number, number],
        }]
        : [];
    })
  );
}

/** The reports of the rule in `files`, alone: Deno's own rules off. */
async function forgottenAwait(
  folder: string,
  files: string[],
): Promise<Span[]> {
  const config = `${scratch}/deno.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({ lint: { plugins: [rulePath], rules: { tags: [] } } }),
  );
  const output = await run(
    "deno",
    ["lint", "--json", "--config", config, ...files],
    folder,
    [0, 1],
  );
  const { diagnostics } = JSON.parse(output) as {
    diagnostics: {
      filename: string;
      code: string;
      range: {
        start: { line: number; col: number };
        end: { line: number; col: number };
      };
    }[];
  };
  return diagnostics.filter(({ code }) => code === RULE).map((
    { filename, range },
  ) => ({
    file: new URL(filename).pathname,
    start: [range.start.line, range.start.col],
    end: [range.end.line, range.end.col],
  }));
}

/** Runs a program in `cwd`; its output, or an error with what it said. */
async function run(
  program: string,
  programArgs: string[],
  cwd: string,
  codes = [0],
): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(program, {
    args: programArgs,
    cwd,
    env: { NO_COLOR: "1" },
  }).output();
  if (!codes.includes(code)) {
    throw new Error(
      `${program} exited with ${code}: ${new TextDecoder().decode(stderr)}`,
    );
  }
  return new TextDecoder().decode(stdout);
}

function inside(report: Span, statement: Span): boolean {
  const before = (a: [number, number], b: [number, number]) =>
    a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]);
  return report.file === statement.file &&
    before(statement.start, report.start) &&
    before(report.start, statement.end);
}

function where({ file, start }: Span): string {
  return `${file}:${start[0]}:${start[1] + 1}`;
}

/** The first line of a span's text, shortened. */
async function textOf({ file, start }: Span): Promise<string> {
  const line = (await Deno.readTextFile(file)).split("\n")[start[0] - 1];
  return line.slice(start[1]).trim().slice(0, 100);
}

/**
 * What a statement the rule missed calls, judged from its text: a method,
 * an async function where it is written, a name the file imports, a name
 * it binds (to what the rule cannot judge, or it would have reported it),
 * another name, or no call.
 */
async function shapeOf(file: string, text: string): Promise<string> {
  const statement = text.replace(/^(\(|!|\s)+/, "");
  if (/^(this|super)\b|^[\w$]+(\?\.|\.|\[)/.test(statement)) {
    return "a method's promise (`a.b(…)`, `this.b(…)`)";
  }
  if (/^(async\b|function\b)/.test(statement)) {
    return "an async function called where it is written";
  }
  let name = /^([\w$]+)\s*(<[^()]*>)?\s*\(/.exec(statement)?.[1];
  if (name === undefined) {
    return "another expression (a variable, an array, `new`)";
  }
  const source = await Deno.readTextFile(file);
  name = name.replaceAll("$", "\\$");
  const imported = new RegExp(
    `^import\\b[^;]*\\b${name}\\b[^;]*from`,
    "ms",
  );
  if (imported.test(source)) return "a call of an imported function";
  const declared = new RegExp(
    `\\b(function\\s*\\*?\\s*${name}\\b|(const|let|var)\\s+${name}\\b)`,
  );
  return declared.test(source)
    ? "a call of a name the file binds, to a promise from elsewhere"
    : "a call of another name (a parameter, a destructured value, a global)";
}
