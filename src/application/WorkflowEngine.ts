/**
 * Runs workflow graphs step by step. A step runs its nodes in parallel, merges their
 * updates through the graph's reducers, follows the edges to the next step's nodes and
 * saves a checkpoint (state + next nodes) in one transaction. A node that finishes
 * while others of its step still run saves its update at once, so a run cut off
 * mid-step (a crash, a cancel, a restart) resumes from its last checkpoint without
 * running a finished node again. The step's last node to finish has nothing left to
 * wait for: its events go in the checkpoint's transaction, so a one-node step costs one
 * transaction (its update is saved on its own only if the checkpoint is not).
 *
 * `run` and `resume` return a Stream of events ending in `WorkflowFinished` or
 * `WorkflowFailed`; the stream itself does not fail. Interrupting its consumer
 * interrupts the run, which is marked `interrupted` and can be resumed.
 *
 * Each node runs inside a usage meter: the model calls it makes (through a `metered`
 * model, directly or in an agent it runs) are costed with the price table
 * (`LOOM_PRICES`), carried by its `NodeFinished` and added to the run's record, so
 * `WorkflowFinished` and the record hold the run's total over every resume.
 *
 * Runs are kept in a `CheckpointStore`: `WorkflowEngine.layer` needs one (SQLite in the
 * service), `WorkflowEngine.layerMemory` brings its own in memory.
 */
import { Context, Effect, Either, Exit, Layer, Option, Schema, Stream } from "effect"
import * as Crypto from "node:crypto"
import type { Saved } from "../domain/CheckpointStore.js"
import { Checkpoint, CheckpointStore, PendingWrite } from "../domain/CheckpointStore.js"
import type { PriceTable } from "../domain/PriceTable.js"
import { Prices } from "../domain/PriceTable.js"
import { Usage } from "../domain/Usage.js"
import * as UsageMeter from "../domain/UsageMeter.js"
import type { WorkflowError, WorkflowEvent } from "../domain/Workflow.js"
import {
  CheckpointCorrupt,
  CheckpointSaved,
  isTerminal,
  NodeFailed,
  NodeFinished,
  NodeStarted,
  RunCrashed,
  RunNotFound,
  StateUpdated,
  StepLimitExceeded,
  ThreadId,
  UnknownNode,
  WorkflowFailed,
  WorkflowFinished
} from "../domain/Workflow.js"
import * as Durability from "./Durability.js"
import * as Interrupt from "./Interrupt.js"
import * as RunEvents from "./RunEvents.js"
import type { Graph, NodeError, RunError } from "./Workflow.js"
import { END, merge, targets } from "./Workflow.js"

export interface RunOptions {
  /** Names the run, for `resume` and the run history (default: a random UUID). */
  readonly threadId?: string
}

/** The engine's contract. Runs are streams that never fail; `invoke` and `resumeToEnd` run one to its end. */
export interface Service {
  /**
   * Starts a new run of `graph` from `input`: its events, ending with `WorkflowFinished`
   * or `WorkflowFailed`. A thread id that names a run already fails it with `RunExists`.
   */
  readonly run: <S, I, E extends NodeError>(
    graph: Graph<S, I, E>,
    input: S,
    options?: RunOptions
  ) => Stream.Stream<WorkflowEvent>
  /**
   * Continues the run `threadId` from its last checkpoint, running only the nodes that
   * had not finished; a finished run just reports its final state.
   */
  readonly resume: <S, I, E extends NodeError>(graph: Graph<S, I, E>, threadId: string) => Stream.Stream<WorkflowEvent>
  /** Runs `graph` on `input` to its final state, or the error that ended the run. */
  readonly invoke: <S, I, E extends NodeError>(
    graph: Graph<S, I, E>,
    input: S,
    options?: RunOptions
  ) => Effect.Effect<S, RunError<E>>
  /** Resumes `threadId` to its final state, or the error that ended the run. */
  readonly resumeToEnd: <S, I, E extends NodeError>(
    graph: Graph<S, I, E>,
    threadId: string
  ) => Effect.Effect<S, RunError<E>>
}

type Emit = (event: WorkflowEvent) => Effect.Effect<void>

