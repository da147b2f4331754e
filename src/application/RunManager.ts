/**
 * The runs a service holds: each started run is a fiber in a FiberMap owned by the
 * service's scope, so it outlives the request that started it (a client that
 * disconnects cancels nothing) and is interrupted, checkpointed and marked
 * `interrupted` when the service shuts down. On start-up every run that was cut off is
 * resumed. At most `maxRuns` run at once; more are refused with QueueFull.
 */
import type { Duration, Scope } from "effect"
import { Context, Deferred, Effect, FiberMap, Layer, Option, Schema, Stream, SubscriptionRef } from "effect"
import * as Crypto from "node:crypto"
import { CheckpointStore } from "../domain/CheckpointStore.js"
import type { StoredEvent } from "../domain/CheckpointStore.js"
import { QueueFull } from "../domain/Errors.js"
import type { CheckpointCorrupt, RunRecord, WorkflowEvent } from "../domain/Workflow.js"
import { isTerminal, RunExists, RunNotFound, ThreadId, ThreadIdText } from "../domain/Workflow.js"
import { ShuttingDown } from "./Shutdown.js"
import type { Graph } from "./Workflow.js"
import type * as WorkflowEngine from "./WorkflowEngine.js"

/** A kind of run the service offers: which workflow it is, how to start one from an input text, how to resume one. */
export interface RunKind {
  /** The workflow's name, as stored with each run (what a restart resumes it by). */
  readonly workflow: string
  readonly run: (threadId: ThreadId, name: string, input: string) => Stream.Stream<WorkflowEvent>
  readonly resume: (threadId: ThreadId) => Stream.Stream<WorkflowEvent>
}

/** A run kind over `graph`, whose first state `initial` makes from the request. */
export const runKind = <S, I>(
  engine: WorkflowEngine.Service,
  graph: Graph<S, I>,
  initial: (name: string, input: string) => S
): RunKind => ({
  workflow: graph.name,
  run: (threadId, name, input) => engine.run(graph, initial(name, input), { threadId }),
  resume: (threadId) => engine.resume(graph, threadId)
})

export const RunRequest = Schema.Struct({
  kind: Schema.Literal("workflow", "agent"),
  /** The workflow (`coding`) or the agent (`assistant`) to run. */
  name: Schema.NonEmptyString,
  input: Schema.String,
  /** The id to run under (default: a new UUID); see `threadIdPattern`. */
  threadId: Schema.optional(ThreadIdText)
}).annotations({
  identifier: "RunRequest",
  description: "A run to start: the coding workflow or the assistant agent, on an input text",
  // the OpenAPI document says `additionalProperties: false`: a field it does not list is refused by name
  parseOptions: { onExcessProperty: "error" }
})
export type RunRequest = typeof RunRequest.Type

/** The request names a workflow or agent the service does not have. */
export class UnknownRunKind extends Schema.TaggedError<UnknownRunKind>()("UnknownRunKind", {
  kind: Schema.String,
  name: Schema.String,
  message: Schema.String
}) {}

export interface Options {
  /** What `{"kind":"workflow","name":...}` may name. */
  readonly workflows: ReadonlyArray<RunKind>
  /** `{"kind":"agent","name":...}` runs: the workflow that runs an agent, and the agents it may name. */
  readonly agents: { readonly kind: RunKind; readonly names: ReadonlySet<string> }
  readonly maxRuns: number
  /** How often a followed run's new events are read from the store. */
  readonly followEvery?: Duration.DurationInput
}

const ended = (run: RunRecord) => run.status !== "running"

const isThreadId = Schema.is(ThreadId)

/** The id as a ThreadId; an id no run can have (see `threadIdPattern`) is an unknown run, not a crash. */
const knownId = (id: string): Effect.Effect<ThreadId, RunNotFound> =>
  isThreadId(id) ? Effect.succeed(id) : Effect.fail(new RunNotFound({ threadId: id }))

