/**
 * What a probe makes of its figures, without a network or a browser:
 * probe_verdict.js is pure functions of plain data, shared by probe.ts and
 * the lab, so these tests give it the steps of probes made here and check
 * the order rule that decides whether the fast request waited, and the
 * verdict's fields.
 */

import { assertEquals, assertMatch, assertThrows } from "@std/assert";
import {
  type ProbeRequest,
  type ProbeRun,
  type ProbeStep,
  verdictOf,
  waited,
} from "./verdict.js";

/** A fast request sent at `sentMs`, answered at `answeredMs`. */
function fast(sentMs: number, answeredMs: number | null): ProbeRequest {
  return { path: "/", kind: "fast", openedMs: sentMs, sentMs, answeredMs };
}

/** A step: `load` in flight, the fast one, when the first load ended. */
function step(
  load: number,
  fastOne: ProbeRequest,
  loadEndedMs: number | null = null,
): ProbeStep {
  return { load, fast: fastOne, loadEndedMs };
}

/** A probe of a server whose /sleep takes 1 s, with these steps. */
function run(steps: ProbeStep[], more: Partial<ProbeRun> = {}): ProbeRun {
  return {
    method: "slow",
    slowPath: "/sleep",
    fastPath: "/",
    slowMs: 1000,
    fastMs: 2,
    max: 4,
    steps,
    idle: null,
    unseen: [],
    ...more,
  };
}

Deno.test("waited() decides by order: the fast answer against the first load let go of", async (t) => {
  const cases: [string, ProbeStep, boolean][] = [
    ["answered, nothing let go of", step(1, fast(10, 12)), false],
    ["answered before a slow one ended", step(1, fast(10, 12), 900), false],
    ["answered after a slow one ended", step(1, fast(10, 1002), 1000), true],
    ["answered as a slow one ended", step(1, fast(10, 1000), 1000), true],
    ["no answer when the probe gave up", step(1, fast(10, null), 2010), true],
  ];
  for (const [name, given, expected] of cases) {
    await t.step(name, () => assertEquals(waited(given), expected));
  }
});

Deno.test("verdictOf() says serial, pool or concurrent from the last step", async (t) => {
  const room = (load: number) => step(load, fast(10 * load, 10 * load + 2));
  const full = (load: number) => step(load, fast(10 * load, 1001), 1000);
  const cases: [string, ProbeStep[], object][] = [
    ["full with one: serial", [full(1)], {
      verdict: "serial",
      atOnce: 1,
      atLeast: false,
    }],
    ["full with three: a pool of 3", [room(1), room(2), full(3)], {
      verdict: "pool",
      atOnce: 3,
      atLeast: false,
    }],
    ["never full: concurrent, at least all it tried", [1, 2, 3, 4].map(room), {
      verdict: "concurrent",
      atOnce: 4,
      atLeast: true,
    }],
  ];
  for (const [name, steps, expected] of cases) {
    await t.step(name, () => {
      const { verdict, atOnce, atLeast, method, slowMs } = verdictOf(
        run(steps),
      );
      assertEquals({ verdict, atOnce, atLeast }, expected);
      assertEquals([method, slowMs], ["slow", 1000]);
    });
  }
});

Deno.test("verdictOf() gives idleHolds from the idle check, and null without one", () => {
  const steps = [step(1, fast(10, 12))];
  const holds = step(1, fast(1100, 3102), 3100);
  const free = step(1, fast(1100, 1102));
  assertEquals(verdictOf(run(steps, { idle: holds })).idleHolds, true);
  assertEquals(verdictOf(run(steps, { idle: free })).idleHolds, false);
  assertEquals(verdictOf(run(steps)).idleHolds, null);
});

Deno.test("verdictOf() of an idle probe counts connections that sent nothing", () => {
  const steps = [step(1, fast(10, 11)), step(2, fast(20, 2030), 2020)];
  const found = verdictOf(
    run(steps, { method: "idle", slowMs: null, idle: steps[0] }),
  );
  assertEquals(
    [found.verdict, found.atOnce, found.method, found.slowMs, found.idleHolds],
    ["pool", 2, "idle", null, false],
  );
  // The sentence gives the evidence: the count and the wait.
  assertMatch(found.sentence, /\b2\b.*2\.0 s/);
});

Deno.test("verdictOf() notes a probe that stopped before its max, and rejects one without a step", () => {
  const found = verdictOf(run([step(1, fast(10, 12))], { max: 16 }));
  assertEquals([found.verdict, found.atLeast, found.unseen.length], [
    "concurrent",
    true,
    1,
  ]);
  assertThrows(() => verdictOf(run([])), RangeError);
});