/** One run going on: its graph, its id, where it is saved, where its events go and what its tokens cost. */
interface Run<S, I, E extends NodeError> {
  readonly graph: Graph<S, I, E>
  readonly threadId: ThreadId
  readonly store: CheckpointStore["Type"]
  readonly emit: Emit
  readonly prices: PriceTable
}

/** Where a run is: its state, the step to run next and that step's nodes, and the updates of those already finished. */
interface Position<S> {
  readonly state: S
  readonly step: number
  readonly next: ReadonlyArray<string>
  readonly written: ReadonlyMap<string, Partial<S>>
}

const invalidState = (nodes: ReadonlyArray<string>) => (error: { readonly message: string }) =>
  new NodeFailed({ node: nodes.join(","), reason: "InvalidState", message: error.message })

/** Adds what `meter` recorded to the run's usage, if the node called a model at all. */
const spend = <S, I, E extends NodeError>(run: Run<S, I, E>, meter: UsageMeter.Meter) =>
  Effect.flatMap(
    UsageMeter.usage(meter, run.prices),
    (usage) => usage.calls > 0 ? run.store.addUsage(run.threadId, usage) : Effect.void
  )

/** A finished node's update as saved, with its events. */
interface Done {
  readonly write: PendingWrite
  readonly started: NodeStarted
  readonly finished: NodeFinished
}

/**
 * Where one step's finished nodes go. While other nodes of the step still run, a node's
 * update is saved (and its `NodeFinished` emitted) at once. The last one is held for the
 * step's checkpoint: `carry` saves the checkpoint with it, and lets it go once saved;
 * `flush` saves a held update on its own, for a step that ends without its checkpoint.
 */
const keeper = <S, I, E extends NodeError>(run: Run<S, I, E>, running: number) => {
  // one step's bookkeeping, touched only by its own node fibers, one at a time
  let left = running
  let held: Done | undefined
  const save = (done: Done) =>
    Effect.zipRight(
      run.store.saveWrite(run.threadId, done.write, [done.started, done.finished]),
      run.emit(done.finished)
    )
  return {
    keep: (done: Done): Effect.Effect<void> =>
      Effect.suspend(() => {
        left -= 1
        if (left > 0) return save(done)
        held = done
        return Effect.void
      }),
    /** Runs `save` with the held node, if any, and lets it go once saved, uninterruptibly. */
    carry: <A>(save: (done: Done | undefined) => Effect.Effect<A>): Effect.Effect<A> =>
      Effect.uninterruptible(Effect.suspend(() =>
        Effect.tap(save(held), () => {
          held = undefined
        })
      )),
    flush: Effect.suspend(() => {
      const done = held
      held = undefined
      return done === undefined ? Effect.void : save(done)
    })
  }
}

/**
 * Where a node's interrupts go: a wait is stored with the run (status `waiting`, its
 * `Interrupted` event once per key, however often a replay asks again) and emitted.
 */
const asking = <S, I, E extends NodeError>(run: Run<S, I, E>, step: number, node: string): Interrupt.Asking => {
  let asked = 0
  return {
    step,
    node,
    next: () => asked++,
    record: (event) =>
      Effect.gen(function*() {
        const history = yield* Effect.orDie(run.store.events(run.threadId))
        const known = event._tag === "Interrupted" &&
          history.some(({ event: e }) => e._tag === "Interrupted" && e.key === event.key)
        yield* run.store.setStatus(run.threadId, "waiting", known ? [] : [event])
        if (!known) yield* run.emit(event)
      })
  }
}

/** What a node gave: its update encoded for storage, and what its model calls cost (none when it made none). */
const NodeOutcome = Schema.Struct({ update: Schema.Unknown, usage: Schema.optional(Usage) })
type NodeOutcome = typeof NodeOutcome.Type

/**
 * Runs `node` on `state`, metered, and hands its update with its events to `keep`. Under a
 * durable run the node is an Activity named `step/node`: a replay gets a finished node's
 * outcome back from the engine instead of running it again.
 */
