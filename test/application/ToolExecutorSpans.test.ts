/**
 * The executor's spans: one per batch by default, none when the caller's own span covers
 * the batch (`span: false`, what an agent turn passes), and none per call unless
 * `traceCalls` asks for them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Tracer } from "effect"
import { toolCall } from "../../src/domain/ToolCall.js"
import { makeProbe, sleepTool, withExecutor } from "../support/TestTools.js"

/** Runs `effect` under a tracer that records the name of every span started, on top of the current one. */
const spansOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const names: Array<string> = []
    const base = yield* Effect.tracer
    const recording = Tracer.make({
      span: (name, ...rest) => {
        names.push(name)
        return base.span(name, ...rest)
      },
      context: base.context
    })
    yield* Effect.withTracer(effect, recording)
    return names
  })

const calls = [toolCall("a", "sleep", { id: "a", ms: 0 }), toolCall("b", "sleep", { id: "b", ms: 0 })]

describe("ToolExecutor spans", () => {
  it.effect("a batch has a span of its own by default, none with span: false, and calls none", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const names = yield* withExecutor([sleepTool(probe)], (executor) =>
        Effect.all([
          spansOf(executor.executeParallel(calls)),
          spansOf(executor.executeParallel(calls, { span: false })),
          spansOf(executor.execute(calls[0]!))
        ]))
      assert.deepStrictEqual(names, [["ToolExecutor.executeParallel"], [], []])
    }))

  it.effect("traceCalls gives every call a span", () =>
    Effect.gen(function*() {
      const probe = yield* makeProbe
      const names = yield* withExecutor(
        [sleepTool(probe)],
        (executor) => spansOf(executor.executeParallel(calls, { span: false })),
        { traceCalls: true }
      )
      assert.deepStrictEqual(names, ["ToolExecutor.execute", "ToolExecutor.execute"])
    }))
})
