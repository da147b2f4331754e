import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Stream } from "effect"
import * as path from "node:path"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import { CheckpointStore } from "../../src/domain/CheckpointStore.js"
import { ProcessRunner, ProcessSpec } from "../../src/domain/Process.js"
import { ThreadId } from "../../src/domain/Workflow.js"
import * as SqliteCheckpointStore from "../../src/infrastructure/persistence/SqliteCheckpointStore.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import { scratchDir } from "../support/Scratch.js"
import { completions, diamond } from "../support/workflow/Graphs.js"

const script = new URL("../support/workflow/crash-run.ts", import.meta.url).pathname

describe("WorkflowEngine after a real crash", () => {
  it.live("a process killed mid-step leaves a checkpoint from which the run finishes, each node once", () => {
    const dir = scratchDir("loom-crash-")
    const db = path.join(dir, "loom.db")
    const log = path.join(dir, "log")
    const store = SqliteCheckpointStore.layer(db)
    return Effect.gen(function*() {
      const runner = yield* ProcessRunner
      const crashed = yield* runner.run(
        new ProcessSpec({ command: process.execPath, args: ["--import", "tsx", script, db, log, "crashy"] })
      )
      assert.strictEqual(crashed.signal, "SIGKILL", crashed.stderr)
      assert.deepStrictEqual(completions(log), { a: 1, c: 1 })

      // A new process (here: this one) opens the same database and resumes.
      const checkpoints = yield* CheckpointStore
      assert.strictEqual((yield* checkpoints.getRun(ThreadId.make("crashy"))).status, "running")
      const engine = yield* WorkflowEngine
      const events = yield* Stream.runCollect(engine.resume(yield* diamond(log), "crashy"))
      assert.strictEqual([...events].pop()?._tag, "WorkflowFinished")
      assert.deepStrictEqual(completions(log), { a: 1, b: 1, c: 1, d: 1 })
      assert.strictEqual((yield* checkpoints.getRun(ThreadId.make("crashy"))).status, "finished")
    }).pipe(
      Effect.provide(Layer.merge(
        WorkflowEngine.layer.pipe(Layer.provideMerge(store)),
        NodeProcessRunner.layer({ timeout: Duration.seconds(60) })
      ))
    )
  }, 90_000)
})
