// The README's human-in-the-loop example, kept identical to it by README.test.ts.
import { Effect, Layer, Schedule, Schema } from "effect"
import { EmbeddedRunner, Interrupt, RunManager, SqliteCheckpointStore, Workflow, WorkflowEngine } from "loom"

// What the person is shown, and what they answer: the answer is decoded before the run goes on.
const Approval = Interrupt.make("approval", {
  payload: Schema.Struct({ draft: Schema.String }),
  resume: Schema.Struct({ approved: Schema.Boolean, note: Schema.optional(Schema.String) })
})

const State = Schema.Struct({ draft: Schema.String, published: Schema.Boolean })

const publish = Workflow.make({
  name: "publish",
  state: State,
  start: "write",
  interrupts: [Approval],
  nodes: {
    write: (s) => Effect.succeed({ draft: `${s.draft}, written up` }),
    // the run waits here (status `waiting`) until it is resumed with a value, through restarts
    review: (s) => Effect.map(Approval.ask({ draft: s.draft }), ({ approved }) => ({ published: approved }))
  },
  edges: { write: "review" }
})

const program = Effect.gen(function*() {
  const engine = yield* WorkflowEngine.WorkflowEngine
  const kind = RunManager.runKind(engine, yield* publish, (_, draft) => ({ draft, published: false }))
  const runs = yield* RunManager.make({ workflows: [kind], maxRuns: 4 })
  const id = yield* runs.start({ kind: "workflow", name: "publish", input: "release notes", threadId: "notes-1" })
  const once = (status: string) =>
    runs.get(id).pipe(Effect.filterOrFail((run) => run.status === status), Effect.retry(Schedule.spaced("20 millis")))
  // what `GET /v1/runs/notes-1` shows: waiting, with the interrupt and its key
  const waiting = yield* once("waiting")
  // what `POST /v1/runs/notes-1/resume` and `loom runs resume notes-1 --value '{"approved":true}'` do
  yield* runs.resume(id, { value: { approved: true } })
  const done = yield* once("finished")
  return { asked: waiting.waiting?.map((interrupt) => interrupt.payload), status: done.status }
})

// a durable run needs the engine: here the embedded one, on a data directory
export const Live = (dataDir: string) =>
  Layer.merge(WorkflowEngine.WorkflowEngine.layer, EmbeddedRunner.layer(dataDir)).pipe(
    Layer.provideMerge(SqliteCheckpointStore.layer(`${dataDir}/loom.db`))
  )

export const runIn = (dataDir: string) => program.pipe(Effect.scoped, Effect.provide(Live(dataDir)))