const runNode = <S, I, E extends NodeError>(
  run: Run<S, I, E>,
  step: number,
  node: string,
  state: S,
  keep: (done: Done) => Effect.Effect<void>
): Effect.Effect<Partial<S>, NodeFailed | UnknownNode> =>
  Effect.gen(function*() {
    const f = run.graph.nodes.get(node)
    if (f === undefined) return yield* new UnknownNode({ from: "checkpoint", node })
    const started = new NodeStarted({ step, node })
    yield* run.emit(started)
    const durability = yield* Durability.Durability
    const name = `${step}/${node}`
    const execute = Effect.gen(function*() {
      const meter = yield* UsageMeter.make
      const update = yield* f(state).pipe(
        Effect.provideService(Interrupt.CurrentAsking, asking(run, step, node)),
        UsageMeter.within(meter),
        Effect.mapError((error) => new NodeFailed({ node, reason: error._tag, message: error.message })),
        // a node that fails or is cut off has spent its tokens all the same
        Effect.ensuring(spend(run, meter))
      )
      const encoded = yield* Schema.encode(run.graph.update)(update).pipe(
        Effect.mapError((error) => new NodeFailed({ node, reason: "InvalidUpdate", message: error.message }))
      )
      const usage = yield* UsageMeter.usage(meter, run.prices)
      return [update, { update: encoded, ...(usage.calls > 0 ? { usage } : {}) } as NodeOutcome] as const
    })
    const [update, outcome] = durability.durable
      ? yield* Effect.flatMap(
        durability.run({
          name,
          success: NodeOutcome,
          error: NodeFailed,
          execute: Effect.map(execute.pipe(Durability.within(name)), ([, outcome]) => outcome)
        }),
        (outcome) =>
          Schema.decodeUnknown(run.graph.update)(outcome.update).pipe(
            Effect.mapError((error) => new NodeFailed({ node, reason: "InvalidUpdate", message: error.message })),
            Effect.map((update) => [update, outcome] as const)
          )
      )
      : yield* execute
    const finished = new NodeFinished({ step, node, ...outcome })
    yield* keep({ write: new PendingWrite({ step, node, update: outcome.update }), started, finished })
    return update
  }).pipe(Effect.withSpan("WorkflowEngine.node", {
    attributes: { "loom.node": node, "loom.step": step },
    captureStackTrace: false
  }))

/** The nodes `from` leads to in `state` (END left out). */
const route = <S>(
  graph: Pick<Graph<S>, "nodes" | "edges">,
  from: string,
  state: S
): Either.Either<ReadonlyArray<string>, UnknownNode> => {
  const edge = graph.edges.get(from)
  if (edge === undefined) return Either.right([])
  const chosen = targets(typeof edge === "function" ? edge(state) : edge).filter((node) => node !== END)
  const bad = chosen.find((node) => !graph.nodes.has(node))
  return bad === undefined ? Either.right(chosen) : Either.left(new UnknownNode({ from, node: bad }))
}

/** The position after a step whose nodes gave `updates`: the merged state, the next step and its nodes. */
const advance = <S>(
  graph: Pick<Graph<S>, "nodes" | "edges" | "reducers">,
  at: Position<S>,
  updates: ReadonlyArray<Partial<S>>
): Either.Either<Position<S>, UnknownNode> => {
  const state = merge(graph, at.state, updates)
  return Either.map(
    Either.all(at.next.map((node) => route(graph, node, state))),
    (routes) => ({ state, step: at.step + 1, next: [...new Set(routes.flat())], written: new Map() })
  )
}

/**
 * One step: its nodes in parallel (a node already written gives its saved update), then
 * the checkpoint, which carries the events of the last node to finish.
 */
const runStep = <S, I, E extends NodeError>(run: Run<S, I, E>) => (at: Position<S>) =>
  Effect.suspend(() => {
    const { graph, threadId } = run
    const nodes = keeper(run, at.next.filter((node) => !at.written.has(node)).length)
    return Effect.gen(function*() {
      if (at.step >= graph.maxSteps) return yield* new StepLimitExceeded({ threadId, maxSteps: graph.maxSteps })
      const updates = yield* Effect.forEach(
        at.next,
        (node) =>
          Option.match(Option.fromNullable(at.written.get(node)), {
            onNone: () => runNode(run, at.step, node, at.state, nodes.keep),
            onSome: Effect.succeed
          }),
        { concurrency: "unbounded" }
      )
      const after = yield* advance(graph, at, updates)
      const state = yield* Schema.encode(graph.state)(after.state).pipe(Effect.mapError(invalidState(at.next)))
      const saved = [
        new StateUpdated({ step: after.step, state }),
        new CheckpointSaved({ step: after.step, next: after.next })
      ]
      const checkpoint = new Checkpoint({ step: after.step, state, next: after.next })
      // the held node's events go in the checkpoint's transaction: its write would be dropped there anyway
      const last = yield* nodes.carry((done) =>
        Effect.as(
          run.store.saveCheckpoint(
            threadId,
            checkpoint,
            done === undefined ? saved : [done.started, done.finished, ...saved]
          ),
          done
        )
      )
      if (last !== undefined) yield* run.emit(last.finished)
      yield* Effect.forEach(saved, run.emit, { discard: true })
      return after
    }).pipe(
      // a step cut off or failed after its last node finished still keeps that node's update
      Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : nodes.flush)
    )
  })

