/** WorkerPool throughput on no-op jobs against p-queue at the same concurrency. */
import { Effect, Exit, Scope } from "effect"
import { WorkerPool } from "loom"
import PQueue from "p-queue"
import * as floors from "./floors.js"
import type { Scenario } from "./Scenario.js"
import { wallMs } from "./Scenario.js"

const jobs = 100_000
const concurrency = 8

const loomOnce = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const pool = yield* WorkerPool.make({ name: "bench", workers: concurrency, capacity: jobs, overflow: "reject" }).pipe(
    Scope.extend(scope)
  )
  // 1,024 callers keep the queue full; an unbounded fan-out would measure fiber start-up, not the pool.
  yield* Effect.forEach(Array.from({ length: jobs }), () => pool.submit(Effect.void), {
    concurrency: 1024,
    discard: true
  })
  yield* Scope.close(scope, Exit.void)
})

export const noop: Scenario = {
  id: "pool.noop-100k",
  unit: "jobs/s",
  better: "higher",
  runs: 5,
  loom: async () => jobs / ((await wallMs(() => Effect.runPromise(loomOnce))) / 1000),
  baseline: async () => {
    const queue = new PQueue({ concurrency })
    const ms = await wallMs(async () => {
      for (let i = 0; i < jobs; i++) void queue.add(() => undefined)
      await queue.onIdle()
    })
    return jobs / (ms / 1000)
  },
  floor: async () => jobs / ((await wallMs(() => Effect.runPromise(floors.pool(jobs, concurrency, 1024)))) / 1000)
}
