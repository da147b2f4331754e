import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Stream } from "effect"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import * as CodingWorkflow from "../../src/application/workflows/coding/CodingWorkflow.js"
import * as RunTests from "../../src/application/workflows/coding/RunTests.js"
import { RetryPolicy } from "../../src/domain/RetryPolicy.js"
import { codingScript } from "../../src/infrastructure/ollama/CodingScript.js"
import * as OllamaLanguageModel from "../../src/infrastructure/ollama/OllamaLanguageModel.js"
import * as OllamaSimulator from "../../src/infrastructure/ollama/OllamaSimulator.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"

/** The workflow's services over a simulator playing the coding script, with real child processes. */
const services = (url: string) =>
  Layer.mergeAll(
    WorkflowEngine.Default,
    ToolExecutor.layer({}).pipe(
      Layer.provide(InMemoryToolRegistry.layer([RunTests.tool])),
      Layer.provide(NodeProcessRunner.layer({ timeout: Duration.seconds(60) }))
    ),
    OllamaLanguageModel.layer({ hosts: [url], retry: RetryPolicy.none })
  )

describe("the coding workflow", () => {
  it.live(
    "runs end to end on the simulator: the failing first attempt goes back to the coder, then passes",
    () =>
      Effect.gen(function*() {
        const sim = yield* OllamaSimulator.make({ script: codingScript })
        yield* Effect.gen(function*() {
          const engine = yield* WorkflowEngine
          const graph = yield* CodingWorkflow.make({ model: "qwen2.5-coder", maxAttempts: 3 })
          const events = yield* Stream.runCollect(engine.run(graph, CodingWorkflow.initial("Write add(a, b)")))
          const final = yield* engine.invoke(graph, CodingWorkflow.initial("Write add(a, b)"))
          assert.deepStrictEqual(final.log, [
            "intent",
            "planner",
            "test_writer",
            "coder#1",
            "runner#1",
            "coder#2",
            "runner#2",
            "reviewer"
          ])
          assert.strictEqual(final.attempts, 2)
          assert.isTrue(final.report?.passed)
          assert.include(final.report?.output, "pass 2")
          assert.match(final.review, /^APPROVED/)
          assert.include(final.code, "a + b")
          const reports = [...events].flatMap((e) =>
            e._tag === "NodeFinished" && e.node === "runner"
              ? [(e.update as { report: RunTests.TestReport }).report]
              : []
          )
          assert.deepStrictEqual(reports.map((r) => r.passed), [false, true])
          assert.include(reports[0]!.output, "fail 2")
        }).pipe(Effect.provide(services(sim.url)))
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("when the attempts run out, the reviewer sees the failing report and rejects", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make({ script: codingScript })
      yield* Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const graph = yield* CodingWorkflow.make({ model: "qwen2.5-coder", maxAttempts: 1 })
        const final = yield* engine.invoke(graph, CodingWorkflow.initial("Write add(a, b)"))
        assert.deepStrictEqual(final.log.slice(-3), ["coder#1", "runner#1", "reviewer"])
        assert.isFalse(final.report?.passed)
        assert.match(final.review, /^REJECTED/)
      }).pipe(Effect.provide(services(sim.url)))
    }).pipe(Effect.scoped), 60_000)
})
