/**
 * What the runs of a service are asked over the API: start one, resume a waiting one,
 * and the errors those requests get. Bodies refuse a field they do not list, by name.
 */
import { Schema } from "effect"
import { ThreadIdText } from "../domain/Workflow.js"

/**
 * What a start on a busy thread (one with a run not ended) does: `reject` it (409, the
 * default), `enqueue` it behind the thread's runs, `interrupt` them (each kept as
 * `interrupted`, superseded) or `rollback` them (each cancelled, its checkpoints and
 * events removed), the new run then starting at once. Under `reject` a thread id already
 * used, busy or not, is refused as it always was.
 */
export const Multitask = Schema.Literal("reject", "enqueue", "interrupt", "rollback").annotations({
  identifier: "Multitask"
})
export type Multitask = typeof Multitask.Type

export const RunRequest = Schema.Struct({
  kind: Schema.Literal("workflow", "agent"),
  /** The workflow (`coding`) or the agent (`assistant`) to run. */
  name: Schema.NonEmptyString,
  input: Schema.String,
  /** The thread to run on (default: a new UUID); see `threadIdPattern`. */
  threadId: Schema.optional(ThreadIdText),
  /** What to do when the thread already has a run (default `reject`). */
  multitask: Schema.optional(Multitask)
}).annotations({
  identifier: "RunRequest",
  description: "A run to start: the coding workflow or the assistant agent, on an input text",
  // the OpenAPI document says `additionalProperties: false`: a field it does not list is refused by name
  parseOptions: { onExcessProperty: "error" }
})
export type RunRequest = typeof RunRequest.Type

export const ResumeRequest = Schema.Struct({
  /** The value for the interrupt, as its resume schema encodes it. */
  value: Schema.Unknown,
  /** Which interrupt (its key, from the run's `waiting`); may be left out when the run waits on one only. */
  interrupt: Schema.optional(Schema.String)
}).annotations({
  identifier: "ResumeRequest",
  description: "A value for an interrupt the run waits on",
  parseOptions: { onExcessProperty: "error" }
})
export type ResumeRequest = typeof ResumeRequest.Type

/** The run is not waiting on that interrupt (or on any, or on one only when none was named). */
export class NotWaiting extends Schema.TaggedError<NotWaiting>()("NotWaiting", {
  threadId: Schema.String,
  /** The keys it waits on. */
  waiting: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** The value does not decode with the interrupt's resume schema; `field` is the first path that is wrong. */
export class InvalidResumeValue extends Schema.TaggedError<InvalidResumeValue>()("InvalidResumeValue", {
  threadId: Schema.String,
  key: Schema.String,
  field: Schema.String,
  message: Schema.String
}) {}

/** The request names a workflow or agent the service does not have. */
export class UnknownRunKind extends Schema.TaggedError<UnknownRunKind>()("UnknownRunKind", {
  kind: Schema.String,
  name: Schema.String,
  message: Schema.String
}) {}
