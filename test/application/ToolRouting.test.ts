import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Metric, Schema } from "effect"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import type * as Executor from "../../src/application/ToolExecutor.js"
import * as CpuTools from "../../src/application/tools/CpuTools.js"
import { ProcessSpec } from "../../src/domain/Process.js"
import * as Tool from "../../src/domain/Tool.js"
import type { ToolDefinition } from "../../src/domain/Tool.js"
import { toolCall } from "../../src/domain/ToolCall.js"
import * as CpuPool from "../../src/infrastructure/cpu/CpuPool.js"
import { chunkText } from "../../src/infrastructure/cpu/kernels/TextChunks.js"
import { estimateTokens } from "../../src/infrastructure/cpu/kernels/TokenEstimate.js"
import * as NodeCpuRunner from "../../src/infrastructure/cpu/NodeCpuRunner.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import * as MetricTags from "../../src/infrastructure/resilience/MetricTags.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"
import { executorLayer } from "../support/TestTools.js"

/** A `process` tool: a Node script that reads `{ a, b }` as JSON on stdin and prints `{ sum }`. */
const add = Tool.process({
  name: "add",
  description: "adds two numbers in a child process",
  input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
  output: Schema.Struct({ sum: Schema.Number, pid: Schema.Int }),
  command: () =>
    new ProcessSpec({
      command: process.execPath,
      args: [
        "-e",
        "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const {a,b}=JSON.parse(s);console.log(JSON.stringify({sum:a+b,pid:process.pid}))})"
      ]
    })
})

const script = (name: string, code: string) =>
  Tool.process({
    name,
    description: name,
    input: Schema.Struct({}),
    output: Schema.Struct({ ok: Schema.Boolean }),
    command: () => new ProcessSpec({ command: process.execPath, args: ["-e", code] })
  })

const runners = Layer.mergeAll(
  NodeCpuRunner.layer({ size: 1 }),
  NodeProcessRunner.layer({ timeout: Duration.seconds(10) })
)

const withTools = <A, E>(
  tools: ReadonlyArray<ToolDefinition>,
  body: (executor: Executor.Service) => Effect.Effect<A, E>
) =>
  Effect.flatMap(ToolExecutor, body).pipe(
    Effect.provide(
      ToolExecutor.layer().pipe(Layer.provide([InMemoryToolRegistry.layer(tools), Timeouts.Timeouts.Default, runners]))
    )
  )

const succeededOnPool = (task: string) =>
  Effect.map(
    Metric.value(MetricTags.tagged(CpuPool.tasks, { pool: "cpu", task, outcome: "succeeded" })),
    (state) => state.count
  )

describe("ToolExecutor routes by declared kind", () => {
  it.live(
    "cpu tools run on the worker-thread pool and answer as their kernels do",
    () =>
      withTools(CpuTools.all, (executor) =>
        Effect.gen(function*() {
          const before = yield* succeededOnPool("ChunkText")
          const text = "retrieval needs text cut into overlapping pieces ".repeat(40)
          const [chunks, top, tokens] = yield* executor.executeParallel([
            toolCall("c", "text.chunk", { text, size: 120, overlap: 20 }),
            toolCall("t", "vectors.top_k", { vectors: [[1, 0], [0, 1], [0.9, 0.1]], query: [1, 0], k: 2 }),
            toolCall("e", "text.estimate_tokens", { text: "four words right here" })
          ])
          assert.deepStrictEqual(chunks!.output, chunkText(text, 120, 20))
          assert.deepStrictEqual((top!.output as ReadonlyArray<{ index: number }>).map((m) => m.index), [0, 2])
          assert.strictEqual(tokens!.output, estimateTokens("four words right here"))
          assert.strictEqual((yield* succeededOnPool("ChunkText")) - before, 1)
        })),
    30_000
  )

  it.live(
    "bad cpu tool input is rejected before it reaches a thread, naming the field",
    () =>
      withTools(CpuTools.all, (executor) =>
        Effect.gen(function*() {
          const result = yield* executor.execute(
            toolCall("t", "vectors.top_k", { vectors: [[1, 0], [1, 0, 0]], query: [1, 0] })
          )
          assert.strictEqual(result.status, "rejected")
          assert.strictEqual(result.error?._tag === "InvalidToolInput" && result.error.field, "vectors.1")
        })),
    30_000
  )

  it.live(
    "process tools receive their input as JSON on stdin and return parsed output",
    () =>
      withTools([add], (executor) =>
        Effect.gen(function*() {
          const result = yield* executor.execute(toolCall("1", "add", { a: 2, b: 40 }))
          assert.strictEqual(result.status, "succeeded")
          const output = result.output as { sum: number; pid: number }
          assert.strictEqual(output.sum, 42)
          assert.notStrictEqual(output.pid, process.pid)
        })),
    30_000
  )

  it.live("a process tool that exits non-zero or prints the wrong shape fails with the reason", () =>
    withTools([
      script("exits", "console.error('no such file'); process.exit(2)"),
      script("lies", "console.log(JSON.stringify({ ok: 'yes' }))")
    ], (executor) =>
      Effect.gen(function*() {
        const [exits, lies] = yield* executor.executeParallel([toolCall("1", "exits", {}), toolCall("2", "lies", {})])
        assert.strictEqual(exits!.status, "failed")
        assert.include(exits!.error?.message, "code 2: no such file")
        assert.strictEqual(lies!.status, "failed")
        assert.include(lies!.error?.message, "ok")
      })), 30_000)

  it.effect("a cpu or process tool with no runner provided fails clearly instead of running on the event loop", () =>
    Effect.gen(function*() {
      const executor = yield* ToolExecutor
      const [cpu, proc] = yield* executor.executeParallel([
        toolCall("1", "text.estimate_tokens", { text: "x" }),
        toolCall("2", "add", { a: 1, b: 2 })
      ])
      assert.include(cpu!.error?.message, "no CpuRunner")
      assert.include(proc!.error?.message, "no ProcessRunner")
    }).pipe(Effect.provide(executorLayer([...CpuTools.all, add]))))
})
