/**
 * The worker-thread entry of the CPU pool: it answers the built-in CPU tasks with the
 * pure kernels. Compiled, threads start on this module directly; from sources, through
 * `cpu-worker.mjs`, which registers tsx first.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeWorkerRunner from "@effect/platform-node/NodeWorkerRunner"
import * as WorkerRunner from "@effect/platform/WorkerRunner"
import { Effect, Layer } from "effect"
import { ChunkText, CosineTopK, CpuTask, CpuTaskFailed, EstimateTokens } from "../../domain/Cpu.js"
import { cosineTopK } from "./kernels/CosineTopK.js"
import { chunkText } from "./kernels/TextChunks.js"
import { estimateTokens } from "./kernels/TokenEstimate.js"

const attempt = <A>(task: string, f: () => A) =>
  Effect.try({ try: f, catch: (error) => new CpuTaskFailed({ task, message: String(error) }) })

const handlers = {
  ChunkText: (task: ChunkText) => attempt("ChunkText", () => chunkText(task.text, task.size, task.overlap)),
  CosineTopK: (task: CosineTopK) =>
    attempt(
      "CosineTopK",
      () =>
        cosineTopK(new Float32Array(task.matrix, 0, task.rows * task.dims), task.rows, task.dims, task.query, task.k)
    ),
  EstimateTokens: (task: EstimateTokens) => attempt("EstimateTokens", () => estimateTokens(task.text))
}

WorkerRunner.layerSerialized(CpuTask, handlers).pipe(
  Layer.provide(NodeWorkerRunner.layer),
  WorkerRunner.launch,
  Effect.orDie,
  NodeRuntime.runMain
)
