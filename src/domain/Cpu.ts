/**
 * CPU-bound work off the event loop: the built-in tasks, as the messages that cross
 * the thread boundary (each a Schema.TaggedRequest, so requests and results are
 * encoded and decoded on both sides), their errors, and the port that runs them.
 * The `cpu` kind of tool is built on this.
 */
import type { Effect } from "effect"
import { Context, Schema } from "effect"
import type { QueueFull, Shutdown, Timeout } from "./Errors.js"
import type { PoolStats } from "./PoolStats.js"

/** A task's own failure inside the worker (bad input, a thrown error). */
export class CpuTaskFailed extends Schema.TaggedError<CpuTaskFailed>()("CpuTaskFailed", {
  task: Schema.String,
  message: Schema.String
}) {}

/** Shared memory travels by reference: posting it to a worker copies no vector. */
export const SharedBuffer = Schema.declare(
  (u: unknown): u is SharedArrayBuffer => u instanceof SharedArrayBuffer,
  { identifier: "SharedArrayBuffer" }
)

export class ChunkText extends Schema.TaggedRequest<ChunkText>()("ChunkText", {
  failure: CpuTaskFailed,
  success: Schema.Array(Schema.String),
  payload: {
    text: Schema.String,
    size: Schema.Int.pipe(Schema.positive()),
    overlap: Schema.NonNegativeInt
  }
}) {}

export class CosineTopK extends Schema.TaggedRequest<CosineTopK>()("CosineTopK", {
  failure: CpuTaskFailed,
  success: Schema.Array(Schema.Struct({ index: Schema.Int, score: Schema.Number })),
  payload: {
    matrix: SharedBuffer,
    rows: Schema.NonNegativeInt,
    dims: Schema.Int.pipe(Schema.positive()),
    query: Schema.Array(Schema.Number),
    k: Schema.Int.pipe(Schema.positive())
  }
}) {}

export class EstimateTokens extends Schema.TaggedRequest<EstimateTokens>()("EstimateTokens", {
  failure: CpuTaskFailed,
  success: Schema.NonNegativeInt,
  payload: { text: Schema.String }
}) {}

export const CpuTask = Schema.Union(ChunkText, CosineTopK, EstimateTokens)
export type CpuTask = typeof CpuTask.Type

/** The thread running a task died or could not start. */
export class CpuWorkerCrashed extends Schema.TaggedError<CpuWorkerCrashed>()("CpuWorkerCrashed", {
  pool: Schema.String,
  message: Schema.String
}) {}

/** A task or its result did not survive encoding across the thread boundary. */
export class CpuProtocolError extends Schema.TaggedError<CpuProtocolError>()("CpuProtocolError", {
  pool: Schema.String,
  message: Schema.String
}) {}

/** Why a pool could not give a task its answer (the task's own failure aside). */
export type CpuPoolError = CpuWorkerCrashed | CpuProtocolError | QueueFull | Shutdown | Timeout

export interface CpuStats extends PoolStats {
  /** Threads replaced after a crash or an interrupted task. */
  readonly restarts: number
}

export interface Service {
  /** Runs `task` on a worker thread; interrupting the caller cancels the task. */
  readonly run: <Req extends CpuTask>(
    task: Req
  ) => Effect.Effect<Schema.WithResult.Success<Req>, Schema.WithResult.Failure<Req> | CpuPoolError>
  readonly stats: Effect.Effect<CpuStats>
}

export class CpuRunner extends Context.Tag("loom/CpuRunner")<CpuRunner, Service>() {}
