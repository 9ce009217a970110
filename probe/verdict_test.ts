/**
 * What a probe makes of its figures, without a network or a browser:
 * verdict.js is pure functions of plain data, shared by probe.ts and
 * the lab, so these tests give it the figures of probes of real servers
 * (php -S, nginx, Node, a Python pool, a lock) and check the order rule
 * that decides whether the fast request waited or was refused, the
 * verdict's fields, and that its sentence and advice follow from the same
 * figures.
 */

import {
  assert,
  assertEquals,
  assertFalse,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import {
  duration,
  outcomeOf,
  type ProbeRequest,
  type ProbeRun,
  type ProbeStep,
  refused,
  verdictOf,
} from "./verdict.js";

/** A request sent at `sentMs`, its answer's first and last bytes at `from` and `to`. */
function answer(
  kind: ProbeRequest["kind"],
  sentMs: number | null,
  from: number | null | undefined,
  to: number | null | undefined = from,
  status: number | null = from == null ? null : 200,
): ProbeRequest {
  const path = kind === "slow" ? "/sleep" : "/";
  const openedMs = sentMs ?? 0;
  return {
    path,
    kind,
    openedMs,
    sentMs,
    answeredMs: from,
    endedMs: to,
    status,
  };
}
const slow = (sentMs: number, endMs: number | null | undefined) =>
  answer("slow", sentMs, endMs);
const fast = (sentMs: number, answeredMs: number | null | undefined) =>
  answer("fast", sentMs, answeredMs);
/**
 * A connection opened at `openedMs` that sent nothing: released at `sentMs`
 * (its request sent, and answered at once), or closed by the server at
 * `closedMs`, or still open.
 */
function idle(
  openedMs: number,
  sentMs: number | null,
  closedMs?: number,
): ProbeRequest {
  const request = { path: "/", kind: "idle" as const, openedMs, sentMs };
  if (sentMs !== null) {
    return { ...answer("idle", sentMs, sentMs + 0.5), openedMs };
  }
  if (closedMs === undefined) return request;
  return { ...request, answeredMs: null, endedMs: closedMs };
}

/** A probe of a server whose /sleep takes 1 s, with these steps. */
function run(steps: ProbeStep[], more: Partial<ProbeRun> = {}): ProbeRun {
  const requests = [fast(0, 2), slow(3, 1003)];
  for (const step of steps) {
    for (const load of step.loads) {
      if (!requests.includes(load)) requests.push(load);
    }
    requests.push(step.fast);
  }
  if (more.idle) requests.push(...more.idle.loads, more.idle.fast);
  return {
    method: "slow",
    slowPath: "/sleep",
    fastPath: "/",
    fastMs: 2,
    slowMs: 1000,
    slowStatus: 200,
    idleMs: 2000,
    max: 4,
    requests,
    steps,
    idle: null,
    unseen: [],
    ...more,
  };
}

/** Steps of a ramp: `room` steps with loads ending at 2010, then `last`. */
function ramp(room: number, last?: (loads: ProbeRequest[]) => ProbeStep) {
  const loads: ProbeRequest[] = [];
  const steps: ProbeStep[] = [];
  for (let i = 1; i <= room; i++) {
    loads.push(slow(1000 + 2 * i, 2010 + i));
    steps.push({ loads: [...loads], fast: fast(1001 + 2 * i, 1002 + 2 * i) });
  }
  if (last) steps.push(last(loads));
  return steps;
}

Deno.test("outcomeOf() decides by the fast answer's first byte against when the server let go of a load", async (t) => {
  const sleeping = slow(1010, 2010.4);
  const cases: [string, ProbeStep, string][] = [
    ["answered, nothing let go of", {
      loads: [slow(10, undefined)],
      fast: fast(11, 12),
    }, "room"],
    ["answered long before the slow one ended", {
      loads: [sleeping],
      fast: fast(1011, 1012),
    }, "room"],
    ["answered after the slow one's last byte", {
      loads: [sleeping],
      fast: fast(1011, 2010.6),
    }, "waited"],
    // php -S: the slow answer ends with its close, which Deno read after
    // the fast answer's data, though its last byte came 0.2 ms earlier.
    ["php -S: the slow answer's last byte 0.2 ms before the fast one's first", {
      loads: [slow(1010, 2010.4)],
      fast: fast(1011, 2010.6),
    }, "waited"],
    ["the two sockets read in the other order: 0.1 ms before", {
      loads: [sleeping],
      fast: fast(1011, 2010.3),
    }, "waited"],
    ["a streamed slow answer: its head at once, its last byte 1 s later", {
      loads: [answer("slow", 1010, 1010.5, 2010)],
      fast: fast(1011, 1011.4),
    }, "room"],
    ["no answer when the probe gave up", {
      loads: [slow(10, undefined)],
      fast: fast(11, undefined),
    }, "waited"],
    ["answered 503", {
      loads: [sleeping],
      fast: answer("fast", 1011, 1011.3, 1011.3, 503),
    }, "refused"],
    [
      "closed without an answer",
      { loads: [sleeping], fast: fast(1011, null) },
      "refused",
    ],
    ["an idle connection released after the answer", {
      loads: [idle(10, 14)],
      fast: fast(11, 13),
    }, "room"],
    ["an idle connection released, then the answer", {
      loads: [idle(10, 2011)],
      fast: fast(11, 2012),
    }, "waited"],
    ["an idle connection the server closed, then the answer", {
      loads: [idle(10, null, 310)],
      fast: fast(11, 310.2),
    }, "waited"],
  ];
  for (const [name, step, expected] of cases) {
    await t.step(name, () => assertEquals(outcomeOf(step), expected));
  }
});

Deno.test("refused() counts a status outside 2xx and 3xx, a reset or a close with no answer, not an idle close", () => {
  assertEquals(refused(answer("fast", 1, 2, 2, 503)), true);
  assertEquals(refused(answer("fast", 1, 2, 2, 429)), true);
  assertEquals(refused(answer("fast", 1, null)), true);
  assertEquals(refused(answer("fast", 1, 2, 2, 302)), false);
  assertEquals(refused(idle(1, null, 300)), false);
});

Deno.test("verdictOf() of php -S's figures says one at a time, and its sentence says / waited", () => {
  // The figures of the run that read "concurrent, atOnce 1" before: the
  // slow answer's close read after the fast answer.
  const step = { loads: [slow(1010.2, 2011.1)], fast: fast(1010.6, 2011.3) };
  const found = verdictOf(run([step]));
  assertEquals([found.verdict, found.atOnce, found.atLeast], [
    "serial",
    1,
    false,
  ]);
  assertMatch(
    found.sentence,
    /^One at a time: with 1 \/sleep in flight, \/ was answered only 1\.0 s after it was sent, 0\.2 ms after the \/sleep ended\.$/,
  );
});

Deno.test("verdictOf()'s sentence opens with its verdict and quotes its figures, whatever the figures", () => {
  // A small fixed generator: the same cases on every run.
  let seed = 34;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const heads = {
    serial: /^One at a time/,
    pool: /^A pool of \d+/,
    concurrent: /^All at once/,
    unknown: /^Unknown/,
  };
  for (let i = 0; i < 300; i++) {
    const count = 1 + Math.floor(random() * 5);
    const loads: ProbeRequest[] = [];
    const steps: ProbeStep[] = [];
    for (let n = 1; n <= count; n++) {
      const sent = 1000 + n;
      const end = random() < 0.8 ? 2000 + random() * 2000 : null;
      loads.push(slow(sent, end));
      const at = random() < 0.1 ? null : sent + random() * 2500;
      const status = random() < 0.1 ? 503 : 200;
      steps.push({
        loads: [...loads],
        fast: answer("fast", sent + 0.5, at, at, status),
      });
    }
    const found = verdictOf(run(steps));
    assertMatch(found.sentence, heads[found.verdict], found.sentence);
    if (found.verdict === "pool") {
      assertMatch(found.sentence, new RegExp(`^A pool of ${found.atOnce}[:,]`));
    }
    if (found.verdict === "concurrent") {
      const last = steps.at(-1)!.fast;
      const waitMs = Number(last.answeredMs) - Number(last.sentMs);
      assertStringIncludes(
        found.sentence,
        `answered ${duration(waitMs)} after`,
      );
    }
  }
});

Deno.test("verdictOf() counts refusals: a server that serves N at once and refuses the rest is a pool of N", async (t) => {
  await t.step("nginx limit_conn 2: / answered 503 with 2 in flight", () => {
    const found = verdictOf(run(ramp(1, (loads) => ({
      loads: [...loads, slow(1005, 2015)],
      fast: answer("fast", 1006, 1006.3, 1006.3, 503),
    }))));
    assertEquals([found.verdict, found.atOnce, found.refused], ["pool", 2, 1]);
    assertMatch(
      found.sentence,
      /^A pool of 2, refusing the rest: with 2 \/sleep in flight, \/ was refused with 503; with 1 it was answered/,
    );
    assertStringIncludes(found.meaning[0], "refuses the rest");
  });
  await t.step("Node maxConnections=2: / closed with no answer", () => {
    const found = verdictOf(run(ramp(1, (loads) => ({
      loads: [...loads, slow(1005, 2015)],
      fast: fast(1006, null),
    }))));
    assertEquals([found.verdict, found.atOnce, found.refused], ["pool", 2, 1]);
    assertStringIncludes(found.sentence, "closed or reset without an answer");
  });
  await t.step(
    "one in flight, the next refused: one at a time, refusing",
    () => {
      const found = verdictOf(run(ramp(0, () => ({
        loads: [slow(1005, 2005)],
        fast: answer("fast", 1006, 1006.3, 1006.3, 429),
      }))));
      assertEquals([found.verdict, found.atOnce], ["serial", 1]);
    },
  );
  await t.step(
    "a slow request refused with nothing else in flight: unknown",
    () => {
      const found = verdictOf(run(ramp(0, () => ({
        loads: [answer("slow", 1005, 1005.5, 1005.5, 429)],
        fast: fast(1006, 1007),
      }))));
      assertEquals([found.verdict, found.atOnce, found.refused], [
        "unknown",
        null,
        1,
      ]);
      assertMatch(found.sentence, /^Unknown: \/sleep #1 was refused with 429/);
    },
  );
});

Deno.test("verdictOf() tells the two kinds of one at a time apart, with a cure for each", async (t) => {
  const serial = ramp(
    0,
    () => ({ loads: [slow(1005, 2005)], fast: fast(1006, 2006) }),
  );
  const check = (held: boolean) => ({
    loads: [idle(2010, held ? 4010 : 2013)],
    fast: fast(2011, held ? 4011 : 2012),
  });
  await t.step(
    "an idle connection holds it: the loop waits; detach the handler",
    () => {
      const found = verdictOf(run(serial, { idle: check(true) }));
      assertEquals([found.verdict, found.idleHolds], ["serial", true]);
      assertStringIncludes(found.meaning[0], "The cure is in the loop");
      assertStringIncludes(found.meaning[0], "`void handle(conn)`");
    },
  );
  await t.step(
    "an idle connection holds nothing: handling blocks; the /block cures",
    () => {
      const found = verdictOf(run(serial, { idle: check(false) }));
      assertEquals([found.verdict, found.idleHolds], ["serial", false]);
      assertStringIncludes(
        found.meaning[0],
        "A change to the loop will not help",
      );
      assertStringIncludes(found.meaning[0], "/block-sliced");
      assertFalse(found.meaning.join(" ").includes("`void handle(conn)`"));
    },
  );
  await t.step(
    "no idle check: it says it could not tell which, and why",
    () => {
      const found = verdictOf(run(serial));
      assertEquals(found.idleHolds, null);
      assertMatch(found.meaning[0], /could not tell: its time was up/);
    },
  );
});

Deno.test("verdictOf() checks a pool of N with N idle connections", async (t) => {
  const pool = ramp(2, (loads) => ({
    loads: [...loads, slow(1010, 2016)],
    fast: fast(1011, 2012.2),
  }));
  const quiet = (count: number, held: boolean) => ({
    loads: Array.from(
      { length: count },
      (_, i) => idle(2020 + i, held ? 4030 : 2030),
    ),
    fast: fast(2025, held ? 4032 : 2026),
  });
  await t.step("3 idle connections fill a pool of 3 threads", () => {
    const found = verdictOf(run(pool, { idle: quiet(3, true) }));
    assertEquals([found.verdict, found.atOnce, found.idleHolds], [
      "pool",
      3,
      true,
    ]);
    assertStringIncludes(
      found.meaning[0],
      "3 connections that send nothing fill it",
    );
  });
  await t.step("3 idle connections hold nothing", () => {
    const found = verdictOf(run(pool, { idle: quiet(3, false) }));
    assertEquals(found.idleHolds, false);
    assertStringIncludes(found.meaning[0], "hold none of it");
  });
  await t.step(
    "one idle connection (the browser's one preconnect) cannot tell",
    () => {
      const found = verdictOf(run(pool, { idle: quiet(1, false) }));
      assertEquals(found.idleHolds, null);
    },
  );
});

Deno.test("verdictOf() says unknown for what it did not see", async (t) => {
  await t.step("no slow route, and idle connections held nothing", () => {
    const loads = [idle(10, 40), idle(12, 40)];
    const steps = [
      { loads: loads.slice(0, 1), fast: fast(11, 11.4) },
      { loads, fast: fast(13, 13.3) },
    ];
    const found = verdictOf(
      run(steps, { method: "idle", slowMs: 0.4, slowStatus: 404 }),
    );
    assertEquals([found.verdict, found.atOnce, found.slowMs, found.idleHolds], [
      "unknown",
      null,
      null,
      false,
    ]);
    assertMatch(
      found.sentence,
      /^Unknown: with 2 connections open that sent nothing, \/ was still answered 0\.3 ms after it was sent.*404 in 0\.4 ms.*--slow=PATH\.$/,
    );
  });
  await t.step(
    "no slow route, and one idle connection held it: one at a time",
    () => {
      const steps = [{ loads: [idle(10, 2011)], fast: fast(11, 2012) }];
      const found = verdictOf(
        run(steps, { method: "idle", slowMs: 0.4, slowStatus: 404 }),
      );
      assertEquals([found.verdict, found.atOnce, found.idleHolds], [
        "serial",
        1,
        true,
      ]);
    },
  );
  await t.step("every page takes 1.5 s: the fast request is not fast", () => {
    const found = verdictOf(run([], { fastMs: 1500, slowMs: 1502 }));
    assertEquals(found.verdict, "unknown");
    assertMatch(
      found.sentence,
      /^Unknown: GET \/ took 1\.5 s alone.*--fast=PATH\.$/,
    );
  });
});

Deno.test("verdictOf() gives slowAtOnce from the slow answers' times", async (t) => {
  const lock: ProbeStep[] = [];
  const loads: ProbeRequest[] = [];
  for (let i = 1; i <= 4; i++) {
    // Accepted at once, answered one at a time behind a lock.
    loads.push(slow(1000 + i, 2000 + 1000 * (i - 1)));
    lock.push({ loads: [...loads], fast: fast(1000.5 + i, 1001 + i) });
  }
  await t.step(
    "a lock around /sleep: all at once for /, one at a time for /sleep",
    () => {
      const found = verdictOf(run(lock));
      assertEquals([found.verdict, found.atOnce, found.slowAtOnce], [
        "concurrent",
        4,
        1,
      ]);
      assertStringIncludes(
        found.sentence,
        "the 4 /sleep themselves were served one at a time: their answers ended over 3.0 s, 1.0 s apart on average",
      );
      assertStringIncludes(
        found.meaning[1],
        "a lock held across the slow work",
      );
    },
  );
  await t.step("answers ending together: all of them", () => {
    const found = verdictOf(run(ramp(4)));
    assertEquals([found.verdict, found.atOnce, found.slowAtOnce], [
      "concurrent",
      4,
      4,
    ]);
    assert(!found.sentence.includes("one at a time"));
  });
});
