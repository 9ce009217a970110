/**
 * A lint rule for `deno lint`: the Rust compiler's warning about a forgotten
 * `.await`, for promises. Rust warns "futures do nothing unless you `.await`
 * or poll them"; a promise does the opposite, it runs on its own, so a call
 * whose promise nobody awaits is either a forgotten `await` or a task meant
 * to run detached. This rule asks you to say which: `await` to wait for it,
 * `void` to mark it as meant.
 *
 * It reports `async-server/forgotten-await` at a statement that throws a
 * promise away (on its own, through `!`, `as`, `satisfies`, `?:`, `&&`,
 * `||`, `??`, `,`, or as an element of an array) when it can tell, without
 * types, that the value is a promise:
 *
 * - a call of a function of the same file that is async, declares
 *   `Promise<…>` as its return type or, declaring none, returns a promise
 *   (`new Promise(…)`, `Promise.resolve(…)`, another such call); also
 *   through `.call` and `.apply`, and an async function called where it is
 *   written;
 * - `this.name(…)` in a method of a class whose method `name` is such;
 * - a call of a variable or parameter declared `(…) => Promise<…>`;
 * - `new Promise(…)`, `Promise.reject(…)` and their kin, and a variable
 *   declared `Promise<…>` or holding any of these.
 *
 * A chain keeps the promise floating unless it ends in `.catch(f)` or
 * `.then(f, g)`: `.then(f)`, `.catch()` and `.finally(f)` pass a rejection
 * on, and Deno ends the process on a rejection nobody handles. A name means
 * the binding it refers to where it is written, as the language's scopes
 * say; a declared type, where there is one, says what a binding holds.
 * Awaited, returned, stored, passed on or marked with `void`, a promise is
 * left alone. The rule offers no automatic fix: whether to wait is yours.
 *
 * It judges as typescript-eslint's `no-floating-promises` does with its
 * default options, but without the types, so it cannot see: methods of
 * other objects (`store.save()`, `this.#queue.run()`), methods a class
 * inherits, functions in class fields and object literals; imported and
 * global functions (`fetch(…)`); parameters with no declared type; values it
 * gets from elsewhere (a wrapper's result, `.bind(…)`, a table's entry, a
 * destructured value, a later assignment); a type named otherwise than
 * `Promise` (an alias, a subclass); arrays of promises that a method returns
 * (`list.map(async …)`); a name escaped where it is declared. The measures
 * are in docs/lint.md.
 *
 * The file imports nothing, so a copy of it works as well as this
 * repository's: turn it on in deno.json with its path,
 *
 * ```json
 * { "lint": { "plugins": ["./forgotten_await.ts"] } }
 * ```
 *
 * and, once this package is published on JSR (it is not yet), with
 * `"jsr:@learn/async-server/lint"` instead.
 *
 * @module
 */

type Node = Deno.lint.Node;

/** A function, whose call may return a promise. */
type Callable =
  | Deno.lint.FunctionDeclaration
  | Deno.lint.FunctionExpression
  | Deno.lint.ArrowFunctionExpression
  | Deno.lint.TSDeclareFunction
  | Deno.lint.TSEmptyBodyFunctionExpression;

/** A promise a statement throws away: where, and why nobody handles it. */
interface Floating {
  node: Node;
  why: string;
  inArray: boolean;
}

/** The methods of a promise that return another. */
const CHAINING = new Set(["then", "catch", "finally"]);

/** The static methods of `Promise` that return a promise. */
const PROMISE_STATICS = new Set([
  "all",
  "allSettled",
  "any",
  "race",
  "reject",
  "resolve",
  "try",
]);

const NOBODY = "nobody awaits it or catches its errors";

