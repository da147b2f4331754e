/**
 * The built-in CPU tasks, as the messages that cross the thread boundary. Each is a
 * Schema.TaggedRequest, so requests and results are encoded and decoded on both sides.
 */
import { Schema } from "effect"

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
