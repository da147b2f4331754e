/**
 * The composition root. Until the HTTP service lands, `npm start` runs a short demo
 * of the ToolExecutor: the same tool calls sequentially, in parallel and as a graph.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Clock, Console, Effect, Layer } from "effect"
import * as DemoTools from "./application/demo/DemoTools.js"
import { ToolExecutor } from "./application/ToolExecutor.js"
import * as ToolGraph from "./application/ToolGraph.js"
import { toolCall } from "./domain/ToolCall.js"
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

const MainLive = ToolExecutor.Default.pipe(Layer.provide(InMemoryToolRegistry.layer(DemoTools.all)))

demo.pipe(Effect.provide(MainLive), NodeRuntime.runMain)
