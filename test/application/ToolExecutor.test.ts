import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Option, Ref, Schema, TestClock } from "effect"
import * as fc from "fast-check"
import * as ToolGraph from "../../src/application/ToolGraph.js"
import type { ToolError } from "../../src/domain/Errors.js"
import { ToolFailed } from "../../src/domain/Errors.js"
import { RetryPolicy } from "../../src/domain/RetryPolicy.js"
import * as Tool from "../../src/domain/Tool.js"
import { toolCall } from "../../src/domain/ToolCall.js"
import type { Event } from "../support/TestTools.js"
import { finishedAt, flakyTool, makeProbe, sleepTool, withExecutor } from "../support/TestTools.js"

const sleepCalls = (durations: ReadonlyArray<number>, fails: ReadonlyArray<boolean> = []) =>
  durations.map((ms, i) => toolCall(`c${i}`, "sleep", { id: `c${i}`, ms, fail: fails[i] ?? false }))

/** Forks `self`, lets virtual time run out, and returns its result and how long it took. */
const runVirtual = <A, E>(self: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const fiber = yield* Effect.fork(finishedAt(self))
    yield* TestClock.adjust("1 hour")
    const [result, end] = yield* Fiber.join(fiber)
    return [result, end - start] as const
  })

const retry100x2 = RetryPolicy.make({
  maxRetries: 3,
  initialDelay: Duration.millis(100),
  multiplier: 2,
  maxDelay: Duration.seconds(10),
  jitter: false
})

