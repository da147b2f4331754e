/**
 * What a workflow run leaves behind: its events, its record, and the errors that end it.
 * States and node updates travel Schema-encoded (JSON values), so events can be stored,
 * streamed over SSE and replayed without knowing a graph's state type.
 */
import { Schema } from "effect"
import { Usage, zero } from "./Usage.js"

/**
 * What a thread id may be: 1 to 128 letters, digits and `_ . : -`, starting with a letter
 * or digit (UUIDs, which the service makes, fit). Ids travel in URLs, logs and SSE, so
 * none holds whitespace, line breaks, slashes or quotes.
 */
export const threadIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/

/** A thread id as text, checked against `threadIdPattern` (for payloads, whose callers pass plain strings). */
export const ThreadIdText = Schema.String.pipe(
  Schema.pattern(threadIdPattern, {
    message: () => "a thread id is 1-128 letters, digits, _ . : or -, starting with a letter or digit",
    description: "1-128 letters, digits, _ . : or -, starting with a letter or digit"
  })
)

export const ThreadId = ThreadIdText.pipe(Schema.brand("ThreadId"))
export type ThreadId = typeof ThreadId.Type

/**
 * `waiting`: a node asked a person for a value (an interrupt) and the run waits for it to
 * be resumed with one. `queued`: the run was started on a busy thread (`enqueue`) and
 * waits for the thread's earlier runs to end.
 */
export const RunStatus = Schema.Literal(
  "queued",
  "running",
  "waiting",
  "finished",
  "failed",
  "interrupted",
  "cancelled"
)
export type RunStatus = typeof RunStatus.Type

/** The run went past its graph's step limit. */
export class StepLimitExceeded extends Schema.TaggedError<StepLimitExceeded>()("StepLimitExceeded", {
  threadId: Schema.String,
  maxSteps: Schema.Int
}) {}

/**
 * A node failed. `reason` is the tag of its error (a string here, so the event stays one
 * schema for every graph; `Workflow.RunError<E>` narrows it to the tags of a graph's
 * node errors), or `InvalidUpdate` / `InvalidState` when the update or the merged state
 * does not encode.
 */
export class NodeFailed extends Schema.TaggedError<NodeFailed>()("NodeFailed", {
  node: Schema.String,
  reason: Schema.String,
  message: Schema.String
}) {}

/** Stored run data that does not decode: the run cannot resume from it. */
export class CheckpointCorrupt extends Schema.TaggedError<CheckpointCorrupt>()("CheckpointCorrupt", {
  threadId: Schema.String,
  message: Schema.String
}) {}

export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", {
  threadId: Schema.String
}) {
  override get message() {
    return `no run ${this.threadId}`
  }
}

/** A run with this thread id exists already: resume it instead. */
export class RunExists extends Schema.TaggedError<RunExists>()("RunExists", {
  threadId: Schema.String
}) {}

/** A conditional edge chose a node the graph does not have. */
export class UnknownNode extends Schema.TaggedError<UnknownNode>()("UnknownNode", {
  from: Schema.String,
  node: Schema.String
}) {}

/** The run died of a defect (a bug, or a database that failed); its last checkpoint stands. */
export class RunCrashed extends Schema.TaggedError<RunCrashed>()("RunCrashed", {
  threadId: Schema.String,
  message: Schema.String
}) {}

export const WorkflowError = Schema.Union(
  RunCrashed,
  StepLimitExceeded,
  NodeFailed,
  CheckpointCorrupt,
  RunNotFound,
  RunExists,
  UnknownNode
)
export type WorkflowError = typeof WorkflowError.Type

export class NodeStarted extends Schema.TaggedClass<NodeStarted>()("NodeStarted", {
  step: Schema.Int,
  node: Schema.String
}) {}

/** A node's update; `usage` is what its model calls spent, absent when it made none. */
export class NodeFinished extends Schema.TaggedClass<NodeFinished>()("NodeFinished", {
  step: Schema.Int,
  node: Schema.String,
  update: Schema.Unknown,
  usage: Schema.optional(Usage)
}) {}

