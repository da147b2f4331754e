// The README's workflow example, kept identical to it by README.test.ts.
import { Effect, Layer, Schema, Stream } from "effect"
import { SqliteCheckpointStore, Workflow, WorkflowEngine } from "loom"

const State = Schema.Struct({ drafts: Schema.Array(Schema.String), approved: Schema.Boolean })

const review = Workflow.make({
  name: "review",
  state: State,
  start: "draft",
  nodes: {
    draft: (s) => Effect.succeed({ drafts: [`draft ${s.drafts.length + 1}`] }),
    // two reviewers run in parallel; their updates merge through the reducers
    style: () => Effect.succeed({}),
    facts: (s) => Effect.succeed({ approved: s.drafts.length >= 2 })
  },
  edges: {
    draft: ["style", "facts"],
    facts: (s) => (s.approved ? Workflow.END : "draft")
  },
  reducers: { drafts: Workflow.append }
})

const program = Effect.gen(function*() {
  const engine = yield* WorkflowEngine.WorkflowEngine
  const graph = yield* review
  // Every step is checkpointed; after a crash, `engine.resume(graph, "doc-42")` carries on.
  const events = yield* Stream.runCollect(
    engine.run(graph, { drafts: [], approved: false }, { threadId: "doc-42" })
  )
  return [...events].map((event) => event._tag)
})

export const Live = (dataDir: string) =>
  WorkflowEngine.WorkflowEngine.layer.pipe(
    Layer.provide(SqliteCheckpointStore.layer(`${dataDir}/loom.db`))
  )

export const runIn = (dataDir: string) => program.pipe(Effect.provide(Live(dataDir)))
