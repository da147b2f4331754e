import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Stream } from "effect"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import * as CodingWorkflow from "../../src/application/workflows/coding/CodingWorkflow.js"
import * as RunTests from "../../src/application/workflows/coding/RunTests.js"
import { LanguageModel } from "../../src/domain/LanguageModel.js"
import * as NodeCpuRunner from "../../src/infrastructure/cpu/NodeCpuRunner.js"
import { codingScript } from "../../src/infrastructure/ollama/CodingScript.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"
import { fromSimulator } from "../support/workflow/SimulatorScript.js"

/** The workflow's services: a model in memory playing the coding script, real child processes for the tests. */
const services = Layer.mergeAll(
  WorkflowEngine.layerMemory,
  ToolExecutor.layer({}).pipe(
    Layer.provide([
      InMemoryToolRegistry.layer([RunTests.tool]),
      NodeProcessRunner.layer({ timeout: Duration.seconds(60) }),
      Timeouts.Timeouts.Default,
      NodeCpuRunner.layer({ size: 1 })
    ])
  ),
  LanguageModel.layerTest(fromSimulator(codingScript))
)

describe("the coding workflow", () => {
  it.live(
    "runs end to end on the scripted model: the failing first attempt goes back to the coder, then passes",
    () =>
      Effect.gen(function*() {
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
      }).pipe(Effect.provide(services)),
    60_000
  )

  it.live("when the attempts run out, the reviewer sees the failing report and rejects", () =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const graph = yield* CodingWorkflow.make({ model: "qwen2.5-coder", maxAttempts: 1 })
      const final = yield* engine.invoke(graph, CodingWorkflow.initial("Write add(a, b)"))
      assert.deepStrictEqual(final.log.slice(-3), ["coder#1", "runner#1", "reviewer"])
      assert.isFalse(final.report?.passed)
      assert.match(final.review, /^REJECTED/)
    }).pipe(Effect.provide(services)), 60_000)
})