/** Steps from `from` until no node is left; the final state. */
const execute = <S, I, E extends NodeError>(run: Run<S, I, E>, from: Position<S>) =>
  Effect.map(
    Effect.iterate(from, { while: (at) => at.next.length > 0, body: runStep(run) }),
    (at) => at.state
  )

const finish = <S, I, E extends NodeError>(run: Run<S, I, E>, state: S) =>
  Effect.gen(function*() {
    const encoded = yield* Schema.encode(run.graph.state)(state).pipe(Effect.orDie)
    const { usage } = yield* run.store.getRun(run.threadId)
    const finished = new WorkflowFinished({ state: encoded, usage })
    yield* run.store.setStatus(run.threadId, "finished", [finished])
    yield* run.emit(finished)
  })

/** A run's first checkpoint: `input` encoded, and the graph's start nodes to run. */
export const firstCheckpoint = <S, I, E extends NodeError>(
  graph: Graph<S, I, E>,
  input: S
): Effect.Effect<Checkpoint> =>
  Schema.encode(graph.state)(input).pipe(
    Effect.orDie,
    Effect.map((state) => new Checkpoint({ step: 0, state, next: graph.start }))
  )

/** A new run: its first checkpoint, then every step. */
const begin = <S, I, E extends NodeError>(input: S) => (run: Run<S, I, E>) =>
  Effect.gen(function*() {
    const { graph } = run
    yield* run.store.create(run.threadId, graph.name, yield* firstCheckpoint(graph, input), [])
    yield* finish(run, yield* execute(run, { state: input, step: 0, next: graph.start, written: new Map() }))
  })

/** Where a saved run carries on: its checkpoint's state and nodes, with the updates already written. */
const positionOf = <S, I, E extends NodeError>(graph: Graph<S, I, E>, saved: Saved) =>
  Effect.all({
    state: Schema.decodeUnknown(graph.state)(saved.checkpoint.state),
    written: Effect.forEach(saved.writes, (write) =>
      Effect.map(Schema.decodeUnknown(graph.update)(write.update), (update) => [write.node, update] as const))
  }).pipe(
    Effect.map(({ state, written }): Position<S> => ({
      state,
      step: saved.checkpoint.step,
      next: saved.checkpoint.next,
      written: new Map(written)
    }))
  )

/** A saved run, carried on from its last checkpoint. */
const proceed = <S, I, E extends NodeError>(run: Run<S, I, E>) =>
  Effect.gen(function*() {
    const { threadId } = run
    const saved = yield* Effect.flatMap(
      run.store.load(threadId),
      Option.match({ onNone: () => Effect.fail(new RunNotFound({ threadId })), onSome: Effect.succeed })
    )
    if (saved.run.status === "finished") {
      return yield* run.emit(new WorkflowFinished({ state: saved.checkpoint.state, usage: saved.run.usage }))
    }
    const at = yield* positionOf(run.graph, saved).pipe(
      Effect.mapError((error) => new CheckpointCorrupt({ threadId, message: error.message }))
    )
    yield* run.store.setStatus(threadId, "running", [])
    yield* finish(run, yield* execute(run, at))
  })

/**
 * Ends the stream of a failed run with `WorkflowFailed`, stored with the run (and what it
 * spent) unless the run is not this one's.
 */