/**
 * Reports `async-server/forgotten-await`: a statement that throws away a
 * promise the file itself makes, unawaited, unhandled and unmarked.
 *
 * @example A forgotten await and a chain with no rejection handler, reported; an awaited, a handled and a void one, not
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import plugin from "@learn/async-server/lint";
 *
 * const source = "async function save() {}\n" +
 *   "save();\n" + // forgotten
 *   "save().then(() => console.log('saved'));\n" + // a rejection ends Deno
 *   "await save();\n" +
 *   "save().catch(console.error);\n" +
 *   "void save();\n";
 * const reports = Deno.lint.runPlugin(plugin, "example.ts", source);
 * assertEquals(
 *   reports.map((report) => source.slice(...report.range)),
 *   ["save()", "save().then(() => console.log('saved'))"],
 * );
 * ```
 */
const plugin: Deno.lint.Plugin = {
  name: "async-server",
  rules: {
    "forgotten-await": {
      create(context) {
        const promises = new Promises(context.sourceCode);
        return {
          ExpressionStatement(statement) {
            for (
              const { node, why, inArray } of floatingIn(
                statement.expression,
                promises,
              )
            ) {
              context.report({
                node,
                message: `${subjectOf(rootOf(node))} runs on its own: ${why}`,
                hint: hintFor(node, inArray),
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
 * What the rule knows about one file without types: which names refer to
 * which bindings, and which expressions are promises. The scopes are read
 * when first asked about, and kept.
 */
class Promises {
  #source: Deno.lint.SourceCode;
  #scopes = new Map<Node, Map<string, Node[]>>();
  #functions = new Map<Node, boolean>();
  #variables = new Map<Node, boolean>();
  #declared: DeclaredNames | undefined;

  constructor(source: Deno.lint.SourceCode) {
    this.#source = source;
  }

  /** Whether `expression` is surely a promise. */
  isPromise(expression: Node): boolean {
    const node = unwrap(expression);
    switch (node.type) {
      case "NewExpression":
        return this.isGlobal(node.callee, "Promise");
      case "CallExpression":
        return this.#callReturnsPromise(node);
      case "Identifier": {
        const bindings = this.#promiseCapable(node);
        return bindings !== undefined &&
          bindings.every((binding) => this.#holdsPromise(binding));
      }
      case "ConditionalExpression":
        return this.isPromise(node.consequent) ||
          this.isPromise(node.alternate);
      case "LogicalExpression":
        return this.isPromise(node.left) || this.isPromise(node.right);
      default:
        return false;
    }
  }

  /** Whether `node` is the global `name`: no binding of the file shadows it. */
  isGlobal(node: Node, name: string): boolean {
    const value = unwrap(node);
    return value.type === "Identifier" && value.name === name &&
      this.#resolve(value) === undefined;
  }

  #callReturnsPromise(call: Deno.lint.CallExpression): boolean {
    const callee = unwrap(call.callee);
    if (callee.type !== "MemberExpression") {
      return this.#calleeReturnsPromise(callee);
    }
    if (unwrap(callee.object).type === "ThisExpression") {
      return this.#ownMethodReturnsPromise(callee);
    }
    const method = propertyName(callee);
    if (method === undefined) return false;
    if (CHAINING.has(method)) return this.isPromise(callee.object);
    if (method === "call" || method === "apply") {
      return this.#calleeReturnsPromise(unwrap(callee.object));
    }
    return PROMISE_STATICS.has(method) &&
      this.isGlobal(callee.object, "Promise");
  }

  #calleeReturnsPromise(callee: Node): boolean {
    if (isCallable(callee)) return this.#returnsPromise(callee);
    if (callee.type !== "Identifier") return false;
    const bindings = this.#promiseCapable(callee);
    if (bindings === undefined) return false;
    // Overloads are what callers see; the implementation's signature is not.
    const signatures = bindings.filter(({ type }) =>
      type === "TSDeclareFunction"
    );
    return (signatures.length > 0 ? signatures : bindings).every((binding) => {
      if (isCallable(binding)) return this.#returnsPromise(binding);
      const declared = declaredType(binding);
      if (declared?.type === "TSFunctionType") {
        return declaresPromise(declared.returnType?.typeAnnotation);
      }
      const value = binding.type === "VariableDeclarator" &&
        binding.id.type === "Identifier" && binding.init !== null &&
        unwrap(binding.init);
      return value !== false && isCallable(value) &&
        this.#returnsPromise(value);
    });
  }

  /**
   * Whether `this.name(…)` returns a promise: in a method of a class (or in
   * an arrow function in one, which keeps its `this`), `name` is a method
   * of that class, static as the caller is, that returns one. An override
   * must return what it overrides, so a subclass changes nothing.
   */
  #ownMethodReturnsPromise(callee: Deno.lint.MemberExpression): boolean {
    // `this` is that of the nearest function around that is no arrow.
    let fn: Node | undefined = parentOf(callee);
    while (
      fn !== undefined &&
      !(isCallable(fn) && fn.type !== "ArrowFunctionExpression")
    ) {
      if (fn.type === "PropertyDefinition" || fn.type === "StaticBlock") {
        return false;
      }
      fn = parentOf(fn);
    }
    const caller = fn && parentOf(fn);
    const body = caller && parentOf(caller);
    if (caller?.type !== "MethodDefinition" || body?.type !== "ClassBody") {
      return false;
    }
    const { property } = callee;
    const methods = body.body.filter((member) =>
      member.type === "MethodDefinition" && member.kind === "method" &&
      member.static === caller.static && !member.computed &&
      member.key.type === property.type &&
      (member.key as { name?: string }).name ===
        (property as { name?: string }).name
    ) as Deno.lint.MethodDefinition[];
    // Overloads are what callers see; the implementation's signature is not.
    const signatures = methods.filter(({ value }) =>
      value.type === "TSEmptyBodyFunctionExpression"
    );
    return !callee.computed && methods.length > 0 &&
      (signatures.length > 0 ? signatures : methods).every(({ value }) =>
        this.#returnsPromise(value)
      );
  }

  /**
   * Whether calling `fn` returns a promise: it is async (an async generator
   * returns an iterator), declares `Promise<…>`, or, declaring no return
   * type, returns a promise.
   */
  #returnsPromise(fn: Callable): boolean {
    if (fn.generator) return false;
    if (fn.async) return true;
    // A declared return type is what callers get: `(): any` is no promise.
    if (fn.returnType) return declaresPromise(fn.returnType.typeAnnotation);
    const known = this.#functions.get(fn);
    if (known !== undefined) return known;
    this.#functions.set(fn, false); // a function that returns its own call
    const { body } = fn;
    const returns = body === undefined || body === null
      ? false
      : body.type !== "BlockStatement"
      ? this.isPromise(body)
      : statementsIn(body.body).some((statement) =>
        statement.type === "ReturnStatement" && statement.argument !== null &&
        this.isPromise(statement.argument)
      );
    this.#functions.set(fn, returns);
    return returns;
  }

  /**
   * Whether a binding holds a promise: its declared type says so or, with
   * none declared, its initial value is one.
   */
  #holdsPromise(binding: Node): boolean {
    const declared = declaredType(binding);
    if (declared !== undefined) return declaresPromise(declared);
    if (
      binding.type !== "VariableDeclarator" ||
      binding.id.type !== "Identifier" || binding.init === null
    ) {
      return false;
    }
    const known = this.#variables.get(binding);
    if (known !== undefined) return known;
    this.#variables.set(binding, false); // `const a = b, b = a`
    const holds = this.isPromise(binding.init);
    this.#variables.set(binding, holds);
    return holds;
  }

  /**
   * The declarations `identifier` refers to, if the file declares its name
   * anywhere in a way that can hold a promise or a function returning one;
   * none otherwise, as for a global.
   */
  #promiseCapable(identifier: Deno.lint.Identifier): Node[] | undefined {
    // Reading scopes is most of the rule's time, and most calls are of
    // imports and globals: the file's text rules them out first (the cost
    // is in docs/lint.md, "What it costs").
    this.#declared ??= new DeclaredNames(this.#source.text);
    return this.#declared.mayHoldPromise(identifier.name)
      ? this.#resolve(identifier)
      : undefined;
  }

  /**
   * The declarations `identifier` refers to: those of its name in the
   * nearest scope around it that binds the name; none for a global.
   */
  #resolve(identifier: Deno.lint.Identifier): Node[] | undefined {
    for (
      let node: Node | undefined = parentOf(identifier);
      node !== undefined;
      node = parentOf(node)
    ) {
      const bindings = this.#bindingsOf(node).get(identifier.name);
      if (bindings !== undefined) return bindings;
    }
    return undefined;
  }

  /** The names `scope` binds, each to its declarations; none if no scope. */
  #bindingsOf(scope: Node): Map<string, Node[]> {
    const known = this.#scopes.get(scope);
    if (known !== undefined) return known;
    const bindings = new Map<string, Node[]>();
    const bind = (name: string, declaration: Node) => {
      bindings.set(name, [...bindings.get(name) ?? [], declaration]);
    };
    switch (scope.type) {
      case "Program":
      case "TSModuleBlock":
      case "StaticBlock":
      case "BlockStatement": {
        // Deno's StaticBlock holds a BlockStatement, its type says statements.
        const statements = Array.isArray(scope.body) ? scope.body : [];
        for (const statement of statements) declare(statement, bind);
        const parent = parentOf(scope);
        // `var` belongs to the function, wherever in it it is written.
        if (
          scope.type !== "BlockStatement" || parent === undefined ||
          isCallable(parent) || parent.type === "StaticBlock"
        ) {
          for (const statement of statementsIn(statements)) {
            if (statement.type === "VariableDeclaration") {
              if (statement.kind === "var") declareVariables(statement, bind);
            }
          }
        }
        break;
      }
      case "SwitchStatement":
        for (const { consequent } of scope.cases) {
          for (const statement of consequent) declare(statement, bind);
        }
        break;
      case "ForStatement":
        if (scope.init?.type === "VariableDeclaration") {
          declareVariables(scope.init, bind);
        }
        break;
      case "ForInStatement":
      case "ForOfStatement":
        if (scope.left.type === "VariableDeclaration") {
          declareVariables(scope.left, bind);
        }
        break;
      case "CatchClause":
        for (const name of namesIn(scope.param)) bind(name, scope);
        break;
      case "FunctionDeclaration":
      case "FunctionExpression":
      case "ArrowFunctionExpression":
      case "TSDeclareFunction":
        // A function expression's own name is seen inside it only.
        if (scope.type === "FunctionExpression" && scope.id) {
          bind(scope.id.name, scope);
        }
        // A parameter's value is the caller's: the rule does not know it.
        for (const param of scope.params) {
          for (const name of namesIn(param)) bind(name, param as Node);
        }
        break;
      case "ClassExpression":
        if (scope.id) bind(scope.id.name, scope);
        break;
    }
    this.#scopes.set(scope, bindings);
    return bindings;
  }
}

/**
 * The names of the file's text that may be declared so that they can hold
 * a promise or a function returning one. Every such declaration writes the
 * name after `function` (a function) or before `=`, `:`, `?:` or `!:` (a
 * variable, a typed parameter); imports, classes and plain parameters
 * cannot hold one. Read from the text, comments and all, not the tree: a
 * name escaped in the text (`s\u0061ve`) is not seen.
 */
class DeclaredNames {
  #text: string;
  #afterFunction: Set<string>;
  #known = new Map<string, boolean>();

  constructor(text: string) {
    this.#text = text;
    this.#afterFunction = namesAfterFunction(text);
  }

  /** Whether `name` may be declared so. */
  mayHoldPromise(name: string): boolean {
    let may = this.#known.get(name);
    if (may === undefined) {
      may = this.#afterFunction.has(name) || this.#beforeValueOrType(name);
      this.#known.set(name, may);
    }
    return may;
  }

  #beforeValueOrType(name: string): boolean {
    const text = this.#text;
    for (
      let at = text.indexOf(name);
      at !== -1;
      at = text.indexOf(name, at + 1)
    ) {
      const end = at + name.length;
      if (isNamePart(text[at - 1]) || isNamePart(text[end])) continue;
      let next = skipBlank(text, end);
      if (text[next] === "?" || text[next] === "!") {
        next = skipBlank(text, next + 1);
      }
      if (text[next] === ":" || text[next] === "=") return true;
    }
    return false;
  }
}

/** The names written after `function` (and `*`) in `text`. */
function namesAfterFunction(text: string): Set<string> {
  const names = new Set<string>();
  for (
    let at = text.indexOf("function");
    at !== -1;
    at = text.indexOf("function", at + 1)
  ) {
    let start = skipBlank(text, at + "function".length);
    if (text[start] === "*") start = skipBlank(text, start + 1);
    let end = start;
    while (isNamePart(text[end])) end++;
    if (end > start) names.add(text.slice(start, end));
  }
  return names;
}

/** Where code resumes after `at`: past spaces, line breaks and comments. */
function skipBlank(text: string, at: number): number {
  let next = at;
  for (;;) {
    if (/\s/.test(text[next] ?? "")) {
      next++;
    } else if (text.startsWith("/*", next)) {
      const close = text.indexOf("*/", next + 2);
      if (close === -1) return text.length;
      next = close + 2;
    } else if (text.startsWith("//", next)) {
      const lineEnd = text.indexOf("\n", next + 2);
      if (lineEnd === -1) return text.length;
      next = lineEnd + 1;
    } else {
      return next;
    }
  }
}

function isNamePart(char: string | undefined): boolean {
  return char !== undefined && /[\p{ID_Continue}$\u200c\u200d]/u.test(char);
}

/**
 * Binds what a statement of a block declares there: all but `var`, which
 * belongs to the function around.
 */
function declare(
  statement: Node,
  bind: (name: string, declaration: Node) => void,
) {
  const node = statement.type === "ExportNamedDeclaration" ||
      statement.type === "ExportDefaultDeclaration"
    ? statement.declaration
    : statement;
  switch (node?.type) {
    case "VariableDeclaration":
      if (node.kind !== "var") declareVariables(node, bind);
      break;
    case "FunctionDeclaration":
    case "TSDeclareFunction":
    case "ClassDeclaration":
    case "TSEnumDeclaration":
    case "TSImportEqualsDeclaration":
      if (node.id) bind(node.id.name, node);
      break;
    case "TSModuleDeclaration":
      if (node.id.type === "Identifier") bind(node.id.name, node);
      break;
    case "ImportDeclaration":
      for (const { local } of node.specifiers) bind(local.name, node);
      break;
  }
}

function declareVariables(
  declaration: Deno.lint.VariableDeclaration,
  bind: (name: string, declaration: Node) => void,
) {
  for (const declarator of declaration.declarations) {
    for (const name of namesIn(declarator.id)) bind(name, declarator);
  }
}

/**
 * The statements in `statements` and in those nested in them (blocks,
 * branches, loops, `try`, `switch`), but not in functions or classes: the
 * ones that run as part of the function they are written in.
 */
function statementsIn(statements: Node[]): Node[] {
  const found: Node[] = [];
  const visit = (node: Node | null | undefined) => {
    if (node === null || node === undefined) return;
    found.push(node);
    switch (node.type) {
      case "BlockStatement":
        node.body.forEach(visit);
        break;
      case "IfStatement":
        visit(node.consequent);
        visit(node.alternate);
        break;
      case "ForStatement":
        if (node.init?.type === "VariableDeclaration") visit(node.init);
        visit(node.body);
        break;
      case "ForInStatement":
      case "ForOfStatement":
        if (node.left.type === "VariableDeclaration") visit(node.left);
        visit(node.body);
        break;
      case "WhileStatement":
      case "DoWhileStatement":
      case "LabeledStatement":
      case "WithStatement":
        visit(node.body);
        break;
      case "TryStatement":
        visit(node.block);
        visit(node.handler?.body);
        visit(node.finalizer);
        break;
      case "SwitchStatement":
        for (const { consequent } of node.cases) consequent.forEach(visit);
        break;
      case "ExportNamedDeclaration":
        visit(node.declaration);
        break;
    }
  };
  statements.forEach(visit);
  return found;
}

/**
 * The promises that evaluating `expression` as a statement throws away:
 * itself, a branch of `?:`, `&&`, `||` or `??`, an element of `,` or of an
 * array.
 */
function floatingIn(expression: Node, promises: Promises): Floating[] {
  const node = unwrap(expression);
  switch (node.type) {
    case "SequenceExpression":
      return node.expressions.flatMap((item) => floatingIn(item, promises));
    case "ConditionalExpression":
      return [node.consequent, node.alternate].flatMap((branch) =>
        floatingIn(branch, promises)
      );
    case "LogicalExpression":
      return [node.left, node.right].flatMap((side) =>
        floatingIn(side, promises)
      );
    case "ArrayExpression":
      return node.elements.flatMap((element) => {
        if (element.type === "SpreadElement") return [];
        const value = unwrap(element);
        const why = unhandled(value, promises);
        return why === undefined ? [] : [{ node: value, why, inArray: true }];
      });
    default: {
      const why = unhandled(node, promises);
      return why === undefined ? [] : [{ node, why, inArray: false }];
    }
  }
}

/**
 * Why nobody handles the rejection of `node`, if it is a promise whose
 * rejection nobody handles: a chain must end in `.catch(f)` or
 * `.then(f, g)`.
 */
function unhandled(node: Node, promises: Promises): string | undefined {
  if (!promises.isPromise(node)) return undefined;
  const callee = node.type === "CallExpression" ? unwrap(node.callee) : node;
  if (node.type !== "CallExpression" || callee.type !== "MemberExpression") {
    return NOBODY;
  }
  const [first, second] = node.arguments;
  switch (propertyName(callee)) {
    case "then":
      if (
        first?.type === "SpreadElement" || second === undefined ||
        second.type === "SpreadElement"
      ) {
        return "nobody awaits it, and `.then(…)` without a rejection " +
          "handler catches none of its errors";
      }
      return mayBeFunction(second, promises) ? undefined : NOT_A_FUNCTION;
    case "catch":
      if (first === undefined || first.type === "SpreadElement") {
        return "nobody awaits it, and `.catch()` without a handler " +
          "catches none of its errors";
      }
      return mayBeFunction(first, promises) ? undefined : NOT_A_FUNCTION;
    case "finally":
      return unhandled(unwrap(callee.object), promises) === undefined
        ? undefined
        : "nobody awaits it, and `.finally(…)` passes its errors on";
    default:
      return NOBODY;
  }
}

const NOT_A_FUNCTION = "nobody awaits it, and a rejection handler that is " +
  "not a function catches none of its errors";

/**
 * Whether a rejection handler may be a function: only a value that cannot
 * be one (a literal, `undefined`, an object or array, an operator's result)
 * is surely not.
 */
function mayBeFunction(handler: Node, promises: Promises): boolean {
  const value = unwrap(handler);
  switch (value.type) {
    case "Literal":
    case "TemplateLiteral":
    case "ObjectExpression":
    case "ArrayExpression":
    case "UnaryExpression":
    case "BinaryExpression":
    case "UpdateExpression":
      return false;
    default:
      return !promises.isGlobal(value, "undefined");
  }
}

/** The promise a chain of `.then`, `.catch` and `.finally` starts from. */
function rootOf(node: Node): Node {
  let root = unwrap(node);
  while (root.type === "CallExpression") {
    const callee = unwrap(root.callee);
    const method = callee.type === "MemberExpression"
      ? propertyName(callee)
      : undefined;
    if (method === undefined || !CHAINING.has(method)) break;
    root = unwrap((callee as Deno.lint.MemberExpression).object);
  }
  return root;
}

/** How a message names the promise that starts at `root`. */
function subjectOf(root: Node): string {
  if (root.type === "Identifier") return `The promise in ${root.name}`;
  if (root.type === "NewExpression") return "This new Promise";
  if (root.type !== "CallExpression") return "This promise";
  const callee = unwrap(root.callee);
  if (isCallable(callee)) {
    return `This ${callee.async ? "async " : ""}function's promise`;
  }
  const name = calleeName(callee);
  return name === undefined ? "This promise" : `${name}()'s promise`;
}

/**
 * `f` for `f(…)`, `f.call(…)` and `f.apply(…)`, `Promise.all` and
 * `this.save` for themselves.
 */
function calleeName(callee: Node): string | undefined {
  if (callee.type === "Identifier") return callee.name;
  if (callee.type !== "MemberExpression") return undefined;
  const object = unwrap(callee.object);
  const { property } = callee;
  if (object.type === "ThisExpression") {
    return property.type === "PrivateIdentifier"
      ? `this.#${property.name}`
      : `this.${propertyName(callee)}`;
  }
  const method = propertyName(callee);
  if (object.type !== "Identifier" || method === undefined) return undefined;
  return method === "call" || method === "apply"
    ? object.name
    : `${object.name}.${method}`;
}

/** The two ways out of the warning, written for this statement. */
function hintFor(node: Node, inArray: boolean): string {
  if (inArray) {
    return "Write `await Promise.all([…])` to wait for them, " +
      "or `void` before the array if it is meant";
  }
  const name = node.type === "CallExpression"
    ? calleeName(unwrap(node.callee))
    : undefined;
  if (name !== undefined && rootOf(node) === node) {
    return `Write \`await ${name}(…)\` to wait for it, ` +
      `or \`void ${name}(…)\` if it is meant`;
  }
  return "Write `await` before it to wait for it, `.catch(…)` after it to " +
    "handle its errors, or `void` before it if it is meant";
}

/** Whether a declared return type is `Promise<…>`, alone or in a union. */
function declaresPromise(type: Node | undefined): boolean {
  if (type?.type === "TSUnionType") return type.types.some(declaresPromise);
  return type?.type === "TSTypeReference" &&
    type.typeName.type === "Identifier" && type.typeName.name === "Promise";
}

/** The expression inside what changes nothing at run time: `?.`, `!`, `as`, `satisfies`, `<T>`. */
function unwrap(node: Node): Node {
  // Each field read is a call into Deno's lazily read tree: `type` once.
  let inner = node;
  while (WRAPPERS.has(inner.type)) {
    inner = (inner as Deno.lint.TSAsExpression).expression;
  }
  return inner;
}

const WRAPPERS = new Set([
  "ChainExpression",
  "TSNonNullExpression",
  "TSAsExpression",
  "TSSatisfiesExpression",
  "TSTypeAssertion",
]);

function isCallable(node: Node): node is Callable {
  return CALLABLES.has(node.type);
}

const CALLABLES = new Set([
  "FunctionDeclaration",
  "FunctionExpression",
  "ArrowFunctionExpression",
  "TSDeclareFunction",
  "TSEmptyBodyFunctionExpression",
]);

/** The type a variable or a parameter declares for its name, if it does. */
function declaredType(binding: Node): Node | undefined {
  const { parameter } = binding as { parameter?: Node }; // TSParameterProperty
  const named = parameter ?? binding;
  const target = named.type === "VariableDeclarator"
    ? named.id
    : named.type === "AssignmentPattern"
    ? named.left
    : named;
  return target.type === "Identifier"
    ? target.typeAnnotation?.typeAnnotation
    : undefined;
}

/** `then` for `p.then` and `p["then"]`; none for a computed name. */
function propertyName(member: Deno.lint.MemberExpression): string | undefined {
  const { property } = member;
  if (!member.computed && property.type === "Identifier") return property.name;
  return property.type === "Literal" && typeof property.value === "string"
    ? property.value
    : undefined;
}

/** The node around `node`; none around the program. */
function parentOf(node: Node): Node | undefined {
  return (node as { parent?: Node | null }).parent ?? undefined;
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
