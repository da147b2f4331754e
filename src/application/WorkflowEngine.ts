/**
 * Runs workflow graphs step by step. A step runs its nodes in parallel, merges their
 * updates through the graph's reducers, follows the edges to the next step's nodes and
 * saves a checkpoint (state + next nodes) in one transaction. A node that finishes
 * inside a step saves its update at once, so a run cut off mid-step (a crash, a cancel,
 * a restart) resumes from its last checkpoint without running a finished node again.
 *
 * `run` and `resume` return a Stream of events ending in `WorkflowFinished` or
 * `WorkflowFailed`; the stream itself does not fail. Interrupting its consumer
 * interrupts the run, which is marked `interrupted` and can be resumed.
 * Without a `CheckpointStore` runs work the same but cannot be resumed.
 */
import { Effect, Option, Schema, Stream } from "effect"
import * as Crypto from "node:crypto"
import { Checkpoint, CheckpointStore, PendingWrite } from "../domain/CheckpointStore.js"
import type { WorkflowError, WorkflowEvent } from "../domain/Workflow.js"
import {
  CheckpointCorrupt,
  CheckpointSaved,
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
import * as RunEvents from "./RunEvents.js"
import type { Graph } from "./Workflow.js"
import { END, merge, targets } from "./Workflow.js"

export interface RunOptions {
  /** Names the run, for `resume` and the run history (default: a random UUID). */
  readonly threadId?: string
}

type Emit = (event: WorkflowEvent) => Effect.Effect<void>

const isTerminal = (event: WorkflowEvent) => event._tag === "WorkflowFinished" || event._tag === "WorkflowFailed"

export const make = Effect.gen(function*() {
  const store = yield* Effect.serviceOption(CheckpointStore)
  const persist = <E>(f: (store: CheckpointStore["Type"]) => Effect.Effect<void, E>): Effect.Effect<void, E> =>
    Option.match(store, { onNone: () => Effect.void, onSome: f })

  /** The events of a run as a stream; a failure is stored with the run, an interruption marks it `interrupted`. */
  const stream = (threadId: ThreadId, body: (emit: Emit) => Effect.Effect<void, WorkflowError>) =>
    RunEvents.stream(
      (emit) =>
        body(emit).pipe(
          Effect.onInterrupt(() => persist((s) => s.setStatus(threadId, "interrupted", [])).pipe(Effect.ignore)),
          Effect.withSpan("WorkflowEngine.run", {
            attributes: { "loom.thread_id": threadId },
            captureStackTrace: false
          })
        ),
      {
        onFailure: (error, emit) => {
          const failed = new WorkflowFailed({ error })
          return persist((s) =>
            error._tag === "RunExists" || error._tag === "RunNotFound"
              ? Effect.void
              : s.setStatus(threadId, "failed", [failed], error.message)
          ).pipe(Effect.ignore, Effect.zipRight(emit(failed)))
        },
        crashed: (message) => new RunCrashed({ threadId, message }),
        isTerminal
      }
    )

  /** Runs steps from `step` (whose nodes are `next`, some maybe already `written`) until no node is left. */
  const execute = <S, I>(
    graph: Graph<S, I>,
    threadId: ThreadId,
    initial: S,
    initialStep: number,
    initialNext: ReadonlyArray<string>,
    initialWritten: ReadonlyMap<string, Partial<S>>,
    emit: Emit
  ): Effect.Effect<S, WorkflowError> =>
    Effect.gen(function*() {
      const encodeState = Schema.encode(graph.state)
      const encodeUpdate = Schema.encode(graph.update)
      let state = initial
      let step = initialStep
      let next = initialNext
      let written = initialWritten

      const runNode = (node: string, current: S): Effect.Effect<Partial<S>, WorkflowError> =>
        Effect.gen(function*() {
          const f = graph.nodes.get(node)
          if (f === undefined) return yield* new UnknownNode({ from: "checkpoint", node })
          const started = new NodeStarted({ step, node })
          yield* emit(started)
          const update = yield* f(current).pipe(
            Effect.mapError((error) => new NodeFailed({ node, reason: error._tag, message: error.message }))
          )
          const encoded = yield* encodeUpdate(update).pipe(
            Effect.mapError((error) => new NodeFailed({ node, reason: "InvalidUpdate", message: error.message }))
          )
          const finished = new NodeFinished({ step, node, update: encoded })
          yield* persist((s) =>
            s.saveWrite(threadId, new PendingWrite({ step, node, update: encoded }), [started, finished])
          )
          yield* emit(finished)
          return update
        }).pipe(Effect.withSpan("WorkflowEngine.node", {
          attributes: { "loom.node": node, "loom.step": step },
          captureStackTrace: false
        }))

      const route = (from: string, current: S): Effect.Effect<ReadonlyArray<string>, UnknownNode> => {
        const edge = graph.edges.get(from)
        if (edge === undefined) return Effect.succeed([])
        const chosen = targets(typeof edge === "function" ? edge(current) : edge).filter((node) => node !== END)
        const bad = chosen.find((node) => !graph.nodes.has(node))
        return bad === undefined ? Effect.succeed(chosen) : Effect.fail(new UnknownNode({ from, node: bad }))
      }

      while (next.length > 0) {
        if (step >= graph.maxSteps) return yield* new StepLimitExceeded({ threadId, maxSteps: graph.maxSteps })
        const before = state
        const done = written
        const updates = yield* Effect.forEach(
          next,
          (node) =>
            Option.match(Option.fromNullable(done.get(node)), {
              onNone: () => runNode(node, before),
              onSome: Effect.succeed
            }),
          { concurrency: "unbounded" }
        )
        state = merge(graph, state, updates)
        const after = state
        const following = [...new Set((yield* Effect.forEach(next, (node) => route(node, after))).flat())]
        step++
        const encoded = yield* encodeState(state).pipe(
          Effect.mapError((error) =>
            new NodeFailed({ node: next.join(","), reason: "InvalidState", message: error.message })
          )
        )
        const events = [new StateUpdated({ step, state: encoded }), new CheckpointSaved({ step, next: following })]
        yield* persist((s) =>
          s.saveCheckpoint(threadId, new Checkpoint({ step, state: encoded, next: following }), events)
        )
        yield* Effect.forEach(events, emit, { discard: true })
        next = following
        written = new Map()
      }
      return state
    })

  const finish = <S, I>(graph: Graph<S, I>, threadId: ThreadId, state: S, emit: Emit) =>
    Effect.gen(function*() {
      const encoded = yield* Schema.encode(graph.state)(state).pipe(Effect.orDie)
      const finished = new WorkflowFinished({ state: encoded })
      yield* persist((s) => s.setStatus(threadId, "finished", [finished]))
      yield* emit(finished)
    })

  const newThreadId = (options: RunOptions) => ThreadId.make(options.threadId ?? Crypto.randomUUID())

  /** Starts a new run of `graph` from `input`. */
  const run = <S, I>(graph: Graph<S, I>, input: S, options: RunOptions = {}): Stream.Stream<WorkflowEvent> => {
    const threadId = newThreadId(options)
    return stream(threadId, (emit) =>
      Effect.gen(function*() {
        const encoded = yield* Schema.encode(graph.state)(input).pipe(Effect.orDie)
        yield* persist((s) =>
          s.create(threadId, graph.name, new Checkpoint({ step: 0, state: encoded, next: graph.start }), [])
        )
        const state = yield* execute(graph, threadId, input, 0, graph.start, new Map(), emit)
        yield* finish(graph, threadId, state, emit)
      }))
  }

  /** Continues the run `threadId` from its last checkpoint; a finished run just reports its final state. */
  const resume = <S, I>(graph: Graph<S, I>, threadId: string): Stream.Stream<WorkflowEvent> => {
    const id = ThreadId.make(threadId)
    return stream(id, (emit) =>
      Effect.gen(function*() {
        const saved = yield* Option.match(store, {
          onNone: () => Effect.fail(new RunNotFound({ threadId })),
          onSome: (s) =>
            Effect.flatMap(
              s.load(id),
              Option.match({
                onNone: () => Effect.fail(new RunNotFound({ threadId })),
                onSome: Effect.succeed
              })
            )
        })
        const corrupt = (error: { readonly message: string }) =>
          new CheckpointCorrupt({ threadId, message: error.message })
        if (saved.run.status === "finished") {
          return yield* emit(new WorkflowFinished({ state: saved.checkpoint.state }))
        }
        const state = yield* Schema.decodeUnknown(graph.state)(saved.checkpoint.state).pipe(Effect.mapError(corrupt))
        const written = new Map<string, Partial<S>>()
        for (const write of saved.writes) {
          written.set(
            write.node,
            yield* Schema.decodeUnknown(graph.update)(write.update).pipe(Effect.mapError(corrupt))
          )
        }
        yield* persist((s) => s.setStatus(id, "running", []))
        const final = yield* execute(graph, id, state, saved.checkpoint.step, saved.checkpoint.next, written, emit)
        yield* finish(graph, id, final, emit)
      }))
  }

  /** Runs the stream to its end: the final state, or the typed error that ended the run. */
  const outcome = <S, I>(graph: Graph<S, I>, events: Stream.Stream<WorkflowEvent>) =>
    Effect.flatMap(Stream.runLast(events), (last): Effect.Effect<S, WorkflowError> => {
      const event = Option.getOrUndefined(last)
      if (event?._tag === "WorkflowFailed") return Effect.fail(event.error)
      if (event?._tag === "WorkflowFinished") {
        return Schema.decodeUnknown(graph.state)(event.state).pipe(Effect.orDie)
      }
      return Effect.dieMessage("workflow run ended without a final event")
    })

  return {
    run,
    resume,
    /** Runs `graph` on `input` to its final state. */
    invoke: <S, I>(graph: Graph<S, I>, input: S, options: RunOptions = {}) =>
      outcome(graph, run(graph, input, options)),
    /** Resumes `threadId` to its final state. */
    resumeToEnd: <S, I>(graph: Graph<S, I>, threadId: string) => outcome(graph, resume(graph, threadId))
  } as const
})

/** The workflow engine; checkpoints go to the `CheckpointStore` when one is provided. */
export class WorkflowEngine extends Effect.Service<WorkflowEngine>()("loom/WorkflowEngine", { effect: make }) {}
