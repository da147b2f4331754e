/**
 * CPU pool scenarios: 200 cosine top-k searches over 20,000 x 384 float32 vectors held
 * in one SharedArrayBuffer (threads read it in place; no task copies a vector), on the
 * CpuPool against the main thread and against piscina with the same thread count.
 */
import { Effect, Exit, Scope } from "effect"
import { CosineTopK, Cpu, CpuPool, NodeCpuRunner } from "loom"
import * as os from "node:os"
import { Worker } from "node:worker_threads"
import { Piscina } from "piscina"
import type { Scenario } from "./Scenario.js"
import { wallMs } from "./Scenario.js"

const rows = 20_000
const dims = 384
const searches = 200
const k = 10
const threads = os.availableParallelism()

/** Deterministic pseudo-random numbers in [-1, 1). */
const random = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return (seed / 2147483648) * 2 - 1
}

/** The vectors (shared with the threads) and the queries, made in setup so other scenarios never pay for them. */
const makeData = () => {
  const matrix = new SharedArrayBuffer(rows * dims * Float32Array.BYTES_PER_ELEMENT)
  const next = random(7)
  const view = new Float32Array(matrix)
  for (let i = 0; i < view.length; i++) view[i] = next()
  const queries = Array.from({ length: searches }, (_, q) => Array.from({ length: dims }, random(1000 + q)))
  return { matrix, queries }
}

interface Pools {
  readonly matrix: SharedArrayBuffer
  readonly queries: ReadonlyArray<ReadonlyArray<number>>
  readonly scope: Scope.CloseableScope
  readonly loom: CpuPool.CpuPool<Cpu.CpuTask>
  readonly piscina: Piscina
}

let pools: Pools | undefined
const current = (): Pools => {
  if (!pools) throw new Error("bench setup did not run")
  return pools
}

const start = async () => {
  if (pools) return
  const scope = await Effect.runPromise(Scope.make())
  const loom = await Effect.runPromise(
    CpuPool.make<Cpu.CpuTask>({
      name: "bench",
      size: threads,
      capacity: searches,
      overflow: "wait",
      spawn: () => new Worker(NodeCpuRunner.workerEntry)
    }).pipe(Scope.extend(scope))
  )
  const piscina = new Piscina({
    filename: new URL("./topk-worker.mjs", import.meta.url).href,
    minThreads: threads,
    maxThreads: threads
  })
  pools = { ...makeData(), scope, loom, piscina }
}

const stop = async () => {
  if (!pools) return
  await pools.piscina.destroy()
  await Effect.runPromise(Scope.close(pools.scope, Exit.void))
  pools = undefined
}

const perSecond = (ms: number) => searches / (ms / 1000)

const onLoom = async () => {
  const { loom, matrix, queries } = current()
  return perSecond(
    await wallMs(() =>
      Effect.runPromise(
        Effect.forEach(queries, (query) => loom.run(new Cpu.CosineTopK({ matrix, rows, dims, query, k })), {
          concurrency: "unbounded",
          discard: true
        })
      )
    )
  )
}

/** Both scenarios time the same searches on the CpuPool; only the baseline differs. */
const onPool = (id: string, baseline: () => Promise<number>): Scenario => ({
  id,
  unit: "tasks/s",
  better: "higher",
  warmups: 1,
  runs: 5,
  setup: start,
  loom: onLoom,
  baseline,
  teardown: stop
})

export const topkVsMain = onPool("cpu.topk-vs-main", async () => {
  const { matrix, queries } = current()
  const view = new Float32Array(matrix)
  return perSecond(
    await wallMs(async () => {
      for (const query of queries) CosineTopK.cosineTopK(view, rows, dims, query, k)
    })
  )
})

export const topkVsPiscina = onPool("cpu.topk-vs-piscina", async () => {
  const { matrix, piscina, queries } = current()
  return perSecond(
    await wallMs(() => Promise.all(queries.map((query) => piscina.run({ matrix, rows, dims, query, k }))))
  )
})
