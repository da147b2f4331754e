/** Executor scenarios: fan-out overhead over real timers, and DAG scheduling on the critical path. */
import { Effect, Layer, ManagedRuntime, Schema } from "effect"
import { InMemoryToolRegistry, Timeouts, Tool, ToolCall, ToolExecutor, ToolGraph } from "loom"
import { setTimeout as sleepMs } from "node:timers/promises"
import * as floors from "./floors.js"
import type { Scenario } from "./Scenario.js"
import { wallMs } from "./Scenario.js"

const sleep = Tool.make({
  name: "sleep",
  description: "waits on a real timer",
  input: Schema.Struct({ ms: Schema.Number }),
  output: Schema.Void,
  handler: ({ ms }) => Effect.sleep(ms)
})

const runtime = ManagedRuntime.make(
  ToolExecutor.ToolExecutor.layerIo({ concurrency: 100 }).pipe(
    Layer.provide([InMemoryToolRegistry.layer([sleep]), Timeouts.Timeouts.Default])
  )
)

const calls = Array.from({ length: 100 }, (_, i) => ToolCall.toolCall(`c${i}`, "sleep", { ms: 20 }))

export const fanout: Scenario = {
  id: "executor.fanout-100x20ms",
  unit: "ms",
  better: "lower",
  runs: 15,
  loom: () =>
    wallMs(() =>
      runtime.runPromise(Effect.flatMap(ToolExecutor.ToolExecutor, (executor) => executor.executeParallel(calls)))
    ),
  baseline: () => wallMs(() => Promise.all(calls.map(() => sleepMs(20)))),
  floor: () => wallMs(() => Effect.runPromise(floors.fanout(calls.length, 20)))
}

const diamond = ToolGraph.validate([
  { id: "A", tool: "sleep", input: { ms: 50 } },
  { id: "B", tool: "sleep", input: { ms: 50 }, dependsOn: ["A"] },
  { id: "C", tool: "sleep", input: { ms: 50 }, dependsOn: ["A"] },
  { id: "D", tool: "sleep", input: { ms: 50 }, dependsOn: ["B", "C"] }
])

export const dagDiamond: Scenario = {
  id: "executor.dag-diamond",
  unit: "ms",
  better: "lower",
  loom: () =>
    wallMs(() =>
      runtime.runPromise(
        Effect.flatMap(
          ToolExecutor.ToolExecutor,
          (executor) => Effect.flatMap(diamond, (graph) => executor.executeGraph(graph))
        )
      )
    ),
  // the critical path A -> B -> D: what a perfect scheduler would take
  baseline: async () => 150,
  // the same sleeps on Node's timers, which fire a little late each: what Effect itself takes for the path
  floor: () => wallMs(() => Effect.runPromise(floors.dagDiamond(50))),
  teardown: () => runtime.dispose()
}
