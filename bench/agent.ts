/**
 * Agent scenarios: 10,000 concurrent runs of one tool turn (two 10 ms tools) and an
 * answer, through AgentRuntime.AgentRuntime against the same loop by hand (async/await and
 * Promise.all); the peak memory of each, measured in a fresh process; and the cost of
 * SQLite checkpoints on a 20-node workflow.
 */
import { Effect, Layer, ManagedRuntime, Schema } from "effect"
import {
  AgentRuntime,
  InMemoryToolRegistry,
  SqliteCheckpointStore,
  Timeouts,
  Tool,
  ToolExecutor,
  Workflow,
  WorkflowEngine
} from "loom"
import type { Agent } from "loom"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleepMs } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import * as floors from "./floors.js"
import type { Scenario } from "./Scenario.js"
import { wallMs } from "./Scenario.js"
import * as ScriptedModel from "./ScriptedModel.js"

export const runs = 10_000

const wait = Tool.make({
  name: "wait",
  description: "waits like an I/O call",
  input: Schema.Struct({ ms: Schema.Number }),
  output: Schema.Struct({ waited: Schema.Number }),
  handler: ({ ms }) => Effect.as(Effect.sleep(ms), { waited: ms })
})

const agent: Agent.Agent = { name: "bench", model: "scripted", systemPrompt: "bench", tools: ["wait"] }

const registry = InMemoryToolRegistry.layer([wait])
export const agents = () =>
  ManagedRuntime.make(
    AgentRuntime.AgentRuntime.layer.pipe(
      Layer.provide(ToolExecutor.ToolExecutor.layerIo({ breaker: false })),
      Layer.provide([registry, Timeouts.Timeouts.Default]),
      Layer.provide(ScriptedModel.layer)
    )
  )

/** `runs` agent runs at once through AgentRuntime.AgentRuntime. */
export const loomRuns = (runtime: ReturnType<typeof agents>, n = runs) =>
  runtime.runPromise(
    Effect.flatMap(AgentRuntime.AgentRuntime, (runtime) =>
      Effect.forEach(Array.from({ length: n }), () =>
        runtime.answer(agent, "go"), {
        concurrency: "unbounded",
        discard: true
      }))
  )

/** The same loop written by hand. */
export const handRuns = async (n = runs) => {
  const one = async () => {
    const messages: Array<{ role: string; content: string }> = [{ role: "system", content: "bench" }, {
      role: "user",
      content: "go"
    }]
    for (let step = 0; step < 8; step++) {
      const response = ScriptedModel.next(await Promise.resolve(messages))
      if (response.message.toolCalls.length === 0) return response.message.content
      const results = await Promise.all(
        response.message.toolCalls.map(async (call) => {
          const ms = (call.arguments as { ms: number }).ms
          await sleepMs(ms)
          return JSON.stringify({ waited: ms })
        })
      )
      messages.push({ role: "assistant", content: "" }, ...results.map((content) => ({ role: "tool", content })))
    }
    throw new Error("too many steps")
  }
  await Promise.all(Array.from({ length: n }, one))
}

let runtime: ReturnType<typeof agents> | undefined

export const runs10k: Scenario = {
  id: "agent.runs-10k",
  unit: "ms",
  better: "lower",
  // a Loom run takes ~3 s here and its time swings with GC: five runs after one warm-up, the median kept
  warmups: 1,
  runs: 5,
  setup: async () => {
    runtime = agents()
  },
  loom: () => wallMs(() => loomRuns(runtime!)),
  baseline: () => wallMs(() => handRuns()),
  floor: () => wallMs(() => Effect.runPromise(floors.agentRuns(runs, 10))),
  teardown: async () => {
    await runtime?.dispose()
  }
}

const child = fileURLToPath(new URL("./agent-rss.js", import.meta.url))
/** Peak RSS growth (MB) of one side, in a fresh process. */
const peakMb = (side: "loom" | "hand" | "floor") =>
  Promise.resolve(
    Number(execFileSync(process.execPath, [child, side], { encoding: "utf8" }).trim())
  )

export const runs10kRss: Scenario = {
  id: "agent.runs-10k-rss",
  unit: "MB",
  better: "lower",
  warmups: 0,
  runs: 2,
  loom: () => peakMb("loom"),
  baseline: () => peakMb("hand"),
  // the cheapest Effect program with the same fibers alive at once (three per run)
  floor: () => peakMb("floor")
}

/** Nodes in the linear workflow, each its own step, so each checkpointed. */
export const linearNodes = 20

const Steps = Schema.Struct({ count: Schema.Int })
/** A linear graph of `linearNodes` nodes, each adding one to `count` (also `workflow.durable-overhead`'s graph). */
export const linear = Workflow.make({
  name: "linear",
  state: Steps,
  start: "n0",
  nodes: Object.fromEntries(
    Array.from(
      { length: linearNodes },
      (_, i) => [`n${i}`, (s: typeof Steps.Type) => Effect.succeed({ count: s.count + 1 })]
    )
  ),
  edges: Object.fromEntries(Array.from({ length: linearNodes - 1 }, (_, i) => [`n${i}`, `n${i + 1}`]))
})

const workflowRuns = 20

type Engines = ManagedRuntime.ManagedRuntime<WorkflowEngine.WorkflowEngine, never>

/** The two engines and the database directory, made in setup so other scenarios never pay for them. */
let engines:
  | { readonly dir: string; readonly withCheckpoints: Engines; readonly inMemory: Engines }
  | undefined

/** `workflowRuns` runs of the linear graph, one after another. */
const linearRuns = Effect.gen(function*() {
  const engine = yield* WorkflowEngine.WorkflowEngine
  const graph = yield* linear
  for (let i = 0; i < workflowRuns; i++) yield* engine.invoke(graph, { count: 0 })
})

const invokeLinear = (runtime: Engines) => wallMs(() => runtime.runPromise(linearRuns)).then((ms) => ms / workflowRuns)

export const checkpointOverhead: Scenario = {
  id: "workflow.checkpoint-overhead",
  unit: "ms",
  better: "lower",
  setup: async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loom-bench-"))
    engines = {
      dir,
      withCheckpoints: ManagedRuntime.make(
        WorkflowEngine.WorkflowEngine.layer.pipe(
          Layer.provide(SqliteCheckpointStore.layer(path.join(dir, "loom.db")))
        )
      ),
      inMemory: ManagedRuntime.make(WorkflowEngine.WorkflowEngine.layerMemory)
    }
  },
  loom: () => invokeLinear(engines!.withCheckpoints),
  baseline: () => invokeLinear(engines!.inMemory),
  derive: ({ baseline, loom }) => ({ addedMsPerNode: (loom - baseline) / linearNodes }),
  teardown: async () => {
    if (!engines) return
    await engines.withCheckpoints.dispose()
    await engines.inMemory.dispose()
    fs.rmSync(engines.dir, { recursive: true, force: true })
    engines = undefined
  }
}