describe("ToolExecutor", () => {
  it.effect("4 tools of 100 ms finish at 100 ms in parallel and at 400 ms in sequence", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      yield* withExecutor([sleepTool(probe)], (executor) =>
        Effect.gen(function*() {
          const calls = sleepCalls([100, 100, 100, 100])
          const [parallel, parallelTook] = yield* runVirtual(executor.executeParallel(calls, { concurrency: 4 }))
          assert.strictEqual(parallelTook, 100)
          assert.deepStrictEqual(parallel.map((r) => r.status), Array(4).fill("succeeded"))
          const [sequential, sequentialTook] = yield* runVirtual(executor.executeSequential(calls))
          assert.strictEqual(sequentialTook, 400)
          assert.strictEqual(sequential.results.length, 4)
          assert.isTrue(Option.isNone(sequential.failure))
        }))
    }))

  it.effect("10 tools of 100 ms take 500 ms at concurrency 2 and 200 ms at concurrency 5", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      yield* withExecutor([sleepTool(probe)], (executor) =>
        Effect.gen(function*() {
          const calls = sleepCalls(Array(10).fill(100))
          const [, two] = yield* runVirtual(executor.executeParallel(calls, { concurrency: 2 }))
          assert.strictEqual(two, 500)
          assert.strictEqual(yield* Ref.get(probe.peak), 2)
          const [, five] = yield* runVirtual(executor.executeParallel(calls, { concurrency: 5 }))
          assert.strictEqual(five, 200)
          assert.strictEqual(yield* Ref.get(probe.peak), 5)
        }))
    }))

  it.effect("a tool failing twice succeeds on the third attempt at 300 ms (retry 100 ms x2)", () =>
    Effect.gen(function*() {
      const flaky = yield* flakyTool(2)
      const [[result], took] = yield* withExecutor(
        [flaky],
        (executor) => runVirtual(executor.executeParallel([toolCall("f", "flaky", {})])),
        { retry: retry100x2 }
      )
      assert.strictEqual(result?.status, "succeeded")
      assert.strictEqual(result?.output, "ok")
      assert.strictEqual(result?.attempts, 3)
      assert.strictEqual(took, 300)
      assert.strictEqual(result?.durationMs, 300)
    }))

  it.effect("a 50 ms tool and a 5 s tool under a 1 s timeout give succeeded and timed_out", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const [results, took] = yield* withExecutor(
        [sleepTool(probe)],
        (executor) => runVirtual(executor.executeParallel(sleepCalls([50, 5000]), { timeout: "1 second" }))
      )
      assert.deepStrictEqual(results.map((r) => r.status), ["succeeded", "timed_out"])
      assert.strictEqual(took, 1000)
      const timeout = results[1]?.error
      assert.strictEqual(timeout?._tag, "Timeout")
      assert.strictEqual(timeout?._tag === "Timeout" && timeout.operation, "tool:sleep")
      // the timed-out tool was interrupted, not left running
      assert.strictEqual(yield* Ref.get(probe.running), 0)
    }))

  it.effect("one failure neither fails nor cancels the others", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const [results] = yield* withExecutor(
        [sleepTool(probe)],
        (executor) => runVirtual(executor.executeParallel(sleepCalls([100, 10, 100], [false, true, false])))
      )
      assert.deepStrictEqual(results.map((r) => r.status), ["succeeded", "failed", "succeeded"])
      assert.strictEqual(results[1]?.error?._tag, "ToolFailed")
    }))

  it.effect("bad input is rejected naming the field, and the handler never runs", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const seen: Array<ToolError> = []
      const [results] = yield* withExecutor(
        [sleepTool(probe)],
        (executor) =>
          runVirtual(executor.executeParallel([
            toolCall("bad", "sleep", { id: "bad", ms: "soon" }),
            toolCall("missing", "nope", {})
          ])),
        { onError: (_call, error) => Effect.sync(() => seen.push(error)) }
      )
      const [bad, missing] = results
      assert.strictEqual(bad?.status, "rejected")
      assert.strictEqual(bad?.error?._tag, "InvalidToolInput")
      assert.strictEqual(bad?.error?._tag === "InvalidToolInput" && bad.error.field, "ms")
      assert.strictEqual(bad?.attempts, 0)
      assert.strictEqual(missing?.status, "rejected")
      assert.strictEqual(missing?.error?._tag, "ToolNotFound")
      assert.deepStrictEqual(seen.map((e) => e._tag), ["InvalidToolInput", "ToolNotFound"])
      assert.deepStrictEqual(yield* Ref.get(probe.events), [])
    }))

  it.effect("sequential execution stops at the first failure and returns it", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const [outcome] = yield* withExecutor(
        [sleepTool(probe)],
        (executor) => runVirtual(executor.executeSequential(sleepCalls([10, 10, 10], [false, true, false])))
      )
      assert.deepStrictEqual(outcome.results.map((r) => r.status), ["succeeded", "failed"])
      assert.strictEqual(Option.getOrThrow(outcome.failure).callId, "c1")
      assert.isFalse((yield* Ref.get(probe.events)).some((e) => e.id === "c2"))
    }))

  it.effect("an open breaker rejects calls without running the tool", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const [results] = yield* withExecutor(
        [sleepTool(probe)],
        (executor) =>
          Effect.gen(function*() {
            yield* executor.executeParallel(sleepCalls([1, 1], [true, true]))
            return yield* executor.executeParallel(sleepCalls([1]))
          }).pipe(runVirtual),
        { breaker: { consecutiveFailures: 2, resetTimeout: "1 minute" } }
      )
      assert.strictEqual(results[0]?.status, "rejected")
      assert.strictEqual(results[0]?.error?._tag, "CircuitOpen")
      assert.strictEqual(results[0]?.attempts, 0)
      assert.strictEqual((yield* Ref.get(probe.events)).filter((e) => e.kind === "start").length, 2)
    }))

  it.effect("the breaker counts only what the user's isFailure says is the tool's fault", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const [results] = yield* withExecutor(
        [sleepTool(probe)],
        (executor) =>
          Effect.gen(function*() {
            // three failures the user's predicate calls not the tool's fault: the breaker stays closed
            yield* executor.executeParallel(sleepCalls([1, 1, 1], [true, true, true]))
            return yield* executor.executeParallel(sleepCalls([1]))
          }).pipe(runVirtual),
        { breaker: { consecutiveFailures: 2, resetTimeout: "1 minute", isFailure: () => false } }
      )
      assert.strictEqual(results[0]?.status, "succeeded")
      assert.strictEqual((yield* Ref.get(probe.events)).filter((e) => e.kind === "start").length, 4)
    }))

  it.effect("a retry policy can be written as a few fields with duration strings, and a tool decides what it retries", () =>
    Effect.gen(function*() {
      let attempts = 0
      // the tool's own predicate retries a failure the executor's default would not (retryable: false)
      const stubborn = Tool.make({
        name: "stubborn",
        description: "fails twice, marked not retryable",
        input: Schema.Struct({}),
        output: Schema.Literal("ok"),
        retry: { maxRetries: 2, initialDelay: "50 millis", jitter: false },
        isRetryable: (error) => error._tag === "ToolFailed",
        handler: () =>
          Effect.suspend(() =>
            ++attempts <= 2
              ? Effect.fail(new ToolFailed({ tool: "stubborn", message: "no", retryable: false }))
              : Effect.succeed("ok" as const)
          )
      })
      const [[result], took] = yield* withExecutor(
        [stubborn],
        (executor) => runVirtual(executor.executeParallel([toolCall("s", "stubborn", {})]))
      )
      assert.strictEqual(result?.status, "succeeded")
      assert.strictEqual(result?.attempts, 3)
      assert.strictEqual(took, 150, "50 ms, then 100 ms: the defaults double the delay")
      assert.deepStrictEqual(
        RetryPolicy.from({ initialDelay: "20 millis" }),
        RetryPolicy.make({
          maxRetries: 3,
          initialDelay: Duration.millis(20),
          multiplier: 2,
          maxDelay: Duration.seconds(10),
          jitter: true
        })
      )
    }))

  it.effect("a handler that dies becomes a failed result", () =>
    Effect.gen(function*() {
      const boom = Tool.make({
        name: "boom",
        description: "dies",
        input: Schema.Struct({}),
        output: Schema.Void,
        handler: () => Effect.die(new Error("kaboom"))
      })
      const [results] = yield* withExecutor([boom], (executor) => runVirtual(executor.executeBatch("boom", [{}, {}])))
      assert.deepStrictEqual(results.map((r) => r.status), ["failed", "failed"])
      assert.include(results[0]?.error?._tag === "ToolFailed" ? results[0].error.message : "", "kaboom")
    }))

  it.effect("an output that does not match the tool's schema fails the call", () =>
    Effect.gen(function*() {
      const liar = Tool.make({
        name: "liar",
        description: "returns the wrong shape",
        input: Schema.Struct({}),
        output: Schema.Struct({ n: Schema.Number }),
        handler: () => Effect.succeed({ n: "one" } as unknown as { n: number })
      })
      const [[result]] = yield* withExecutor([liar], (executor) => runVirtual(executor.executeBatch("liar", [{}])))
      assert.strictEqual(result?.status, "failed")
      assert.include(result?.error?._tag === "ToolFailed" ? result.error.message : "", "schema")
    }))

  it.effect("executeBatch runs one tool over many inputs, results in input order", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const [results, took] = yield* withExecutor([sleepTool(probe)], (executor) =>
        runVirtual(
          executor.executeBatch("sleep", [30, 10, 20].map((ms, i) => ({ id: `b${i}`, ms })))
        ))
      assert.deepStrictEqual(results.map((r) => r.callId), ["sleep#0", "sleep#1", "sleep#2"])
      assert.deepStrictEqual(results.map((r) => (r.output as { id: string }).id), ["b0", "b1", "b2"])
      assert.strictEqual(took, 30)
    }))

  it.effect("interrupting an execution interrupts every running tool promptly", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      yield* withExecutor([sleepTool(probe)], (executor) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(executor.executeParallel(sleepCalls([1000, 1000, 1000])))
          yield* TestClock.adjust("10 millis")
          assert.strictEqual(yield* Ref.get(probe.running), 3)
          const exit = yield* Fiber.interrupt(fiber)
          assert.isTrue(Exit.isInterrupted(exit))
          assert.strictEqual(yield* Ref.get(probe.running), 0)
        }))
    }))

  it.effect("a graph A -> (B, C), C -> E, (B, C) -> D starts E without waiting for the slow B", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const node = (id: string, ms: number, dependsOn: ReadonlyArray<string> = []) => ({
        id,
        tool: "sleep",
        input: { id, ms },
        dependsOn
      })
      const graph = yield* ToolGraph.make([
        node("A", 100),
        node("B", 1000, ["A"]),
        node("C", 100, ["A"]),
        node("D", 100, ["B", "C"]),
        node("E", 100, ["C"])
      ])
      const [results, took] = yield* withExecutor(
        [sleepTool(probe)],
        (executor) => runVirtual(executor.executeGraph(graph))
      )
      assert.deepStrictEqual(results.map((r) => r.status), Array(5).fill("succeeded"))
      const events = yield* Ref.get(probe.events)
      const at = (id: string, kind: Event["kind"]) => events.find((e) => e.id === id && e.kind === kind)?.at
      assert.strictEqual(at("E", "start"), 200)
      assert.strictEqual(at("E", "end"), 300)
      assert.strictEqual(at("D", "start"), 1100)
      assert.strictEqual(took, 1200)
    }))

  it.effect("graph nodes receive their dependencies' outputs; a failed node's dependents are skipped", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const graph = yield* ToolGraph.make([
        { id: "A", tool: "sleep", input: { id: "A", ms: 5 } },
        {
          id: "B",
          tool: "sleep",
          dependsOn: ["A"],
          inputFrom: (outputs) => ({ id: `after-${(outputs["A"] as { id: string }).id}`, ms: 5 })
        },
        { id: "C", tool: "sleep", input: { id: "C", ms: 5, fail: true } },
        { id: "D", tool: "sleep", input: { id: "D", ms: 5 }, dependsOn: ["C"] },
        { id: "E", tool: "sleep", input: { id: "E", ms: 5 }, dependsOn: ["D", "B"] }
      ])
      const [results] = yield* withExecutor([sleepTool(probe)], (executor) => runVirtual(executor.executeGraph(graph)))
      assert.deepStrictEqual(results.map((r) => r.status), ["succeeded", "succeeded", "failed", "skipped", "skipped"])
      assert.deepStrictEqual(results[1]?.output, { id: "after-A", ms: 5 })
      assert.strictEqual(results[3]?.error?._tag, "DependencyFailed")
      const started = (yield* Ref.get(probe.events)).filter((e) => e.kind === "start").map((e) => e.id)
      assert.sameMembers(started, ["A", "after-A", "C"])
    }))

  it.effect.prop(
    "results keep call order for any durations, failures and concurrency",
    [fc.array(fc.record({ ms: fc.nat(50), fail: fc.boolean() }), { maxLength: 20 }), fc.integer({ min: 1, max: 8 })],
    ([specs, concurrency]) =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const calls = sleepCalls(specs.map((s) => s.ms), specs.map((s) => s.fail))
        const [results] = yield* withExecutor(
          [sleepTool(probe)],
          (executor) => runVirtual(executor.executeParallel(calls, { concurrency })),
          { breaker: false }
        )
        assert.deepStrictEqual(results.map((r) => r.callId), calls.map((c) => c.id))
        assert.deepStrictEqual(results.map((r) => r.status), specs.map((s) => s.fail ? "failed" : "succeeded"))
        assert.isAtMost(yield* Ref.get(probe.peak), concurrency)
      }),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect.prop(
    "never more than `concurrency` tools run at once",
    [fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 10 })],
    ([durations, concurrency]) =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withExecutor([sleepTool(probe)], (executor) =>
          runVirtual(executor.executeParallel(sleepCalls(durations), { concurrency })))
        assert.strictEqual(yield* Ref.get(probe.peak), Math.min(concurrency, durations.length))
      }),
    { fastCheck: { numRuns: 50 } }
  )

  /** A random DAG: node i may depend on any nodes before it; listed in a shuffled order. */
  const dagArbitrary = fc.integer({ min: 1, max: 12 }).chain((size) =>
    fc.tuple(
      fc.tuple(
        ...Array.from({ length: size }, (_, i) =>
          fc.record({
            deps: fc.subarray(Array.from({ length: i }, (_, j) => j)),
            ms: fc.nat(40)
          }))
      ),
      fc.shuffledSubarray(Array.from({ length: size }, (_, i) => i), { minLength: size, maxLength: size }),
      fc.array(fc.boolean(), { minLength: size, maxLength: size }).map((fails) =>
        fails.map((f, i) => f && i % 3 === 0)
      ),
      fc.integer({ min: 1, max: 6 })
    )
  )

  it.effect.prop(
    "a DAG never starts a node before its dependencies and runs every reachable node exactly once",
    [dagArbitrary],
    ([[specs, order, fails, concurrency]]) =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const id = (i: number) => `n${i}`
        const graph = yield* ToolGraph.make(order.map((i) => ({
          id: id(i),
          tool: "sleep",
          input: { id: id(i), ms: specs[i]!.ms, fail: fails[i] },
          dependsOn: specs[i]!.deps.map(id)
        })))
        const [results] = yield* withExecutor(
          [sleepTool(probe)],
          (executor) => runVirtual(executor.executeGraph(graph, { concurrency })),
          { breaker: false }
        )
        const events = yield* Ref.get(probe.events)
        const index = (nodeId: string, kind: Event["kind"]) =>
          events.findIndex((e) => e.id === nodeId && e.kind === kind)
        // expected outcome: a node runs iff all of its dependencies succeeded
        const succeeded = new Map<number, boolean>()
        const runs = new Map<number, boolean>()
        for (let i = 0; i < specs.length; i++) {
          const runnable = specs[i]!.deps.every((d) => succeeded.get(d) === true)
          runs.set(i, runnable)
          succeeded.set(i, runnable && !fails[i])
        }
        assert.deepStrictEqual(results.map((r) => r.callId), order.map(id))
        for (const i of order) {
          const starts = events.filter((e) => e.id === id(i) && e.kind === "start").length
          assert.strictEqual(starts, runs.get(i) ? 1 : 0, `node ${id(i)} start count`)
          if (!runs.get(i)) continue
          for (const dep of specs[i]!.deps) {
            assert.isAbove(index(id(i), "start"), index(id(dep), "end"), `${id(i)} started before ${id(dep)} ended`)
          }
        }
        assert.isAtMost(yield* Ref.get(probe.peak), concurrency)
      }),
    { fastCheck: { numRuns: 60 } }
  )

  it.effect("ToolFailed with retryable: false is not retried", () =>
    Effect.gen(function*() {
      const fatal = Tool.make({
        name: "fatal",
        description: "fails for good",
        input: Schema.Struct({}),
        output: Schema.Void,
        handler: () => Effect.fail(new ToolFailed({ tool: "fatal", message: "no", retryable: false }))
      })
      const [[result], took] = yield* withExecutor(
        [fatal],
        (executor) => runVirtual(executor.executeBatch("fatal", [{}])),
        { retry: retry100x2 }
      )
      assert.strictEqual(result?.attempts, 1)
      assert.strictEqual(took, 0)
    }))
})
