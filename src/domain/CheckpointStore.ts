/**
 * Where workflow runs are kept: a checkpoint after every step (state + the nodes to run
 * next), the writes of nodes that finished inside an unfinished step, and each run's
 * event history. A run resumes from its last checkpoint plus those writes, so no
 * finished node runs twice.
 */
import type { Effect, Option } from "effect"
import { Context, Schema } from "effect"
import type { CheckpointCorrupt, RunExists, RunNotFound, RunRecord, RunStatus, ThreadId } from "./Workflow.js"
import type { WorkflowEvent } from "./Workflow.js"

export class Checkpoint extends Schema.Class<Checkpoint>("Checkpoint")({
  step: Schema.NonNegativeInt,
  /** The state, encoded with the graph's state Schema. */
  state: Schema.Unknown,
  /** The nodes of step `step`, still to run. */
  next: Schema.Array(Schema.String)
}) {}

/** A node's update from a step that has not finished yet. */
export class PendingWrite extends Schema.Class<PendingWrite>("PendingWrite")({
  step: Schema.NonNegativeInt,
  node: Schema.String,
  update: Schema.Unknown
}) {}

/** A run ends once (finished, failed, cancelled); until then it may run, be interrupted and resume. */
export const canMove = (from: RunStatus, to: RunStatus): boolean => {
  if (from === "finished" || from === "cancelled") return false
  if (to === "running") return true
  if (from === "failed") return to === "failed"
  return to !== "interrupted" || from === "running"
}

export interface StoredEvent {
  readonly seq: number
  readonly event: WorkflowEvent
}

export interface Saved {
  readonly run: RunRecord
  readonly checkpoint: Checkpoint
  readonly writes: ReadonlyArray<PendingWrite>
}

export interface Service {
  /** Records a new run with its first checkpoint. */
  readonly create: (
    threadId: ThreadId,
    workflow: string,
    checkpoint: Checkpoint,
    events: ReadonlyArray<WorkflowEvent>
  ) => Effect.Effect<void, RunExists>
  /** Keeps one node's update (with its events) until its step's checkpoint is saved. */
  readonly saveWrite: (
    threadId: ThreadId,
    write: PendingWrite,
    events: ReadonlyArray<WorkflowEvent>
  ) => Effect.Effect<void>
  /** Saves a step's checkpoint and events in one transaction, dropping the step's pending writes. */
  readonly saveCheckpoint: (
    threadId: ThreadId,
    checkpoint: Checkpoint,
    events: ReadonlyArray<WorkflowEvent>
  ) => Effect.Effect<void>
  /**
   * Moves a run to `status` (with its events) only if that is a legal move from where
   * it is (see `canMove`): a late writer never turns a finished run into another.
   * Tells whether the move happened.
   */
  readonly setStatus: (
    threadId: ThreadId,
    status: RunStatus,
    events: ReadonlyArray<WorkflowEvent>,
    error?: string
  ) => Effect.Effect<boolean>
  /** The last checkpoint of a run and the writes made after it. */
  readonly load: (threadId: ThreadId) => Effect.Effect<Option.Option<Saved>, CheckpointCorrupt>
  readonly getRun: (threadId: ThreadId) => Effect.Effect<RunRecord, RunNotFound>
  readonly listRuns: Effect.Effect<ReadonlyArray<RunRecord>>
  /** A run's events after `afterSeq` (all by default), in order. */
  readonly events: (
    threadId: ThreadId,
    afterSeq?: number
  ) => Effect.Effect<ReadonlyArray<StoredEvent>, RunNotFound | CheckpointCorrupt>
}

export class CheckpointStore extends Context.Tag("loom/CheckpointStore")<CheckpointStore, Service>() {}
