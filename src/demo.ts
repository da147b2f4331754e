/**
 * `npm run demo`: the ToolExecutor (the same tool calls sequentially, in parallel and
 * as a graph), then the coding workflow against the built-in Ollama simulator, with
 * checkpoints in SQLite under LOOM_DATA_DIR and the generated tests run in a child
 * process. Offline; no configuration needed.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Clock, Console, Effect, Layer, Stream } from "effect"
import * as DemoTools from "./application/demo/DemoTools.js"
import { ToolExecutor } from "./application/ToolExecutor.js"
import * as ToolGraph from "./application/ToolGraph.js"
import * as CpuTools from "./application/tools/CpuTools.js"
import { WorkflowEngine } from "./application/WorkflowEngine.js"
import * as CodingWorkflow from "./application/workflows/coding/CodingWorkflow.js"
import * as RunTests from "./application/workflows/coding/RunTests.js"
import { toolCall } from "./domain/ToolCall.js"
import * as NodeCpuRunner from "./infrastructure/cpu/NodeCpuRunner.js"
import { McpConnector } from "./infrastructure/mcp/McpConnector.js"
import { codingScript } from "./infrastructure/ollama/CodingScript.js"
import * as OllamaLanguageModel from "./infrastructure/ollama/OllamaLanguageModel.js"
import * as OllamaSimulator from "./infrastructure/ollama/OllamaSimulator.js"
import * as SqliteCheckpointStore from "./infrastructure/persistence/SqliteCheckpointStore.js"
import * as NodeProcessRunner from "./infrastructure/process/NodeProcessRunner.js"
import * as Timeouts from "./infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "./infrastructure/tools/InMemoryToolRegistry.js"

const calls = [
  toolCall("c1", "weather", { city: "Lisbon" }),
  toolCall("c2", "search", { query: "circuit" }),
  toolCall("c3", "translate", { text: "hello there world", to: "fr" }),
  toolCall("c4", "weather", { city: "" })
]

const timed = <A, E, R>(label: string, self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const result = yield* self
    const elapsed = (yield* Clock.currentTimeMillis) - start
    yield* Console.log(`${label.padEnd(12)} ${String(elapsed).padStart(5)} ms`)
    return result
  })

const demo = Effect.gen(function*() {
  const executor = yield* ToolExecutor
  yield* Console.log("Loom executor demo: 4 tool calls (one with invalid input)\n")
  yield* timed("sequential", Effect.forEach(calls, (call) => executor.execute(call)))
  const results = yield* timed("parallel", executor.executeParallel(calls, { concurrency: 4 }))
  const graph = yield* ToolGraph.make([
    { id: "find", tool: "search", input: { query: "*", limit: 2 } },
    { id: "weather", tool: "weather", input: { city: "Paris" } },
    {
      id: "say",
      tool: "translate",
      dependsOn: ["find", "weather"],
      inputFrom: (outputs) => ({ text: `${outputs["find"]} ${JSON.stringify(outputs["weather"])}`, to: "de" })
    }
  ])
  const graphResults = yield* timed("graph", executor.executeGraph(graph))
  yield* Console.log("\nparallel results:")
  for (const result of results) {
    yield* Console.log(
      `  ${result.callId} ${result.tool.padEnd(9)} ${result.status.padEnd(9)} ${
        JSON.stringify(result.output ?? result.error)
      }`
    )
  }
  yield* Console.log("graph results:")
  for (const result of graphResults) {
    yield* Console.log(`  ${result.callId.padEnd(8)} ${result.status.padEnd(9)} ${JSON.stringify(result.output)}`)
  }
})

/** The coding workflow on the simulator: each finished node, then the verdict. */
const coding = Effect.gen(function*() {
  const engine = yield* WorkflowEngine
  const graph = yield* CodingWorkflow.make({ model: "qwen2.5-coder", maxAttempts: 3 })
  yield* Console.log("\nCoding workflow on the Ollama simulator (checkpointed to SQLite):\n")
  yield* engine.run(graph, CodingWorkflow.initial("Write a function add(a, b) that returns the sum")).pipe(
    Stream.runForEach((event) => {
      switch (event._tag) {
        case "NodeFinished": {
          const update = event.update as { readonly report?: RunTests.TestReport }
          const verdict = update.report ? (update.report.passed ? "  tests pass" : "  tests FAIL") : ""
          return Console.log(`  step ${String(event.step).padStart(2)}  ${event.node.padEnd(12)}${verdict}`)
        }
        case "WorkflowFinished":
          return Console.log(`\n  review: ${(event.state as CodingWorkflow.CodingState).review.split("\n")[0]}`)
        case "WorkflowFailed":
          return Console.log(`\n  failed: ${event.error.message}`)
        default:
          return Effect.void
      }
    })
  )
})

const Simulated = Layer.unwrapScoped(
  Effect.map(
    OllamaSimulator.make({ script: codingScript }),
    (simulator) => OllamaLanguageModel.layer({ hosts: [simulator.url] })
  )
)

/** Local tools, plus the tools of the MCP servers in LOOM_MCP_CONFIG (if set). */
const Registry = McpConnector.layerRegistry.pipe(
  Layer.provide(InMemoryToolRegistry.layer([...DemoTools.all, ...CpuTools.all, RunTests.tool])),
  Layer.provide(McpConnector.layerConfig)
)

const MainLive = Layer.mergeAll(
  ToolExecutor.layer({}).pipe(
    Layer.provide(Registry),
    Layer.provide(Layer.merge(NodeProcessRunner.layerConfig, NodeCpuRunner.layerConfig))
  ),
  WorkflowEngine.layer.pipe(Layer.provide(SqliteCheckpointStore.layerConfig)),
  Simulated,
  Registry
)

Effect.zipRight(demo, coding).pipe(
  Effect.provide(MainLive.pipe(Layer.provide(Timeouts.Timeouts.layerConfig))),
  NodeRuntime.runMain
)
