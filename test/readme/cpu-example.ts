// The README's CPU and process example, kept identical to it by README.test.ts.
import { Effect, Layer, Schema } from "effect"
import {
  CpuTools,
  InMemoryToolRegistry,
  NodeCpuRunner,
  NodeProcessRunner,
  Process,
  Timeouts,
  Tool,
  ToolCall,
  ToolExecutor
} from "loom"

// A process tool: its input arrives as JSON on stdin, its output is JSON on stdout.
const wordCount = Tool.process({
  name: "word_count",
  description: "Counts words with wc in a child process",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.Struct({ words: Schema.Int }),
  timeout: "5 seconds",
  command: ({ text }) =>
    new Process.ProcessSpec({
      command: "sh",
      args: ["-c", "printf '{\"words\":%d}' $(wc -w)"],
      stdin: text
    })
})

const program = Effect.gen(function*() {
  const executor = yield* ToolExecutor.ToolExecutor
  // Each call goes where its tool's kind says: worker threads for `cpu`, a child process for `process`.
  const [top, count] = yield* executor.executeParallel([
    ToolCall.toolCall("1", "vectors.top_k", { vectors: [[1, 0], [0, 1], [0.8, 0.6]], query: [1, 0.1], k: 2 }),
    ToolCall.toolCall("2", "word_count", { text: "three small words" })
  ])
  return { top: top?.output, count: count?.output }
})

const Live = ToolExecutor.ToolExecutor.layer({}).pipe(
  Layer.provide(InMemoryToolRegistry.layer([...CpuTools.all, wordCount])),
  Layer.provide(NodeCpuRunner.layerConfig), // MAX_WORKERS threads
  Layer.provide(NodeProcessRunner.layerConfig), // at most MAX_PROCESSES children
  Layer.provide(Timeouts.Timeouts.layerConfig) // deadlines, from LOOM_TIMEOUT_*
)

export const answer = program.pipe(Effect.provide(Live))
