/** The worker entry for `TestTasks`. */
import { WorkerRunner } from "@effect/platform"
import { NodeRuntime, NodeWorkerRunner } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { threadId } from "node:worker_threads"
import { CpuTaskFailed } from "../../../src/domain/Cpu.js"
import { TestTask } from "./TestTasks.js"

const spin = (ms: number) => {
  const end = performance.now() + ms
  let iterations = 0
  while (performance.now() < end) iterations++
  return { threadId, iterations }
}

WorkerRunner.layerSerialized(TestTask, {
  Spin: ({ ms }) => Effect.sync(() => spin(ms)),
  Crash: () =>
    Effect.sync((): void => {
      process.exit(1)
    }),
  Throw: ({ message }) => Effect.fail(new CpuTaskFailed({ task: "Throw", message })),
  Lie: () => Effect.succeed("not a number" as unknown as number)
}).pipe(Layer.provide(NodeWorkerRunner.layer), WorkerRunner.launch, Effect.orDie, NodeRuntime.runMain)
