/**
 * Where workflow runs are kept: a checkpoint after every step (state + the nodes to run
 * next), the writes of nodes that finished inside an unfinished step, and each run's
 * event history. A run resumes from its last checkpoint plus those writes, so no
 * finished node runs twice. The run's record also sums what its model calls spent.
 *
 * `CheckpointStore.layerMemory` keeps runs in memory, under the same contract as the
 * SQLite store (infrastructure/persistence): for tests, and for runs that need not
 * outlive the process.
 */
import { Chunk, Clock, Context, Effect, HashMap, Iterable, Layer, Option, Order, Ref, Schema } from "effect"
import type { Usage } from "./Usage.js"
import { add } from "./Usage.js"
import type { CheckpointCorrupt, RunStatus, ThreadId } from "./Workflow.js"
import { isOver, RunExists, RunNotFound, RunRecord } from "./Workflow.js"
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

/**
 * A run ends once (finished, failed, cancelled); until then it may run, be interrupted and
 * resume. A run waiting for a person stays `waiting` through a shutdown (what it waits
 * for is kept), and only a running run starts to wait. A queued run either starts or is
 * cancelled. (A run superseded by a later one of its thread never moves again: see
 * `supersede`.)
 */
export const canMove = (from: RunStatus, to: RunStatus): boolean => {
  if (from === "finished" || from === "cancelled" || to === "queued") return false
  if (to === "running") return true
  if (from === "queued") return to === "cancelled"
  if (from === "failed") return to === "failed"
  if (to === "waiting") return from === "running" || from === "waiting"
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

/**
 * Where a new run goes: its thread, its place in the thread's order, and whether it starts
 * `running` or `queued` behind the thread's earlier runs. A run created without one is
 * the first of a thread of its own id, running.
 */
export interface Placement {
  readonly thread: ThreadId
  readonly turn: number
  readonly status: "running" | "queued"
}

export interface Service {
  /**
   * Records a new run with its first checkpoint; RunExists when its id, or its place in
   * its thread, is taken (two starts racing for a thread's next turn: one wins).
   */
  readonly create: (
    threadId: ThreadId,
    workflow: string,
    checkpoint: Checkpoint,
    events: ReadonlyArray<WorkflowEvent>,
    placement?: Placement
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
   * it is (see `canMove`) and no later run superseded it: a late writer never turns a
   * finished run into another.
   * Tells whether the move happened.
   */
  readonly setStatus: (
    threadId: ThreadId,
    status: RunStatus,
    events: ReadonlyArray<WorkflowEvent>,
    error?: string
  ) => Effect.Effect<boolean>
  /**
   * Stops a run that has not ended for good, because the later run `by` of its thread
   * took its place: it becomes `status` (`interrupted`, kept; `cancelled`, rolled back)
   * with `supersededBy`, and no move applies to it after. Tells whether it was moved.
   */
  readonly supersede: (
    threadId: ThreadId,
    by: ThreadId,
    status: "interrupted" | "cancelled",
    events: ReadonlyArray<WorkflowEvent>
  ) => Effect.Effect<boolean>
  /**
   * Drops a run's checkpoints, pending writes and events (a rollback): its record stays,
   * with its status, so its id is not reused and nothing resumes it. A missing run is left
   * missing.
   */
  readonly clear: (threadId: ThreadId) => Effect.Effect<void>
  /** The runs of `thread`, in their order there (by turn). */
  readonly threadRuns: (thread: ThreadId) => Effect.Effect<ReadonlyArray<RunRecord>>
  /**
   * Adds what a node's model calls spent to the run's `usage`, whether the node finished or
   * not: tokens spent are spent. A missing run is left missing.
   */
  readonly addUsage: (threadId: ThreadId, usage: Usage) => Effect.Effect<void>
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

/** A run as the in-memory store keeps it: only its latest checkpoint, as that is all `load` reads. */
interface Stored {
  readonly record: RunRecord
  readonly checkpoint: Checkpoint
  readonly writes: ReadonlyArray<PendingWrite>
  readonly events: Chunk.Chunk<StoredEvent>
  /** Events dropped by `clear`: numbering goes on after them, as the SQL stores' does. */
  readonly dropped: number
}

type Runs = HashMap.HashMap<ThreadId, Stored>

/** `events` numbered after the last `run` has had. */
const appendEvents = (run: Pick<Stored, "events" | "dropped">, events: ReadonlyArray<WorkflowEvent>) => {
  const last = run.dropped + Chunk.size(run.events)
  return Chunk.appendAll(run.events, Chunk.fromIterable(events.map((event, i) => ({ seq: last + i + 1, event }))))
}

const touched = (record: RunRecord, now: number, step = record.step) =>
  new RunRecord({ ...record, step, updatedAt: now })

/** The same record in `status`, with `error` (or none). */
const moved = (record: RunRecord, now: number, status: RunStatus, error: string | undefined) => {
  const { error: _previous, ...rest } = record
  return new RunRecord({ ...rest, status, updatedAt: now, ...(error === undefined ? {} : { error }) })
}

const byCreation = Order.combine(
  Order.mapInput(Order.number, (run: RunRecord) => run.createdAt),
  Order.mapInput(Order.string, (run: RunRecord) => run.threadId)
)

const byTurn = Order.mapInput(Order.number, (run: RunRecord) => run.turn ?? 1)

const byNode = Order.mapInput(Order.string, (write: PendingWrite) => write.node)

/** The store over a `Ref`: each operation is one pure update of every run, so each is atomic like a transaction. */
export const makeMemory: Effect.Effect<Service> = Effect.map(Ref.make<Runs>(HashMap.empty()), (ref) => {
  const modify = <A>(f: (runs: Runs, now: number) => readonly [A, Runs]) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.modify(ref, (runs) => f(runs, now)))
  /** Applies `f` to the run `threadId`, if there is one; a missing run is left missing, as an UPDATE leaves it. */
  const update = (threadId: ThreadId, f: (run: Stored, now: number) => Stored) =>
    modify((runs, now) => [undefined, HashMap.modify(runs, threadId, (run) => f(run, now))])
  const find = (threadId: ThreadId) => Effect.map(Ref.get(ref), HashMap.get(threadId))
  const getRun = (threadId: ThreadId) =>
    Effect.flatMap(
      find(threadId),
      Option.match({ onNone: () => Effect.fail(new RunNotFound({ threadId })), onSome: (run) => Effect.succeed(run) })
    )

  return {
    create: (threadId, workflow, checkpoint, events, placement) =>
      modify((runs, now): readonly [boolean, Runs] => {
        const thread = placement?.thread ?? threadId
        const turn = placement?.turn ?? 1
        const taken = HashMap.has(runs, threadId) ||
          Iterable.some(HashMap.values(runs), ({ record }) => record.thread === thread && record.turn === turn)
        if (taken) return [false, runs]
        const record = new RunRecord({
          threadId,
          thread,
          turn,
          workflow,
          status: placement?.status ?? "running",
          step: checkpoint.step,
          createdAt: now,
          updatedAt: now
        })
        return [
          true,
          HashMap.set(runs, threadId, {
            record,
            checkpoint,
            writes: [],
            events: appendEvents({ events: Chunk.empty(), dropped: 0 }, events),
            dropped: 0
          })
        ]
      }).pipe(Effect.filterOrFail((created) => created, () => new RunExists({ threadId })), Effect.asVoid),
    saveWrite: (threadId, write, events) =>
      update(threadId, (run, now) => ({
        ...run,
        record: touched(run.record, now),
        writes: [...run.writes.filter((w) => w.step !== write.step || w.node !== write.node), write],
        events: appendEvents(run, events)
      })),
    saveCheckpoint: (threadId, checkpoint, events) =>
      update(threadId, (run, now) => ({
        record: touched(run.record, now, checkpoint.step),
        checkpoint: checkpoint.step >= run.checkpoint.step ? checkpoint : run.checkpoint,
        writes: run.writes.filter((w) => w.step >= checkpoint.step),
        events: appendEvents(run, events),
        dropped: run.dropped
      })),
    setStatus: (threadId, status, events, error) =>
      modify((runs, now): readonly [boolean, Runs] => {
        const found = HashMap.get(runs, threadId)
        if (
          Option.isNone(found) || found.value.record.supersededBy !== undefined ||
          !canMove(found.value.record.status, status)
        ) return [false, runs]
        const run = found.value
        const record = moved(run.record, now, status, error)
        return [true, HashMap.set(runs, threadId, { ...run, record, events: appendEvents(run, events) })]
      }),
    supersede: (threadId, by, status, events) =>
      modify((runs, now): readonly [boolean, Runs] => {
        const found = HashMap.get(runs, threadId)
        if (Option.isNone(found) || isOver(found.value.record)) return [false, runs]
        const run = found.value
        const record = new RunRecord({ ...moved(run.record, now, status, undefined), supersededBy: by })
        return [true, HashMap.set(runs, threadId, { ...run, record, events: appendEvents(run, events) })]
      }),
    clear: (threadId) =>
      update(threadId, (run, now) => ({
        ...run,
        record: touched(run.record, now),
        writes: [],
        events: Chunk.empty(),
        dropped: run.dropped + Chunk.size(run.events)
      })),
    threadRuns: (thread) =>
      Effect.map(
        Ref.get(ref),
        (runs) => [...HashMap.values(runs)].map((run) => run.record).filter((run) => run.thread === thread).sort(byTurn)
      ),
    addUsage: (threadId, usage) =>
      update(threadId, (run, now) => ({
        ...run,
        record: new RunRecord({ ...run.record, usage: add(run.record.usage, usage), updatedAt: now })
      })),
    load: (threadId) =>
      Effect.map(
        find(threadId),
        Option.map(({ checkpoint, record, writes }) => ({
          run: record,
          checkpoint,
          writes: writes.filter((w) => w.step === checkpoint.step).sort(byNode)
        }))
      ),
    getRun: (threadId) => Effect.map(getRun(threadId), (run) => run.record),
    listRuns: Effect.map(Ref.get(ref), (runs) => [...HashMap.values(runs)].map((run) => run.record).sort(byCreation)),
    events: (threadId, afterSeq = 0) =>
      Effect.map(getRun(threadId), (run) => Chunk.toReadonlyArray(run.events).filter((e) => e.seq > afterSeq))
  }
})

/** The port; its adapters live in infrastructure/persistence, its in-memory store here. */
export class CheckpointStore extends Context.Tag("loom/CheckpointStore")<CheckpointStore, Service>() {
  /** Runs kept in memory, each build its own: a run resumes in this process only. */
  static readonly layerMemory: Layer.Layer<CheckpointStore> = Layer.effect(CheckpointStore, makeMemory)
}
