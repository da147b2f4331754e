/**
 * Runs the diamond workflow in its own process and kills that process (SIGKILL, no
 * clean-up) in node b, once node c's update is safely in the database: a real crash in
 * the middle of a step. Arguments: database file, log file, thread id.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Option, Schedule, Stream } from "effect"
import { WorkflowEngine } from "../../../src/application/WorkflowEngine.js"
import { CheckpointStore } from "../../../src/domain/CheckpointStore.js"
import { ThreadId } from "../../../src/domain/Workflow.js"
import * as SqliteCheckpointStore from "../../../src/infrastructure/persistence/SqliteCheckpointStore.js"
import { diamond } from "./Graphs.js"

const [db, log, thread] = process.argv.slice(2) as [string, string, string]
const threadId = ThreadId.make(thread)

const program = Effect.gen(function*() {
  const store = yield* CheckpointStore
  const engine = yield* WorkflowEngine
  const cSaved = store.load(threadId).pipe(
    Effect.map(Option.exists((saved) => saved.writes.some((write) => write.node === "c"))),
    Effect.repeat({ until: (saved) => saved, schedule: Schedule.spaced("5 millis") })
  )
  const crash = Effect.sync(() => process.kill(process.pid, "SIGKILL"))
  const graph = yield* diamond(log, Effect.zipRight(Effect.orDie(cSaved), crash))
  yield* Stream.runDrain(engine.run(graph, { input: "crash", visited: [] }, { threadId }))
})

program.pipe(
  Effect.provide(WorkflowEngine.layer.pipe(Layer.provideMerge(SqliteCheckpointStore.layer(db)))),
  NodeRuntime.runMain
)