/** The run kind a request names, or why there is none. */
const kindOf = (options: Options, request: RunRequest): Effect.Effect<RunKind, UnknownRunKind> => {
  const kind = request.kind === "agent"
    ? (options.agents.names.has(request.name) ? options.agents.kind : undefined)
    : options.workflows.find((kind) => kind.workflow === request.name)
  return kind === undefined
    ? Effect.fail(
      new UnknownRunKind({
        kind: request.kind,
        name: request.name,
        message: `no ${request.kind} named ${request.name}`
      })
    )
    : Effect.succeed(kind)
}

/**
 * Waits for a run's next event: a run live here bumps its version after each of its
 * events, so its followers cost nothing while it is quiet. Every write of the engine to
 * the store is followed by an event (a node's events are saved, then its NodeFinished
 * emitted), and a follower reads the version before the store, so a bump it missed
 * cannot leave it behind; the store is read again every 30 s all the same, so a change in
 * that order costs a delay, never a hang. A run elsewhere (another process) is polled.
 */
const news = (
  live: SubscriptionRef.SubscriptionRef<number> | undefined,
  seen: number | undefined,
  pollEvery: Duration.DurationInput
) =>
  live === undefined
    ? Effect.sleep(pollEvery)
    : live.changes.pipe(
      Stream.filter((version) => version !== seen),
      Stream.runHead,
      Effect.timeout("30 seconds"),
      Effect.ignore
    )

/** The runs of a service: start, inspect, follow and cancel them; resume the ones a restart cut off. */
export interface Service {
  /** Starts a run in the background; answers once it has begun, with its thread id. */
  readonly start: (request: RunRequest) => Effect.Effect<ThreadId, UnknownRunKind | QueueFull | RunExists>
  readonly get: (id: string) => Effect.Effect<RunRecord, RunNotFound>
  readonly list: Effect.Effect<ReadonlyArray<RunRecord>>
  /** Stops a run; it stays `cancelled` (a restart does not resume it). */
  readonly cancel: (id: string) => Effect.Effect<RunRecord, RunNotFound>
  /** A run's stored events after `after`, then its new ones, until it ends or the service shuts down. */
  readonly follow: (id: string, after?: number) => Stream.Stream<StoredEvent, RunNotFound | CheckpointCorrupt>
  /** Resumes every run a shutdown or a crash cut off; answers how many. */
  readonly resumeCutOff: Effect.Effect<number>
  /** Runs going on in this process now. */
  readonly running: Effect.Effect<number>
}

