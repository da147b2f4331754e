// The README's library example, kept identical to it by README.test.ts and type-checked by tsc.
import { Effect, Layer, Schema } from "effect"
import { InMemoryToolRegistry, Timeouts, Tool, ToolCall, ToolExecutor, ToolGraph } from "loom"

const weather = Tool.make({
  name: "weather",
  description: "Current weather for a city",
  input: Schema.Struct({ city: Schema.NonEmptyString }),
  output: Schema.Struct({ celsius: Schema.Number }),
  timeout: "2 seconds",
  handler: ({ city }) => Effect.succeed({ celsius: city.length })
})

const program = Effect.gen(function*() {
  const executor = yield* ToolExecutor.ToolExecutor
  // In parallel, at most 4 at once; results come back in call order, each a ToolResult.
  const results = yield* executor.executeParallel([
    ToolCall.toolCall("1", "weather", { city: "Lisbon" }),
    ToolCall.toolCall("2", "weather", { city: "" }) // rejected: InvalidToolInput naming `city`
  ], { concurrency: 4 })
  // As a graph: a node starts as soon as its own dependencies are done.
  const graph = yield* ToolGraph.make([
    { id: "a", tool: "weather", input: { city: "Paris" } },
    { id: "b", tool: "weather", dependsOn: ["a"], inputFrom: (out) => ({ city: `near ${JSON.stringify(out.a)}` }) }
  ])
  const graphResults = yield* executor.executeGraph(graph)
  return [results, graphResults]
})

// `layerIo`: an executor for io tools; `layer` also routes cpu and process tools and so needs their runners.
const Live = ToolExecutor.ToolExecutor.layerIo({ concurrency: 8 }).pipe(
  Layer.provide([InMemoryToolRegistry.layer([weather]), Timeouts.Timeouts.Default])
)

Effect.runPromise(program.pipe(Effect.provide(Live))).then(console.log)
