/**
 * Time travel: a run's checkpoints as its events record them (the state after each
 * step, and the nodes it had next), and the request that starts a new run from one of
 * them with some of its state changed.
 */
import { Schema } from "effect"
import type { WorkflowEvent } from "../domain/Workflow.js"
import { ThreadIdText } from "../domain/Workflow.js"

/** One checkpoint of a run's history: after step `step`, its state and the nodes to run next. */
export const HistoryEntry = Schema.Struct({
  step: Schema.NonNegativeInt,
  next: Schema.Array(Schema.String),
  state: Schema.Unknown
}).annotations({ identifier: "HistoryEntry" })
export type HistoryEntry = typeof HistoryEntry.Type

/** The checkpoints in a run's events, oldest first (each step's state comes just before its checkpoint). */
export const historyOf = (events: Iterable<WorkflowEvent>): ReadonlyArray<HistoryEntry> => {
  const entries: Array<HistoryEntry> = []
  let state: { readonly step: number; readonly state: unknown } | undefined
  for (const event of events) {
    if (event._tag === "StateUpdated") state = event
    else if (event._tag === "CheckpointSaved" && state?.step === event.step) {
      entries.push({ step: event.step, next: event.next, state: state.state })
    }
  }
  return entries
}

export const ForkRequest = Schema.Struct({
  /** The checkpoint to start from (a step in the run's history). */
  step: Schema.NonNegativeInt,
  /** Fields to change, merged into that checkpoint's state through the graph's reducers. */
  state: Schema.optional(Schema.Unknown),
  /** The new run's id (default: a new UUID). */
  threadId: Schema.optional(ThreadIdText)
}).annotations({
  identifier: "ForkRequest",
  description: "A new run from one of a run's checkpoints, with some of its state changed",
  parseOptions: { onExcessProperty: "error" }
})
export type ForkRequest = typeof ForkRequest.Type

/** The run has no checkpoint at that step. */
export class StepNotFound extends Schema.TaggedError<StepNotFound>()("StepNotFound", {
  threadId: Schema.String,
  step: Schema.Number,
  /** The steps it has checkpoints for. */
  steps: Schema.Array(Schema.Number),
  message: Schema.String
}) {}

/** The state update does not fit the graph's state; `field` is the first path that is wrong. */
export class InvalidForkState extends Schema.TaggedError<InvalidForkState>()("InvalidForkState", {
  field: Schema.String,
  message: Schema.String
}) {}
