/**
 * What a durable execution costs: `checkpoint-overhead`'s linear graph run as the body of
 * an @effect/workflow execution on the embedded runner (its messages in `cluster.db`,
 * each node an Activity, as `RunManager` runs a service's runs), against the same graph
 * on the same SQLite store without the engine.
 */
import * as DurableWorkflow from "@effect/workflow/Workflow"
import type * as DurableEngine from "@effect/workflow/WorkflowEngine"
import { Effect, Layer, ManagedRuntime, Schema } from "effect"
import { Durability, DurableRun, EmbeddedRunner, SqliteCheckpointStore, WorkflowEngine } from "loom"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { linear, linearNodes } from "./agent.js"
import type { Scenario } from "./Scenario.js"
import { wallMs } from "./Scenario.js"

/** Executions per measure, one after another. */
const executions = 20

/** The bench's execution: one run of the linear graph, under the execution's id as its Loom thread id. */
const LinearRun = DurableWorkflow.make({
  name: "BenchLinearRun",
  payload: { id: Schema.String },
  idempotencyKey: ({ id }) => id,
  success: Schema.Int
})

/** The execution's body: the graph on Loom's engine, each node an Activity of the execution. */
const registered = Layer.unwrapEffect(
  Effect.map(Effect.orDie(linear), (graph) =>
    LinearRun.toLayer(({ id }) =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine.WorkflowEngine
        const context = yield* Effect.context<DurableEngine.WorkflowEngine | DurableEngine.WorkflowInstance>()
        const final = yield* engine.invoke(graph, { count: 0 }, { threadId: id }).pipe(
          Effect.provideService(Durability.Durability, DurableRun.activities(context)),
          Effect.orDie
        )
        return final.count
      })
    ))
)

/** Loom's engine on the SQLite store in `dir`, the durable engine on the embedded runner there, the bench's workflow. */
const layer = (dir: string) =>
  registered.pipe(
    Layer.provideMerge(WorkflowEngine.WorkflowEngine.layer),
    Layer.provideMerge(EmbeddedRunner.layer(dir)),
    Layer.provide(SqliteCheckpointStore.layer(path.join(dir, "loom.db")))
  )

type Runtime = ManagedRuntime.ManagedRuntime<Layer.Layer.Success<ReturnType<typeof layer>>, never>

let state: { readonly dir: string; readonly runtime: Runtime } | undefined
let measures = 0

/** `executions` durable executions of the graph, one after another, each awaited to its result: ms per execution. */
const durableRuns = (runtime: Runtime) => {
  const measure = ++measures
  return wallMs(() =>
    runtime.runPromise(Effect.gen(function*() {
      for (let i = 0; i < executions; i++) {
        const count = yield* LinearRun.execute({ id: `durable-${measure}-${i}` })
        if (count !== linearNodes) return yield* Effect.dieMessage(`the run ended at ${count}`)
      }
    }))
  ).then((ms) => ms / executions)
}

/** The same runs on the same store, straight through Loom's engine. */
const directRuns = (runtime: Runtime) =>
  wallMs(() =>
    runtime.runPromise(Effect.gen(function*() {
      const engine = yield* WorkflowEngine.WorkflowEngine
      const graph = yield* linear
      for (let i = 0; i < executions; i++) yield* engine.invoke(graph, { count: 0 })
    }))
  ).then((ms) => ms / executions)

export const durableOverhead: Scenario = {
  id: "workflow.durable-overhead",
  unit: "ms",
  better: "lower",
  setup: async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loom-bench-durable-"))
    state = { dir, runtime: ManagedRuntime.make(layer(dir)) }
  },
  loom: () => durableRuns(state!.runtime),
  baseline: () => directRuns(state!.runtime),
  derive: ({ baseline, loom }) => ({ addedMsPerNode: (loom - baseline) / linearNodes }),
  teardown: async () => {
    if (!state) return
    await state.runtime.dispose()
    fs.rmSync(state.dir, { recursive: true, force: true })
    state = undefined
  }
}
