/**
 * The runs a service holds. Each run is a durable execution on the @effect/workflow
 * engine (`DurableRun.LoomRun`, keyed by its thread id): starting one persists it with
 * the engine and returns once it has begun, so it outlives the request that started it
 * (a client that disconnects cancels nothing), runs on whichever runner holds its shard,
 * and is picked up again by the engine after a crash or a shutdown (marked `interrupted`
 * in between). The execution's body drives Loom's engine on the run's graph, with each
 * node an Activity. At most `maxRuns` run in this process at once: a start beyond that
 * is refused with QueueFull, and a run the engine hands this runner from elsewhere (a
 * start through another runner, a runner that died) waits for a place.
 */
import { WorkflowEngine as DurableEngine } from "@effect/workflow/WorkflowEngine"
import type { WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import type { Duration, Scope } from "effect"
import {
  Context,
  Deferred,
  Effect,
  FiberSet,
  Layer,
  Option,
  ParseResult,
  Schedule,
  Schema,
  Stream,
  SubscriptionRef
} from "effect"
import * as Crypto from "node:crypto"
import { Checkpoint, CheckpointStore } from "../domain/CheckpointStore.js"
import type { StoredEvent } from "../domain/CheckpointStore.js"
import { QueueFull } from "../domain/Errors.js"
import type { CheckpointCorrupt } from "../domain/Workflow.js"
import {
  isOver,
  isTerminal,
  pendingInterrupts,
  Resumed,
  RunExists,
  RunNotFound,
  RunRecord,
  ThreadId
} from "../domain/Workflow.js"
import * as Durability from "./Durability.js"
import * as DurableRun from "./DurableRun.js"
import { ForkRequest, HistoryEntry, historyOf, InvalidForkState, StepNotFound } from "./RunHistory.js"
import type { RunKind } from "./RunKind.js"
import { InvalidResumeValue, NotWaiting, ResumeRequest, RunRequest, UnknownRunKind } from "./RunRequests.js"
import type { Multitask } from "./RunRequests.js"
import { ShuttingDown } from "./Shutdown.js"

export { ForkRequest, HistoryEntry, historyOf, InvalidForkState, StepNotFound } from "./RunHistory.js"
export { runKind } from "./RunKind.js"
export type { RunKind } from "./RunKind.js"
export { InvalidResumeValue, Multitask, NotWaiting, ResumeRequest, RunRequest, UnknownRunKind } from "./RunRequests.js"

export interface Options {
  /** What `{"kind":"workflow","name":...}` may name. */
  readonly workflows: ReadonlyArray<RunKind>
  /** `{"kind":"agent","name":...}` runs: the workflow that runs an agent, and the agents it may name (default none). */
  readonly agents?: { readonly kind: RunKind; readonly names: ReadonlySet<string> }
  readonly maxRuns: number
  /** How often a followed run's new events are read from the store, when it runs in another process. */
  readonly followEvery?: Duration.DurationInput
  /** How often a run checks whether another process cancelled it (default 1 s). */
  readonly cancelEvery?: Duration.DurationInput
  /** How long `start` waits for a run handed to the engine to begin (default 30 s); it runs all the same after. */
  readonly beginWithin?: Duration.DurationInput
}

/**
 * A run whose events have stopped coming: not running, waiting for a person or queued
 * (its followers wait with it).
 */
const ended = (run: RunRecord) => run.status !== "running" && run.status !== "waiting" && run.status !== "queued"

/** A run its thread's later run rolled back: its checkpoints and events are removed once it has stopped. */
const rolledBack = (run: RunRecord) => run.status === "cancelled" && run.supersededBy !== undefined

/** A run that must stop where it is: cancelled, or superseded by a later run of its thread. */
const stopped = (run: RunRecord) => run.status === "cancelled" || run.supersededBy !== undefined

const isThreadId = Schema.is(ThreadId)

/** The id as a ThreadId; an id no run can have (see `threadIdPattern`) is an unknown run, not a crash. */
const knownId = (id: string): Effect.Effect<ThreadId, RunNotFound> =>
  isThreadId(id) ? Effect.succeed(id) : Effect.fail(new RunNotFound({ threadId: id }))

/** The run kind a request names, or why there is none. */
const kindOf = (options: Options, request: RunRequest): Effect.Effect<RunKind, UnknownRunKind> => {
  const kind = request.kind === "agent"
    ? (options.agents?.names.has(request.name) ? options.agents.kind : undefined)
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

/** The runs of a service: start, inspect, follow and cancel them. */
export interface Service {
  /** Starts a run in the background; answers once it has begun, with its thread id. */
  readonly start: (request: RunRequest) => Effect.Effect<ThreadId, UnknownRunKind | QueueFull | RunExists>
  readonly get: (id: string) => Effect.Effect<RunRecord, RunNotFound>
  readonly list: Effect.Effect<ReadonlyArray<RunRecord>>
  /** The runs of a thread, in turn order (none for an unknown thread). */
  readonly thread: (thread: string) => Effect.Effect<ReadonlyArray<RunRecord>>
  /** Gives a waiting run the value for one of its interrupts; it goes on (on whichever runner holds it). */
  readonly resume: (
    id: string,
    request: ResumeRequest
  ) => Effect.Effect<RunRecord, RunNotFound | NotWaiting | InvalidResumeValue>
  /** The run's checkpoints, oldest first: after each step, its state and the nodes to run next. */
  readonly history: (id: string) => Effect.Effect<ReadonlyArray<HistoryEntry>, RunNotFound>
  /** A new run from the checkpoint at `step`, with `state` merged in; the original run is left as it is. */
  readonly fork: (
    id: string,
    request: ForkRequest
  ) => Effect.Effect<ThreadId, RunNotFound | StepNotFound | InvalidForkState | RunExists | QueueFull>
  /** Stops a run for good, on whichever runner holds it; it stays `cancelled`. */
  readonly cancel: (id: string) => Effect.Effect<RunRecord, RunNotFound>
  /** A run's stored events after `after`, then its new ones, until it ends or the service shuts down. */
  readonly follow: (id: string, after?: number) => Stream.Stream<StoredEvent, RunNotFound | CheckpointCorrupt>
  /** Runs going on in this process now. */
  readonly running: Effect.Effect<number>
}

/** The first thing wrong in a decoded request field `root`: its dotted path (`value.approved`), and why. */
const firstIssue = (root: string, error: ParseResult.ParseError) => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const field = [root, ...(issue?.path ?? [])].join(".")
  return { field, message: `${field}: ${issue?.message ?? error.message}` }
}

/** A run executing in this process: bumped on each of its events (its followers wait on it), and its stop signal. */
interface Live {
  readonly version: SubscriptionRef.SubscriptionRef<number>
  readonly cancelled: Deferred.Deferred<void>
}

export const make = (
  options: Options
): Effect.Effect<Service, never, Scope.Scope | CheckpointStore | DurableEngine> =>
  Effect.gen(function*() {
    const store = yield* CheckpointStore
    const engine = yield* DurableEngine
    // a service ends its followers' streams when it starts to shut down; a library user's last as long as the run
    const shutdown = Option.match(yield* Effect.serviceOption(ShuttingDown), {
      onNone: () => Effect.never,
      onSome: Deferred.await
    })
    const cancelEvery = options.cancelEvery ?? "1 second"
    const kinds = new Map(
      [...(options.agents === undefined ? [] : [options.agents.kind]), ...options.workflows].map((kind) => [
        kind.workflow,
        kind
      ])
    )
    /** Runs in this process, running or waiting for a place. */
    const live = new Map<string, Live>()
    /** This runner's capacity: runs the engine hands it beyond `maxRuns` wait for a place. */
    const places = yield* Effect.makeSemaphore(options.maxRuns)
    /** Starts waiting here for their run to begin, when it runs in this process. */
    const begun = new Map<string, Deferred.Deferred<void>>()
    const bump = (ref: SubscriptionRef.SubscriptionRef<number>) => SubscriptionRef.update(ref, (n) => n + 1)

    /** Bumped when a run of this process ends or another is stopped from here: queued runs look at their turn again. */
    const endings = yield* SubscriptionRef.make(0)

    /**
     * Ends when the run is cancelled or superseded: from this process at once, from another
     * one within `cancelEvery`.
     */
    const cancelled = (threadId: ThreadId, signal: Deferred.Deferred<void>) =>
      Effect.race(
        Deferred.await(signal),
        Effect.repeat(
          Effect.flatMap(Effect.option(store.getRun(threadId)), (run) =>
            Option.exists(run, stopped)
              ? Effect.succeed(true)
              : Effect.sleep(cancelEvery).pipe(Effect.as(false))),
          {
            until: (done) => done
          }
        )
      )

    /** Removes the checkpoints and events of a run rolled back, once nothing writes to them. */
    const clearIfRolledBack = (threadId: ThreadId) =>
      Effect.flatMap(
        Effect.option(store.getRun(threadId)),
        (run) => Option.exists(run, rolledBack) ? store.clear(threadId) : Effect.void
      )

    /**
     * Waits until every earlier run of the run's thread has ended for good, looking again
     * whenever a run here ends, and every second for runs elsewhere. False when the run
     * itself ended meanwhile (cancelled, superseded).
     */
    const turnComes = (run: RunRecord): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        const thread = run.thread ?? run.threadId
        const turn = run.turn ?? 1
        // a thread's first run waits for nobody (a replay, a fork): no read
        if (turn === 1) return true
        for (;;) {
          const seen = yield* SubscriptionRef.get(endings)
          const runs = yield* store.threadRuns(thread)
          const self = runs.find((other) => other.threadId === run.threadId)
          if (self === undefined || isOver(self)) return false
          if (runs.every((other) => (other.turn ?? 1) >= turn || isOver(other))) return true
          yield* endings.changes.pipe(
            Stream.filter((version) => version !== seen),
            Stream.runHead,
            Effect.timeout(cancelEvery),
            Effect.ignore
          )
        }
      })

    /**
     * The execution's body: the run from its start, or from its last checkpoint when it
     * has one (a replay after a crash, a shutdown or a move to another runner). Its nodes
     * are Activities of the execution. A run that ended for good is left as it is.
     */
    const execute = (payload: DurableRun.Payload) =>
      Effect.gen(function*() {
        const { threadId } = payload
        const kind = kinds.get(payload.kind)
        if (kind === undefined) return yield* Effect.logWarning(`run ${threadId}: no run kind ${payload.kind} here`)
        const saved = yield* Effect.option(store.getRun(threadId))
        if (Option.exists(saved, isOver)) return
        if (Option.isSome(saved) && !(yield* turnComes(saved.value))) return
        if (Option.isSome(saved) && saved.value.status !== "queued") {
          yield* Effect.logInfo(`resuming run ${threadId} (${saved.value.workflow}) from step ${saved.value.step}`)
        }
        const events = Option.isSome(saved) ? kind.resume(threadId) : kind.run(threadId, payload.name, payload.input)
        const context = yield* Effect.context<DurableEngine | WorkflowInstance>()
        const run: Live = { version: yield* SubscriptionRef.make(0), cancelled: yield* Deferred.make<void>() }
        live.set(threadId, run)
        const started = begun.get(threadId)
        yield* events.pipe(
          Stream.tap(() =>
            Effect.zipRight(
              started === undefined ? Effect.void : Deferred.succeed(started, undefined),
              bump(run.version)
            )
          ),
          Stream.runDrain,
          Effect.provideService(Durability.Durability, DurableRun.activities(context)),
          places.withPermits(1),
          Effect.raceFirst(cancelled(threadId, run.cancelled)),
          Effect.ensuring(
            Effect.zipRight(bump(run.version), Effect.sync(() => live.delete(threadId))).pipe(
              Effect.zipRight(bump(endings))
            )
          )
        )
      }).pipe(
        // however the execution ends (done, stopped, suspended to wait, cut off), a run rolled back meanwhile is
        // cleared after it, when nothing of it writes any more
        Effect.ensuring(clearIfRolledBack(payload.threadId))
      )
    yield* engine.register(DurableRun.LoomRun, execute)
    // Closing the service: says which runs it cuts off, before the engine interrupts them (finalizers run in reverse:
    // this one before the registration's, which stops the runner).
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const cut = Array.from(live.keys())
        return cut.length === 0
          ? Effect.logInfo("no run was running")
          : Effect.logInfo(
            `interrupting ${cut.length} running run(s) (${cut.join(", ")}): each is marked interrupted ` +
              "and the engine resumes it from its last finished node on the next start"
          )
      })
    )

    /** Waits (up to `beginWithin`) for a run just handed to the engine to begin: told at once here, polled elsewhere. */
    const begins = (threadId: ThreadId, signal: Deferred.Deferred<void>) =>
      Effect.race(
        Deferred.await(signal),
        Effect.repeat(Effect.either(store.getRun(threadId)), {
          until: (found) => found._tag === "Right",
          schedule: Schedule.spaced("25 millis")
        })
      ).pipe(Effect.timeout(options.beginWithin ?? "30 seconds"), Effect.ignore)

    /** Hands a run to the engine, and waits for it to begin. */
    const hand = (threadId: ThreadId, kind: string, name: string, input: string) =>
      Effect.gen(function*() {
        const signal = yield* Deferred.make<void>()
        begun.set(threadId, signal)
        yield* DurableRun.LoomRun.execute({ threadId, kind, name, input }, { discard: true }).pipe(
          Effect.provideService(DurableEngine, engine),
          Effect.zipRight(begins(threadId, signal)),
          Effect.ensuring(Effect.sync(() => begun.delete(threadId)))
        )
      })

    /**
     * A run on a thread that has one already, as `multitask` says: the thread's runs not
     * ended are superseded first (interrupt, rollback), then the new run is stored at the
     * thread's next turn, queued, and handed to the engine; its execution starts once
     * every earlier run of the thread has ended. Two starts racing for one turn: the loser
     * tries again behind (or over) the winner.
     */
    const nextTurn = (kind: RunKind, thread: ThreadId, request: RunRequest, multitask: Multitask) =>
      Effect.gen(function*() {
        const runs = yield* store.threadRuns(thread)
        const threadId = ThreadId.make(Crypto.randomUUID())
        const current = runs.filter((run) => !isOver(run))
        // checked before anything is stopped; the runs it stops give their places back
        const busy = live.size - current.filter((run) => live.has(run.threadId)).length
        if (multitask !== "enqueue" && busy >= options.maxRuns) {
          return yield* new QueueFull({ capacity: options.maxRuns })
        }
        const turn = Math.max(1, ...runs.map((run) => run.turn ?? 1)) + 1
        const first = yield* kind.first(request.name, request.input)
        // the new run is stored first: a start that loses the race for its turn has stopped nothing
        yield* store.create(threadId, kind.workflow, first, [], { thread, turn, status: "queued" })
        if (multitask !== "enqueue") {
          const status = multitask === "interrupt" ? "interrupted" : "cancelled"
          yield* Effect.forEach(current, (run) => supersede(run, threadId, status), { discard: true })
        }
        yield* hand(threadId, kind.workflow, request.name, request.input)
        return threadId
      }).pipe(
        Effect.retry({ times: 3, while: (error) => error._tag === "RunExists" }),
        Effect.catchTag("RunExists", () => Effect.fail(new RunExists({ threadId: thread })))
      )

    /**
     * Stops `run` for the later run `by`: kept as interrupted, or cancelled and rolled back.
     * A run rolled back while it executes is cleared by its execution once it has stopped
     * (a write of a node in flight would otherwise land after); one that is not executing
     * (waiting, queued, cut off) is cleared here, and by its execution too if it picks it up.
     */
    const supersede = (run: RunRecord, by: ThreadId, status: "interrupted" | "cancelled") =>
      Effect.gen(function*() {
        const moved = yield* store.supersede(run.threadId, by, status, [])
        const here = live.get(run.threadId)
        if (here !== undefined) yield* Deferred.succeed(here.cancelled, undefined)
        if (moved && status === "cancelled" && run.status !== "running") yield* store.clear(run.threadId)
        yield* bump(endings)
      })

    const start = (request: RunRequest): Effect.Effect<ThreadId, UnknownRunKind | QueueFull | RunExists> =>
      Effect.gen(function*() {
        const kind = yield* kindOf(options, request)
        const threadId = ThreadId.make(request.threadId ?? Crypto.randomUUID())
        const existing = yield* Effect.either(store.getRun(threadId))
        if (existing._tag === "Left" && !live.has(threadId) && !begun.has(threadId)) {
          if (live.size >= options.maxRuns) return yield* new QueueFull({ capacity: options.maxRuns })
          yield* hand(threadId, kind.workflow, request.name, request.input)
          return threadId
        }
        // A known id is refused before anything starts (a running run under it must not be touched), unless the
        // request says what to do on a busy thread and the id names a thread (not a later run of one).
        const multitask = request.multitask ?? "reject"
        if (multitask === "reject" || (existing._tag === "Right" && existing.right.thread !== threadId)) {
          return yield* new RunExists({ threadId })
        }
        return yield* nextTurn(kind, threadId, request, multitask)
      }).pipe(Effect.withSpan("RunManager.start", { captureStackTrace: false }))

    /** What a waiting run waits on: its interrupts asked and not resumed yet. */
    const pendingOf = (threadId: ThreadId) =>
      Effect.map(Effect.orDie(store.events(threadId)), (events) => pendingInterrupts(events.map((e) => e.event)))

    const get = (id: string): Effect.Effect<RunRecord, RunNotFound> =>
      Effect.flatMap(knownId(id), (threadId) =>
        Effect.flatMap(store.getRun(threadId), (run) =>
          run.status === "waiting"
            ? Effect.map(pendingOf(threadId), (waiting) => new RunRecord({ ...run, waiting }))
            : Effect.succeed(run)))

    /**
     * The engine may miss a value given just before the run's suspension is stored
     * (Effect-TS/effect#6318): the run would wait for good. After a resume, a run that
     * has stored nothing new a while later is asked to carry on again (a few times); a run
     * that is not suspended ignores it.
     */
    const nudges = yield* FiberSet.make()
    const nudge = (threadId: ThreadId, executionId: string, afterSeq: number) => {
      const loop = (delays: ReadonlyArray<Duration.DurationInput>): Effect.Effect<void> =>
        delays.length === 0 ? Effect.void : Effect.gen(function*() {
          yield* Effect.sleep(delays[0]!)
          const since = yield* Effect.orDie(store.events(threadId, afterSeq))
          if (since.length > 0) return
          yield* engine.resume(DurableRun.LoomRun, executionId)
          yield* loop(delays.slice(1))
        })
      return FiberSet.run(nudges, loop(["1 second", "3 seconds", "10 seconds"]))
    }

    const resume = (
      id: string,
      request: ResumeRequest
    ): Effect.Effect<RunRecord, RunNotFound | NotWaiting | InvalidResumeValue> =>
      Effect.gen(function*() {
        const threadId = yield* knownId(id)
        const run = yield* store.getRun(threadId)
        // while another resume's replay is under way the run may read `running`: what it waits on is in its events
        const pending = !isOver(run) &&
            (run.status === "waiting" || run.status === "running" || run.status === "interrupted")
          ? yield* pendingOf(threadId)
          : []
        const keys = pending.map((interrupt) => interrupt.key)
        const chosen = request.interrupt === undefined
          ? (pending.length === 1 ? pending[0] : undefined)
          : pending.find((interrupt) => interrupt.key === request.interrupt)
        const interrupt = chosen === undefined ? undefined : kinds.get(run.workflow)?.interrupts.get(chosen.name)
        if (chosen === undefined || interrupt === undefined) {
          return yield* new NotWaiting({
            threadId,
            waiting: keys,
            message: pending.length === 0
              ? `run ${threadId} is ${run.status}, not waiting for a value`
              : chosen === undefined
              ? `run ${threadId} waits on ${keys.join(", ")}: name one as "interrupt"`
              : `interrupt ${chosen.name} is not declared by workflow ${run.workflow}`
          })
        }
        const value = yield* Schema.decodeUnknown(interrupt.resume)(request.value).pipe(
          Effect.mapError((error) =>
            new InvalidResumeValue({ threadId, key: chosen.key, ...firstIssue("value", error) })
          )
        )
        const encoded = yield* Effect.orDie(Schema.encode(interrupt.resume)(value))
        const left = pending.length - 1
        const moved = yield* store.setStatus(threadId, left > 0 ? "waiting" : "running", [
          new Resumed({ key: chosen.key, value: encoded })
        ])
        // cancelled or superseded since it was read: the value goes nowhere
        const now = moved ? undefined : yield* store.getRun(threadId)
        if (now !== undefined && isOver(now)) {
          return yield* new NotWaiting({
            threadId,
            waiting: [],
            message: `run ${threadId} is ${now.status}, not waiting for a value`
          })
        }
        const executionId = yield* DurableRun.giveValue(threadId, chosen.key, interrupt.resume, value).pipe(
          Effect.provideService(DurableEngine, engine)
        )
        const stored = yield* Effect.orDie(store.events(threadId))
        yield* nudge(threadId, executionId, stored[stored.length - 1]?.seq ?? 0)
        return yield* get(id)
      })

    const history = (id: string): Effect.Effect<ReadonlyArray<HistoryEntry>, RunNotFound> =>
      Effect.flatMap(
        knownId(id),
        (threadId) =>
          Effect.flatMap(
            store.getRun(threadId),
            () => Effect.map(Effect.orDie(store.events(threadId)), (events) => historyOf(events.map((e) => e.event)))
          )
      )

    /**
     * A fork is a new run whose first checkpoint is the chosen one with the update merged
     * in: it is stored first, then handed to the engine, whose execution resumes it from
     * there like any run cut off.
     */
    const fork = (
      id: string,
      request: ForkRequest
    ): Effect.Effect<ThreadId, RunNotFound | StepNotFound | InvalidForkState | RunExists | QueueFull> =>
      Effect.gen(function*() {
        const from = yield* knownId(id)
        const run = yield* store.getRun(from)
        const entries = yield* history(from)
        const entry = entries.find((entry) => entry.step === request.step)
        if (entry === undefined) {
          const steps = entries.map((entry) => entry.step)
          return yield* new StepNotFound({
            threadId: from,
            step: request.step,
            steps,
            message: `run ${from} has no checkpoint at step ${request.step} (it has: ${steps.join(", ") || "none"})`
          })
        }
        const kind = kinds.get(run.workflow)
        if (kind === undefined) return yield* Effect.dieMessage(`no run kind ${run.workflow} here`)
        const state = yield* kind.merge(entry.state, request.state ?? {}).pipe(
          Effect.mapError((error) => new InvalidForkState(firstIssue("state", error)))
        )
        if (live.size >= options.maxRuns) return yield* new QueueFull({ capacity: options.maxRuns })
        const threadId = ThreadId.make(request.threadId ?? Crypto.randomUUID())
        yield* store.create(threadId, run.workflow, new Checkpoint({ step: entry.step, state, next: entry.next }), [])
        yield* hand(threadId, run.workflow, "", "")
        return threadId
      })

    const cancel = (id: string): Effect.Effect<RunRecord, RunNotFound> =>
      Effect.gen(function*() {
        const threadId = yield* knownId(id)
        const run = yield* store.getRun(threadId)
        if (isOver(run)) return run
        // refused (and the run left as it is) when it finished first; a runner elsewhere sees it within `cancelEvery`
        yield* store.setStatus(threadId, "cancelled", [])
        const here = live.get(threadId)
        if (here !== undefined) yield* Deferred.succeed(here.cancelled, undefined)
        yield* bump(endings)
        return yield* store.getRun(threadId)
      })

    /** `follow` for an id that may name a run. */
    const followKnown = (threadId: ThreadId, after: number) =>
      Stream.paginateEffect({ after }, (cursor) =>
        Effect.gen(function*() {
          const version = live.get(threadId)?.version
          const seen = version === undefined ? undefined : yield* SubscriptionRef.get(version)
          const run = yield* store.getRun(threadId)
          const events = yield* store.events(threadId, cursor.after)
          const last = events[events.length - 1]
          if (ended(run) || events.some((e) => isTerminal(e.event))) return [events, Option.none()] as const
          // a run waiting for a person may wait long: its store is read less often meanwhile
          if (events.length === 0) {
            yield* news(version, seen, run.status === "waiting" ? "1 second" : options.followEvery ?? "100 millis")
          }
          return [events, Option.some({ after: last?.seq ?? cursor.after })] as const
        })).pipe(
          Stream.flattenIterables,
          Stream.interruptWhen(shutdown)
        )

    /**
     * A run's stored events after `after` (a reconnecting client's Last-Event-ID), then
     * its new ones as they are saved, until it ends or the
     * service shuts down. The status is read before the events, so the events that end
     * a run are always read after it has ended.
     */
    const follow = (id: string, after = 0): Stream.Stream<StoredEvent, RunNotFound | CheckpointCorrupt> =>
      Stream.unwrap(Effect.map(knownId(id), (threadId) => followKnown(threadId, after)))

    return {
      start,
      get,
      list: store.listRuns,
      thread: (thread) => isThreadId(thread) ? store.threadRuns(thread) : Effect.succeed([]),
      resume,
      history,
      fork,
      cancel,
      follow,
      running: Effect.sync(() => live.size)
    }
  })

export class RunManager extends Context.Tag("loom/RunManager")<RunManager, Service>() {
  static readonly layer = (options: Options) => Layer.scoped(RunManager, make(options))
}
