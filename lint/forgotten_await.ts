/**
 * A lint rule for `deno lint`: the Rust compiler's warning about a forgotten
 * `.await`, for promises. Rust warns "futures do nothing unless you `.await`
 * or poll them"; a promise does the opposite, it runs on its own, so a call
 * whose promise nobody awaits is either a forgotten `await` or a task meant
 * to run detached. This rule asks you to say which: `await` to wait for it,
 * `void` to mark it as meant.
 *
 * It reports `async-server/forgotten-await` at a call whose value is thrown
 * away (a statement on its own, or a branch of `?:`, `&&`, `||`, `??` or `,`
 * that is) when the callee is an async function declared in the same file:
 * `async function f`, or `const f = async (...) =>` or `async function`.
 * Awaited, returned, stored, passed on, yielded, chained with `.then`,
 * `.catch` or `.finally`, or marked with `void`, the call is left alone. It
 * offers no automatic fix: whether to wait is yours to choose.
 *
 * Turn it on in deno.json:
 *
 * ```json
 * { "lint": { "plugins": ["jsr:@learn/async-server/lint"] } }
 * ```
 *
 * Without types it cannot see the rest: calls of imported functions, of
 * methods, of functions that return a promise without being async, and of a
 * name the file also binds to something else (a parameter, say), as it
 * cannot tell which one a call means. typescript-eslint's
 * `no-floating-promises` sees them all, from the types.
 *
 * @module
 */

/** Names a file binds: to an async function, and to anything else. */
interface Bindings {
  async: Set<string>;
  other: Set<string>;
}

/**
 * Reports `async-server/forgotten-await`: a call of an async function of the
 * same file whose promise is thrown away, unawaited and unmarked.
 *
 * @example A forgotten await, reported; an awaited call and a void one, not
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import plugin from "@learn/async-server/lint";
 *
 * const source = "async function save() {}\n" +
 *   "save();\n" + // forgotten
 *   "await save();\n" +
 *   "void save();\n";
 * const reports = Deno.lint.runPlugin(plugin, "example.ts", source);
 * assertEquals(reports.map((report) => report.id), [
 *   "async-server/forgotten-await",
 * ]);
 * assertEquals(source.slice(...reports[0].range), "save()");
 * ```
 */
const plugin: Deno.lint.Plugin = {
  name: "async-server",
  rules: {
    "forgotten-await": {
      create(context) {
        const bindings: Bindings = { async: new Set(), other: new Set() };
        const thrownAway: Deno.lint.CallExpression[] = [];
        const bindParams = (node: { params: Deno.lint.Parameter[] }) => {
          for (const name of node.params.flatMap(namesIn)) {
            bindings.other.add(name);
          }
        };
        return {
          FunctionDeclaration(node) {
            if (node.id) bind(bindings, node.id.name, node);
            bindParams(node);
          },
          FunctionExpression(node) {
            if (node.id) bind(bindings, node.id.name, node);
            bindParams(node);
          },
          ArrowFunctionExpression: bindParams,
          VariableDeclarator(node) {
            if (node.id.type === "Identifier") {
              bind(bindings, node.id.name, node.init);
            } else {
              for (const name of namesIn(node.id)) bindings.other.add(name);
            }
          },
          CatchClause(node) {
            for (const name of namesIn(node.param)) bindings.other.add(name);
          },
          ClassDeclaration(node) {
            if (node.id) bindings.other.add(node.id.name);
          },
          ImportDeclaration(node) {
            for (const { local } of node.specifiers) {
              bindings.other.add(local.name);
            }
          },
          CallExpression(node) {
            if (node.callee.type === "Identifier" && isThrownAway(node)) {
              thrownAway.push(node);
            }
          },
          // A function may be declared below its first call: judge at the end.
          "Program:exit"() {
            for (const call of thrownAway) {
              const name = (call.callee as Deno.lint.Identifier).name;
              if (!bindings.async.has(name) || bindings.other.has(name)) {
                continue;
              }
              context.report({
                node: call,
                message: `${name}()'s promise runs on its own: ` +
                  "nobody awaits it or catches its errors",
                hint: `Write \`await ${name}(…)\` to wait for it, ` +
                  `or \`void ${name}(…)\` if it is meant`,
              });
            }
          },
        };
      },
    },
  },
};
export default plugin;

/**
 * Records that `name` is bound to `value`: an async function (an async
 * generator returns no promise, and does nothing until iterated), or else.
 */
function bind(bindings: Bindings, name: string, value: Deno.lint.Node | null) {
  const isAsync = (value?.type === "FunctionDeclaration" ||
    value?.type === "FunctionExpression" ||
    value?.type === "ArrowFunctionExpression") &&
    value.async && !value.generator;
  (isAsync ? bindings.async : bindings.other).add(name);
}

/** The names a parameter or a destructuring pattern binds. */
function namesIn(
  pattern: Deno.lint.Node | Deno.lint.Parameter | null,
): string[] {
  switch (pattern?.type) {
    case "Identifier":
      return [pattern.name];
    case "AssignmentPattern":
      return namesIn(pattern.left);
    case "RestElement":
      return namesIn(pattern.argument);
    case "TSParameterProperty":
      return namesIn(pattern.parameter);
    case "ArrayPattern":
      return pattern.elements.flatMap(namesIn);
    case "ObjectPattern":
      return pattern.properties.flatMap((property) =>
        namesIn(property.type === "Property" ? property.value : property)
      );
    default:
      return [];
  }
}

/**
 * Whether the value of `node` is thrown away: it is a statement on its own,
 * or a branch of `?:`, `&&`, `||`, `??` or `,` whose value is thrown away,
 * or an element of `,` before the last.
 */
function isThrownAway(node: Deno.lint.Node): boolean {
  const parent = (node as { parent?: Deno.lint.Node }).parent;
  switch (parent?.type) {
    case "ExpressionStatement":
      return true;
    case "SequenceExpression":
      return parent.expressions.at(-1) !== node || isThrownAway(parent);
    case "ConditionalExpression":
      return parent.test !== node && isThrownAway(parent);
    case "LogicalExpression":
    case "ChainExpression":
      return isThrownAway(parent);
    default:
      return false;
  }
}