/** The merged state after a step. */
export class StateUpdated extends Schema.TaggedClass<StateUpdated>()("StateUpdated", {
  step: Schema.Int,
  state: Schema.Unknown
}) {}

export class CheckpointSaved extends Schema.TaggedClass<CheckpointSaved>()("CheckpointSaved", {
  step: Schema.Int,
  next: Schema.Array(Schema.String)
}) {}

/** The final state, with what the whole run spent (over every resume). */
export class WorkflowFinished extends Schema.TaggedClass<WorkflowFinished>()("WorkflowFinished", {
  state: Schema.Unknown,
  usage: Schema.optional(Usage)
}) {}

/** Why the run ended, with what it spent until then (absent when it is not this run's failure). */
export class WorkflowFailed extends Schema.TaggedClass<WorkflowFailed>()("WorkflowFailed", {
  error: WorkflowError,
  usage: Schema.optional(Usage)
}) {}

/**
 * A node asked a person for a value: the run waits until it is resumed with one for
 * `key` (unique within the run: step, node, the interrupt's name and its count in the node).
 */
export class Interrupted extends Schema.TaggedClass<Interrupted>()("Interrupted", {
  step: Schema.Int,
  node: Schema.String,
  /** The interrupt's name, as the graph declares it. */
  name: Schema.String,
  key: Schema.String,
  /** What the node shows the person, encoded with the interrupt's payload schema. */
  payload: Schema.Unknown
}) {}

/** The value given for the interrupt `key`, encoded with its resume schema. */
export class Resumed extends Schema.TaggedClass<Resumed>()("Resumed", {
  key: Schema.String,
  value: Schema.Unknown
}) {}

export const WorkflowEvent = Schema.Union(
  NodeStarted,
  NodeFinished,
  StateUpdated,
  CheckpointSaved,
  Interrupted,
  Resumed,
  WorkflowFinished,
  WorkflowFailed
)
export type WorkflowEvent = typeof WorkflowEvent.Type

/** The event that ends a run's stream: it finished, or it failed. */
export const isTerminal = (event: WorkflowEvent): event is WorkflowFinished | WorkflowFailed =>
  event._tag === "WorkflowFinished" || event._tag === "WorkflowFailed"

export class RunRecord extends Schema.Class<RunRecord>("RunRecord")({
  /** The run's own id (what `/v1/runs/:id` names): a thread's first run has the thread's id. */
  threadId: ThreadId,
  /** The thread the run belongs to, and its place there (1 for the first run); stores always fill both. */
  thread: Schema.optional(ThreadId),
  turn: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /**
   * The later run of its thread that stopped this one (`multitask: "interrupt"`): the run
   * stays `interrupted` for good, and is never resumed.
   */
  supersededBy: Schema.optional(ThreadId),
  workflow: Schema.String,
  status: RunStatus,
  /** The step the run's last checkpoint is at. */
  step: Schema.NonNegativeInt,
  error: Schema.optional(Schema.String),
  createdAt: Schema.Number,
  updatedAt: Schema.Number,
  /** What the run's model calls spent so far, over every resume (zero for runs stored before usage was kept). */
  usage: Schema.optionalWith(Usage, { default: () => zero }),
  /** The interrupts the run waits on (while `waiting`): resume each by its key. */
  waiting: Schema.optional(Schema.Array(Interrupted))
}) {}

/**
 * A run that ended for good: finished, failed, cancelled, or stopped by a later run of its
 * thread. Nothing resumes it, and a thread's queued runs go on past it.
 */
export const isOver = (run: RunRecord): boolean =>
  run.status === "finished" || run.status === "failed" || run.status === "cancelled" ||
  run.supersededBy !== undefined

/** The interrupts of a history still waiting for a value: asked, and not resumed since (one per key). */
export const pendingInterrupts = (events: Iterable<WorkflowEvent>): ReadonlyArray<Interrupted> => {
  const pending = new Map<string, Interrupted>()
  for (const event of events) {
    if (event._tag === "Interrupted") pending.set(event.key, event)
    else if (event._tag === "Resumed") pending.delete(event.key)
  }
  return [...pending.values()]
}