export const make = (options: Options): Effect.Effect<Service, never, Scope.Scope | CheckpointStore | ShuttingDown> =>
  Effect.gen(function*() {
    const store = yield* CheckpointStore
    const runs = yield* FiberMap.make<string>()
    const shutdown = yield* ShuttingDown
    // Closing the service: says which runs it cuts off, before the FiberMap interrupts them (finalizers run in reverse).
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const cut = Array.from(runs, ([threadId]) => threadId)
        return cut.length === 0
          ? Effect.logInfo("no run was running")
          : Effect.logInfo(
            `interrupting ${cut.length} running run(s) (${cut.join(", ")}): each is marked interrupted ` +
              "and resumes from its last checkpoint on the next start"
          )
      })
    )

    /** Per run live in this process: bumped on each of its events, so followers wait instead of polling. */
    const versions = new Map<string, SubscriptionRef.SubscriptionRef<number>>()
    const bump = (ref: SubscriptionRef.SubscriptionRef<number>) => SubscriptionRef.update(ref, (n) => n + 1)

    /** Runs `events` in the background; resolves once the run has begun (or failed to). */
    const launch = (threadId: string, events: Stream.Stream<WorkflowEvent>) =>
      Effect.gen(function*() {
        const begun = yield* Deferred.make<WorkflowEvent | undefined>()
        const version = yield* SubscriptionRef.make(0)
        versions.set(threadId, version)
        yield* FiberMap.run(
          runs,
          threadId,
          events.pipe(
            Stream.tap((event) => Effect.zipRight(Deferred.succeed(begun, event), bump(version))),
            Stream.runDrain,
            Effect.ensuring(Effect.zipRight(Deferred.succeed(begun, undefined), bump(version))),
            Effect.ensuring(Effect.sync(() => versions.delete(threadId)))
          ),
          { onlyIfMissing: true }
        )
        return yield* Deferred.await(begun)
      })

    const start = (request: RunRequest): Effect.Effect<ThreadId, UnknownRunKind | QueueFull | RunExists> =>
      Effect.gen(function*() {
        const kind = yield* kindOf(options, request)
        const threadId = ThreadId.make(request.threadId ?? Crypto.randomUUID())
        // A known id is refused before anything starts: a running run under it must not be touched.
        const existing = yield* Effect.either(store.getRun(threadId))
        if (existing._tag === "Right" || (yield* FiberMap.has(runs, threadId))) {
          return yield* new RunExists({ threadId })
        }
        if ((yield* FiberMap.size(runs)) >= options.maxRuns) return yield* new QueueFull({ capacity: options.maxRuns })
        const first = yield* launch(threadId, kind.run(threadId, request.name, request.input))
        if (first?._tag === "WorkflowFailed" && first.error._tag === "RunExists") return yield* first.error
        return threadId
      }).pipe(Effect.withSpan("RunManager.start", { captureStackTrace: false }))

    const get = (id: string) => Effect.flatMap(knownId(id), store.getRun)

    /** Stops a run; it stays `cancelled` (a restart does not resume it). */
    const cancel = (id: string): Effect.Effect<RunRecord, RunNotFound> =>
      Effect.gen(function*() {
        const threadId = yield* knownId(id)
        const run = yield* store.getRun(threadId)
        if (ended(run) && run.status !== "interrupted") return run
        yield* FiberMap.remove(runs, id)
        // refused (and the run left as it is) when it finished first
        yield* store.setStatus(threadId, "cancelled", [])
        return yield* store.getRun(threadId)
      })

    /** `follow` for an id that may name a run. */
    const followKnown = (threadId: ThreadId, after: number) =>
      Stream.paginateEffect({ after }, (cursor) =>
        Effect.gen(function*() {
          const live = versions.get(threadId)
          const seen = live === undefined ? undefined : yield* SubscriptionRef.get(live)
          const run = yield* store.getRun(threadId)
          const events = yield* store.events(threadId, cursor.after)
          const last = events[events.length - 1]
          if (ended(run) || events.some((e) => isTerminal(e.event))) return [events, Option.none()] as const
          if (events.length === 0) yield* news(live, seen, options.followEvery ?? "100 millis")
          return [events, Option.some({ after: last?.seq ?? cursor.after })] as const
        })).pipe(
          Stream.flattenIterables,
          Stream.interruptWhen(Deferred.await(shutdown))
        )

    /**
     * A run's stored events after `after` (a reconnecting client's Last-Event-ID), then
     * its new ones as they are saved, until it ends or the
     * service shuts down. The status is read before the events, so the events that end
     * a run are always read after it has ended.
     */
    const follow = (id: string, after = 0): Stream.Stream<StoredEvent, RunNotFound | CheckpointCorrupt> =>
      Stream.unwrap(Effect.map(knownId(id), (threadId) => followKnown(threadId, after)))

    /** Picks up every run that a shutdown or a crash cut off. */
    const resumeCutOff = Effect.gen(function*() {
      const all = yield* store.listRuns
      const cutOff = all.filter((run) => run.status === "running" || run.status === "interrupted")
      const kinds = [options.agents.kind, ...options.workflows]
      for (const run of cutOff) {
        const kind = kinds.find((kind) => kind.workflow === run.workflow)
        if (kind === undefined) continue
        yield* Effect.logInfo(`resuming run ${run.threadId} (${run.workflow}) from step ${run.step}`)
        yield* launch(run.threadId, kind.resume(run.threadId))
      }
      return cutOff.length
    })

    return {
      start,
      get,
      list: store.listRuns,
      cancel,
      follow,
      resumeCutOff,
      running: FiberMap.size(runs)
    }
  })

export class RunManager extends Context.Tag("loom/RunManager")<RunManager, Service>() {
  static readonly layer = (options: Options) => Layer.scoped(RunManager, make(options))
}