const fail = (store: CheckpointStore["Type"], threadId: ThreadId) => (error: WorkflowError, emit: Emit) => {
  if (error._tag === "RunExists" || error._tag === "RunNotFound") return emit(new WorkflowFailed({ error }))
  return Effect.gen(function*() {
    const spent = yield* Effect.option(store.getRun(threadId))
    const failed = new WorkflowFailed({
      error,
      ...Option.match(spent, { onNone: () => ({}), onSome: ({ usage }) => ({ usage }) })
    })
    yield* store.setStatus(threadId, "failed", [failed], error.message).pipe(Effect.ignore)
    yield* emit(failed)
  })
}

/** The events of `body` as a stream; a failure is stored with the run, an interruption marks it `interrupted`. */
const events = <S, I, E extends NodeError>(
  store: CheckpointStore["Type"],
  prices: PriceTable,
  graph: Graph<S, I, E>,
  threadId: ThreadId,
  span: string,
  body: (run: Run<S, I, E>) => Effect.Effect<void, WorkflowError>
): Stream.Stream<WorkflowEvent> =>
  RunEvents.stream(
    (emit) =>
      body({ graph, threadId, store, emit, prices }).pipe(
        Effect.onInterrupt(() => store.setStatus(threadId, "interrupted", []).pipe(Effect.ignore)),
        Effect.withSpan(span, {
          attributes: { "loom.thread_id": threadId, "loom.workflow": graph.name },
          captureStackTrace: false
        })
      ),
    { onFailure: fail(store, threadId), crashed: (message) => new RunCrashed({ threadId, message }), isTerminal }
  )

/** Runs the stream to its end: the final state, or the typed error that ended the run. */
const outcome = <S, I, E extends NodeError>(
  graph: Graph<S, I, E>,
  run: Stream.Stream<WorkflowEvent>
): Effect.Effect<S, RunError<E>> =>
  Effect.flatMap(Stream.runLast(run), (last) => {
    const event = Option.getOrUndefined(last)
    // a NodeFailed of this graph's run names one of its node errors, or an encoding one
    if (event?._tag === "WorkflowFailed") return Effect.fail(event.error as RunError<E>)
    if (event?._tag === "WorkflowFinished") return Schema.decodeUnknown(graph.state)(event.state).pipe(Effect.orDie)
    return Effect.dieMessage("workflow run ended without a final event")
  })

const newThreadId = (options: RunOptions) => ThreadId.make(options.threadId ?? Crypto.randomUUID())

export const make: Effect.Effect<Service, never, CheckpointStore | Prices> = Effect.map(
  Effect.all([CheckpointStore, Prices]),
  ([store, prices]) => {
    const run: Service["run"] = (graph, input, options = {}) =>
      events(store, prices, graph, newThreadId(options), "WorkflowEngine.run", begin(input))
    const resume: Service["resume"] = (graph, threadId) =>
      events(store, prices, graph, ThreadId.make(threadId), "WorkflowEngine.resume", proceed)
    return {
      run,
      resume,
      invoke: (graph, input, options) =>
        outcome(graph, run(graph, input, options)).pipe(
          Effect.withSpan("WorkflowEngine.invoke", { captureStackTrace: false })
        ),
      resumeToEnd: (graph, threadId) =>
        outcome(graph, resume(graph, threadId)).pipe(
          Effect.withSpan("WorkflowEngine.resumeToEnd", { captureStackTrace: false })
        )
    }
  }
)

/** The workflow engine; where its runs are kept shows in its layers. */
export class WorkflowEngine extends Context.Tag("loom/WorkflowEngine")<WorkflowEngine, Service>() {
  /**
   * Checkpoints go to the `CheckpointStore` provided, and runs resume from it. Prices come
   * from `LOOM_PRICES`; a bad value is a defect naming the variable (this layer's callers
   * take no config error). For a table of your own: `make` with `Prices.layer`.
   */
  static readonly layer: Layer.Layer<WorkflowEngine, never, CheckpointStore> = Layer.effect(
    WorkflowEngine,
    make
  ).pipe(Layer.provide(Layer.orDie(Prices.layerConfig)))
  /** `layer` over its own in-memory store: runs resume within this process only (tests, one-off runs). */
  static readonly layerMemory: Layer.Layer<WorkflowEngine> = WorkflowEngine.layer.pipe(
    Layer.provide(CheckpointStore.layerMemory)
  )
}
