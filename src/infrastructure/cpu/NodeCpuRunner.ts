/**
 * The CpuRunner on Node worker threads: a `CpuPool` of threads that answer the built-in
 * CPU tasks (`CpuWorker.ts`), sized by `MAX_WORKERS` (default: the machine's cores) and
 * started on demand,
 * with a bounded queue (`LOOM_CPU_QUEUE`) and an explicit overflow policy
 * (`LOOM_CPU_OVERFLOW=wait|reject`).
 */
import { Config, Effect, Layer } from "effect"
import * as os from "node:os"
import { Worker } from "node:worker_threads"
import { CpuRunner } from "../../domain/Cpu.js"
import type { CpuTask } from "../../domain/Cpu.js"
import type * as WorkerPool from "../resilience/WorkerPool.js"
import * as CpuPool from "./CpuPool.js"

export interface Options {
  readonly size: number
  readonly capacity: number
  readonly overflow: WorkerPool.Overflow
}

export const defaults: Options = {
  size: os.availableParallelism(),
  capacity: 256,
  overflow: "wait"
}

/**
 * The thread entry: compiled, the worker module beside this one; run from sources (tests,
 * tsx), a small ESM file that registers tsx in the thread and then loads the `.ts` worker.
 */
export const workerEntry = import.meta.url.endsWith(".ts")
  ? new URL("./cpu-worker.mjs", import.meta.url)
  : new URL("./CpuWorker.js", import.meta.url)

/** Threads start when the first CPU tasks come: a service that runs none holds none. */
export const make = (options: Options) =>
  Effect.map(
    CpuPool.make<CpuTask>({ name: "cpu", ...options, prestart: 0, spawn: () => new Worker(workerEntry) }),
    (pool) => CpuRunner.of({ run: pool.run, stats: pool.stats })
  )

export const layer = (options: Partial<Options> = {}) => Layer.scoped(CpuRunner, make({ ...defaults, ...options }))

const atLeastOne = Config.validate({
  message: "must be a whole number of 1 or more",
  validation: (n: number) => n >= 1
})

export const config: Config.Config<Options> = Config.all({
  size: Config.integer("MAX_WORKERS").pipe(atLeastOne, Config.withDefault(defaults.size)),
  capacity: Config.integer("LOOM_CPU_QUEUE").pipe(atLeastOne, Config.withDefault(defaults.capacity)),
  overflow: Config.literal("wait", "reject")("LOOM_CPU_OVERFLOW").pipe(Config.withDefault(defaults.overflow))
})

export const layerConfig = Layer.scoped(CpuRunner, Effect.flatMap(config, make))
