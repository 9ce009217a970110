/**
 * What the lab says about a run, without a browser: analysis.js is a
 * plain module of pure functions, so these tests give it runs made here (the
 * figures of real runs, and the cases a browser shows only by chance, such as
 * a connection opened ahead of time) and check the rows it lays out, the
 * verdict on a guess, and the sentences and notes under the waterfall.
 */

import {
  assert,
  assertEquals,
  assertFalse,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import {
  axisOf,
  firstAnswer,
  guessHeld,
  type LabRequest,
  type LabRun,
  readable,
  story,
  timeline,
} from "./analysis.js";

/** A request of a run: its path, when due, sent and answered, and the server's time. */
function request(
  path: string,
  dueMs: number,
  sentMs: number,
  answeredMs: number | null | undefined,
  serverMs: number | null | undefined,
  more: Partial<LabRequest> = {},
): LabRequest {
  return { path, dueMs, sentMs, answeredMs, serverMs, ...more };
}

/** `count` / after the slow one, each due 200 ms after the last. */
function roots(
  times: [sentMs: number, answeredMs: number, serverMs: number][],
  more: Partial<LabRequest>[] = [],
) {
  return times.map(([sentMs, answeredMs, serverMs], i) =>
    request("/", (i + 1) * 200, sentMs, answeredMs, serverMs, {
      idleMs: 0.1,
      ...more[i],
    })
  );
}

// A serial run with --sleep-ms=2000, as Chromium measured one: each /
// waited in the backlog until /sleep was answered.
const serialSleep = {
  mode: "serial",
  requests: [
    request("/sleep", 0, 16.9, 2023.4, 2002.1, { idleMs: 0.2 }),
    ...roots([[223.4, 2033.6, 2], [421.7, 2037.2, 0.6], [620.3, 2040.1, 0.5]]),
  ],
};

// The same in concurrent mode: every / was answered while /sleep slept.
const concurrentSleep = {
  mode: "concurrent",
  requests: [
    request("/sleep", 0, 5.2, 2010.8, 2001.9, { idleMs: 0.3 }),
    ...roots([[204.6, 207.9, 0.8], [402.2, 404.7, 0.5], [603, 605.1, 0.4]]),
  ],
};

// The bug report of issue 26: concurrent /block with --sleep-ms=5000 on a
// connection the browser had opened 297.5 ms earlier. The page said
// "server 5.3 s*" when the server counted from accept(); counted from the
// first byte, the server's time is the 5.0 s it spun.
const preconnectedBlock = {
  mode: "concurrent",
  requests: [
    request("/block", 0, 2.1, 5003.4, 5000.2, { idleMs: 297.5 }),
    ...roots([[201.3, 5006.9, 0.7], [400.8, 5008.2, 0.4], [
      601.5,
      5009.6,
      0.4,
    ]]),
  ],
};

Deno.test("timeline() lays out each row as the page draws it", async (t) => {
  await t.step(
    "a row still waiting has no server tip, only its wait so far",
    () => {
      const { rows } = timeline([
        request("/sleep", 0, 10, undefined, undefined),
      ], 710);
      assertEquals(rows[0], {
        label: "/sleep",
        state: "waiting",
        sentMs: 10,
        endMs: 710,
        serverShare: 0,
        held: undefined,
        idle: undefined,
        wait: "",
        figures: "waiting… 700 ms",
        early: "",
      });
    },
  );

  await t.step("an answered row gives the server its share of the bar", () => {
    const { rows: [slow, first], spanMs } = timeline(serialSleep.requests);
    assertEquals(
      [slow.state, slow.wait, slow.figures],
      ["answered", "2.0 s", " · server 2.0 s"],
    );
    assertEquals(slow.serverShare, 2002.1 / (2023.4 - 16.9));
    assertEquals([first.label, first.wait, first.figures], [
      "/ #1",
      "1.8 s",
      " · server 2 ms",
    ]);
    assertEquals(spanMs, 2040.1);
  });

  await t.step("a failed row says so and has no tip", () => {
    const { rows: [row] } = timeline([request("/", 200, 203, null, null)], 900);
    assertEquals([row.state, row.figures, row.serverShare], [
      "failed",
      "failed",
      0,
    ]);
  });

  await t.step("the browser's hold is drawn only past 250 ms", () => {
    const { rows } = timeline([
      request("/", 200, 440, 441, 0.5),
      request("/", 400, 701, 702, 0.5),
    ]);
    assertEquals(rows.map((row) => row.held), [
      undefined,
      { fromMs: 400, toMs: 701 },
    ]);
  });

  await t.step(
    "a connection idle before its request is drawn apart, from 0 at the earliest",
    () => {
      const { rows: [block, first] } = timeline(preconnectedBlock.requests);
      // Of the 297.5 ms idle, 1.1 ms came after the browser sent: the
      // wait less the server's time.
      assertEquals(block.idle, { fromMs: 0, toMs: 2.1, ms: 296.4 });
      assertEquals([block.wait, block.figures, block.early], [
        "5.0 s",
        " · server 5.0 s",
        "opened 296 ms early",
      ]);
      assertEquals(first.idle, undefined, "0.1 ms idle is no preconnect");
      const { rows: [later] } = timeline([
        request("/", 400, 402, 403, 0.5, { idleMs: 150 }),
      ]);
      assertEquals(later.idle, { fromMs: 252.5, toMs: 402, ms: 149.5 });
    },
  );

  await t.step(
    "idle time a busy server lost after the request came is no early connection",
    () => {
      // Parallel mode on a busy machine: the worker accepted and read
      // /sleep 164 ms after Chromium sent it, 83 ms of that idle.
      const { rows: [row] } = timeline([
        request("/sleep", 0, 7.4, 1678.4, 1507.4, { idleMs: 82.8, worker: 2 }),
      ]);
      assertEquals([row.idle, row.early], [undefined, ""]);
    },
  );

  await t.step(
    "without an idle time, a server time longer than the wait is marked *",
    () => {
      const old = request("/block", 0, 2.1, 5003.4, 5297.7);
      assertEquals(timeline([old]).rows[0].figures, " · server 5.3 s*");
      const same = request("/", 200, 201, 201.9, 0.94);
      assertEquals(timeline([same]).rows[0].figures, " · server 0.9 ms");
    },
  );

  await t.step("parallel mode names the worker", () => {
    const row = timeline([request("/", 200, 201, 203, 0.4, { worker: 2 })])
      .rows[0];
    assertEquals(row.figures, " · server 0.4 ms · worker 2");
  });
});

Deno.test("axisOf() takes a round step, at most six to the span", async (t) => {
  for (
    const [spanMs, stepMs, scaleMs] of [
      [1000, 250, 1125],
      [2040.1, 500, 2250],
      [5009.6, 1000, 5500],
      [12_000, 2000, 13_000],
    ]
  ) {
    await t.step(
      `${spanMs} ms: a step of ${stepMs} ms, ${scaleMs} ms wide`,
      () => {
        const axis = axisOf(spanMs);
        assertEquals([axis.stepMs, axis.scaleMs], [stepMs, scaleMs]);
        assertEquals(axis.ticks[0], 0);
        assert(axis.ticks.length <= 7, `${axis.ticks.length} ticks`);
        assert(axis.ticks.at(-1)! <= scaleMs);
      },
    );
  }
});

Deno.test("guessHeld() says whether the guess held, with the run's own numbers", async (t) => {
  const cases: [
    string,
    "soon" | "after",
    typeof serialSleep,
    string,
    string,
  ][] = [
    [
      "serial, guessed after: held",
      "after",
      serialSleep,
      "yes",
      "Your guess, only after /sleep, held: in serial mode, / #1 waited 1.8 s for an answer that came only with /sleep's, at 2.0 s; the server spent 2 ms on it.",
    ],
    [
      "serial, guessed soon: did not hold",
      "soon",
      serialSleep,
      "no",
      "Your guess, within a few milliseconds, did not hold: in serial mode, / #1 waited 1.8 s",
    ],
    [
      "concurrent, guessed after: did not hold",
      "after",
      concurrentSleep,
      "no",
      "Your guess, only after /sleep, did not hold: in concurrent mode, / #1 was answered 3.3 ms after it was sent, while /sleep was answered only at 2.0 s.",
    ],
    [
      "concurrent, guessed soon: held",
      "soon",
      concurrentSleep,
      "yes",
      "Your guess, within a few milliseconds, held: in concurrent mode",
    ],
    [
      "/ #1 sent only once /sleep was answered: untested",
      "after",
      {
        mode: "concurrent",
        requests: [
          request("/sleep", 0, 5, 150, 140),
          request("/", 200, 203, 205, 0.5),
        ],
      },
      "untested",
      "Your guess, only after /sleep, could not be tested: / #1 was sent only after /sleep was answered: /sleep ended before 200 ms.",
    ],
    [
      "a request with no answer: untested",
      "soon",
      {
        mode: "serial",
        requests: [
          request("/sleep", 0, 5, 2010, 2000),
          request("/", 200, 203, null, null),
        ],
      },
      "untested",
      "Your guess, within a few milliseconds, could not be tested: a request got no answer.",
    ],
  ];
  for (const [name, guess, run, held, text] of cases) {
    await t.step(name, () => {
      const verdict = guessHeld(guess, run);
      assertEquals(verdict.held, held);
      assertStringIncludes(verdict.text, text);
    });
  }
});

Deno.test("firstAnswer() heads each block of the comparison", async (t) => {
  const cases: [string, LabRun, "soon" | "after" | undefined, string][] = [
    [
      "serial: after",
      serialSleep,
      "after",
      "first / waited for /sleep: 1.8 s",
    ],
    [
      "concurrent: soon",
      concurrentSleep,
      "soon",
      "first / answered in 3.3 ms",
    ],
    [
      "held back by the browser: no outcome",
      {
        mode: "concurrent",
        requests: [
          request("/sleep", 0, 5, 2005, 2000),
          request("/", 200, 2006, 2008, 0.5, { connectionWaitMs: 1800 }),
        ],
      },
      undefined,
      "/ #1 was sent only after /sleep was answered: your browser held it back",
    ],
  ];
  for (const [name, run, outcome, short] of cases) {
    await t.step(name, () => {
      assertEquals(firstAnswer(run), {
        ...(outcome ? { outcome } : {}),
        short,
      });
    });
  }
});

Deno.test("story() reads the run in sentences, and puts the rest in notes", async (t) => {
  await t.step("serial /sleep: the backlog, and no notes", () => {
    const { sentences, notes } = story(serialSleep);
    assertEquals(sentences, [
      "/ #1 waited 1.8 s in your browser, but the server spent 2 ms on it: the rest it waited in the kernel's backlog, because the serial loop was not calling accept() while it served /sleep.",
      "Every / was answered after /sleep, on which the server spent 2.0 s: one connection at a time.",
    ]);
    assertEquals(notes, []);
  });

  await t.step("concurrent /sleep: every / answered while /sleep slept", () => {
    const { sentences, notes } = story(concurrentSleep);
    assertEquals(sentences, [
      "Every / was answered while /sleep was still waiting on its timer, the slowest in 3.3 ms.",
      "The concurrent loop went back to accept() as soon as /sleep's handler awaited its timer, so nothing waited in the backlog; the server spent 2.0 s on /sleep itself.",
    ]);
    assertEquals(notes, []);
  });

  await t.step(
    "concurrent /block on a preconnected connection: the spin is the handling time, the idle time a note of its own",
    () => {
      const { sentences, notes } = story(preconnectedBlock);
      assertStringIncludes(
        sentences[0],
        "because /block kept the only thread spinning for 5.0 s, so the loop could not call accept() meanwhile.",
      );
      assertEquals(notes, [
        "Your browser opened /block's connection 296 ms before it sent the request on it (the thin line): the server counts from the request's first byte, so its 5.0 s leaves that idle time out.",
      ]);
    },
  );

  await t.step("an older server that counts from accept(): the * note", () => {
    const requests = preconnectedBlock.requests.map(({ idleMs: _, ...r }) => r);
    requests[0] = { ...requests[0], serverMs: 5297.7 };
    const { sentences, notes } = story({ mode: "concurrent", requests });
    assertStringIncludes(sentences[0], "spinning for 5.3 s");
    assertEquals(notes, [
      "* /block: the server's time is longer than your browser's wait, because this server counts from accepting a connection, and your browser opened the connection before it sent the request.",
    ]);
  });

  await t.step(
    "concurrent, two connections opened ahead: one note names both",
    () => {
      const requests = concurrentSleep.requests.map((r) => ({ ...r }));
      requests[0].idleMs = 1234;
      requests[1].idleMs = 60;
      const { notes } = story({ mode: "concurrent", requests });
      assertEquals(notes, [
        "Your browser opened connections ahead of time and left them idle before it sent a request on them: 1.2 s for /sleep and 58 ms for / #1 (the thin lines). The server counts from each request's first byte, so its times leave that idle time out.",
      ]);
    },
  );

  await t.step(
    "serial, a connection opened ahead: what it costs a serial server",
    () => {
      const requests = serialSleep.requests.map((r) => ({ ...r }));
      requests[0].idleMs = 1234;
      const { notes } = story({ mode: "serial", requests });
      assertEquals(notes, [
        "Your browser opened /sleep's connection 1.2 s before it sent the request on it (the thin line): the server counts from the request's first byte, so its 2.0 s leaves that idle time out. Meanwhile a serial server waits on that connection and accepts no other.",
      ]);
    },
  );

  await t.step(
    "serial, a / that waited longer than the requests ahead explain: the 408 note",
    () => {
      // / #1 began 1 s after /sleep's answer: an idle connection held the
      // loop until the head timeout.
      const requests = [
        request("/sleep", 0, 10, 2010, 2000),
        request("/", 200, 205, 3011, 1),
      ];
      const { notes } = story({ mode: "serial", requests });
      assertEquals(notes.length, 1);
      assertMatch(
        notes[0],
        /^\/ #1 waited 1\.0 s more than the requests ahead of it explain\. The likeliest reason: an idle connection .* head timeout closed it/,
      );
    },
  );

  await t.step(
    "a / the browser sent late, but before the slow answer: a note on the dotted line",
    () => {
      const requests = serialSleep.requests.map((r) => ({ ...r }));
      requests[2] = { ...requests[2], sentMs: 900 };
      const { notes } = story({ mode: "serial", requests });
      assertEquals(notes, [
        "Your browser sent / #2 500 ms after the page asked for it (the dotted line), and that part of its wait is not the server's. Why: the page's own timer fired late, on a busy machine or in a tab in the background.",
      ]);
    },
  );

  await t.step(
    "a / the browser held until the slow answer: a sentence, for it shows nothing",
    () => {
      const requests = [
        request("/sleep", 0, 5, 2005, 2000),
        request("/", 200, 203, 206, 0.5),
        request("/", 400, 2006, 2009, 0.5, { connectionWaitMs: 1600 }),
      ];
      const { sentences, notes } = story({ mode: "concurrent", requests });
      assertEquals(sentences.length, 3);
      assertMatch(
        sentences[2],
        /^Your browser held back \/ #2: the page asked for it at 400 ms, but the browser sent it only after \/sleep was answered, at 2\.0 s, .* Why: a browser sends at most six requests at a time/,
      );
      assertEquals(notes, []);
    },
  );

  await t.step(
    "parallel /block: the / that met the blocked worker, and the others",
    () => {
      const requests = [
        request("/block", 0, 4, 1506, 1500, { worker: 1 }),
        ...roots([[203, 1508, 0.5], [402, 405, 0.4], [601, 1509, 0.4]], [
          { worker: 1 },
          { worker: 2 },
          { worker: 1 },
        ]),
      ];
      const { sentences } = story({ mode: "parallel", requests });
      assertEquals(sentences, [
        "/ #1 and / #3 met the blocked worker: the kernel gave their connections to worker 1, which spun on /block for 1.5 s, so they waited up to 1.3 s in your browser for a server time of 0.5 ms.",
        "/ #2 went to worker 2 and was answered within 3 ms: the kernel picks a worker for each connection, and a blocked one holds only its own.",
      ]);
    },
  );

  await t.step(
    "concurrent /block-sliced: / answered between slices, and the slices' cost",
    () => {
      const requests = [
        request("/block-sliced", 0, 4, 1838, 1830, { idleMs: 0.2 }),
        ...roots([[203, 209.6, 0.6], [402, 413, 0.5], [601, 606, 0.4]]),
      ];
      assertEquals(story({ mode: "concurrent", requests }).sentences, [
        "/block-sliced took 1.8 s on the server, yet every / was answered within 11 ms: between its slices of spin, each followed by an await of a timer, the loop accepted and answered them.",
        "The slices cost time: the same spin as /block, with a turn of the loop after each slice, takes longer in all.",
      ]);
    },
  );

  await t.step(
    "concurrent /block-worker: / answered at once, and the Worker's cost",
    () => {
      const requests = [
        request("/block-worker", 0, 4, 1527, 1519, { idleMs: 0.2 }),
        ...roots([[203, 205, 0.6], [402, 404.1, 0.5], [601, 603, 0.4]]),
      ];
      assertEquals(story({ mode: "concurrent", requests }).sentences, [
        "/block-worker took 1.5 s on the server, spinning in a Worker it started, yet every / was answered within 2.1 ms: the loop's thread only awaited the Worker's answer.",
        "The Worker costs its start, a thread and a module to load for each request, and the spin it ran kept another core busy.",
      ]);
    },
  );

  await t.step(
    "parallel /block-worker: the Worker started from a worker thread is slow to answer",
    () => {
      const requests = [
        request("/block-worker", 0, 4, 2530, 2522, { worker: 1 }),
        ...roots([[203, 205, 0.6], [402, 404.1, 0.5], [601, 603, 0.4]])
          .map((r) => ({ ...r, worker: 2 })),
      ];
      const [, cost] = story({ mode: "parallel", requests }).sentences;
      assertStringIncludes(cost, "only after about a second");
    },
  );

  await t.step(
    "serial /block-worker: / waits all the same, since the loop awaits the request",
    () => {
      const requests = [
        request("/block-worker", 0, 4, 1527, 1519, { idleMs: 0.2 }),
        ...roots([[203, 1530, 0.6], [402, 1532, 0.5], [601, 1534, 0.4]]),
      ];
      const { sentences } = story({ mode: "serial", requests });
      assertEquals(sentences.length, 3);
      assertStringIncludes(
        sentences[1],
        "Every / was answered after /block-worker",
      );
      assertEquals(
        sentences[2],
        "/block-worker freed the thread, not the loop: a serial loop awaits the whole request, however it spends its time.",
      );
    },
  );

  await t.step(
    "a request with no answer: the sentence asks about the server",
    () => {
      const requests = [
        request("/sleep", 0, 5, 2005, 2000),
        request("/", 200, 203, null, null),
      ];
      assertEquals(story({ mode: "serial", requests }), {
        sentences: ["/ #1 got no answer: is the server still running?"],
        notes: [],
      });
    },
  );

  await t.step("no Server-Timing: the page says it cannot tell", () => {
    const requests = [
      request("/sleep", 0, 5, 2005, null),
      request("/", 200, 203, 2006, null),
    ];
    assertStringIncludes(
      story({ mode: undefined, requests }).sentences[0],
      "sends no Server-Timing",
    );
  });
});

Deno.test("readable() keeps a stored run only in the shape docs/browser.md gives", async (t) => {
  const run = { ...serialSleep, slow: "/sleep", at: 1764641271000 };
  const cases: [string, unknown, boolean][] = [
    ["a run with idle times", run, true],
    [
      "a run kept before idle times",
      { ...run, requests: run.requests.map(({ idleMs: _, ...r }) => r) },
      true,
    ],
    ["a parallel run with workers", {
      ...run,
      mode: "parallel",
      requests: run.requests.map((r) => ({ ...r, worker: 2 })),
    }, true],
    ["a run of a cure for /block", {
      ...run,
      slow: "/block-sliced",
      requests: [
        { ...run.requests[0], path: "/block-sliced" },
        ...run.requests.slice(1),
      ],
    }, true],
    ["an unknown mode", { ...run, mode: "threaded" }, false],
    ["a slow request its first path does not match", {
      ...run,
      slow: "/block",
    }, false],
    ["a negative idle time", {
      ...run,
      requests: run.requests.map((r) => ({ ...r, idleMs: -1 })),
    }, false],
    ["worker 0", {
      ...run,
      requests: run.requests.map((r) => ({ ...r, worker: 0 })),
    }, false],
    ["one request only", { ...run, requests: run.requests.slice(0, 1) }, false],
    ["seven requests", {
      ...run,
      requests: [...run.requests, ...run.requests.slice(1)],
    }, false],
    ["a failed request", {
      ...run,
      requests: [run.requests[0], { ...run.requests[1], answeredMs: null }],
    }, false],
    ["not a run", "junk", false],
  ];
  for (const [name, value, expected] of cases) {
    await t.step(name, () => {
      if (expected) assert(readable(value));
      else assertFalse(readable(value));
    });
  }
});
