/**
 * A pool of worker threads for CPU-bound tasks. Queueing, overflow policy, per-task
 * deadline, draining shutdown and metrics come from `WorkerPool` (one pool worker per
 * thread); each running task holds one thread. `prestart` threads start with the pool,
 * the others when tasks first need them, never more than `size`, and then stay. Tasks and results cross the thread boundary
 * Schema-encoded (@effect/platform Worker).
 *
 * A CPU task is synchronous inside its thread and cannot stop cooperatively, so a
 * task whose caller is interrupted, or that crashes its thread, costs that thread: it is
 * terminated and a fresh one takes its place. Other tasks never notice.
 */
import * as NodeWorker from "@effect/platform-node/NodeWorker"
import * as Worker from "@effect/platform/Worker"
import type { WorkerError } from "@effect/platform/WorkerError"
import type { ParseResult } from "effect"
import { Cause, Duration, Effect, Exit, Metric, Queue, Schedule, Schema, Scope } from "effect"
import type * as WorkerThreads from "node:worker_threads"
import { CpuProtocolError, CpuWorkerCrashed } from "../../domain/Cpu.js"
import type { CpuPoolError, CpuStats } from "../../domain/Cpu.js"
import * as MetricTags from "../resilience/MetricTags.js"
import * as WorkerPool from "../resilience/WorkerPool.js"

export interface Options {
  readonly name: string
  /** Threads (default: the machine's cores). */
  readonly size: number
  /** Tasks that may wait for a thread. */
  readonly capacity: number
  readonly overflow: WorkerPool.Overflow
  /**
   * Threads started with the pool (default: all `size`); the rest start when tasks first
   * need them. An idle service that may never run a CPU task starts none (0).
   */
  readonly prestart?: number
  /** Starts one worker thread on the entry that answers the pool's tasks. */
  readonly spawn: () => WorkerThreads.Worker
  /** A thread that is not ready within this fails loudly instead of being retried forever (default 30 s). */
  readonly startTimeout?: Duration.DurationInput
  readonly taskTimeout?: Duration.DurationInput
  readonly drainTimeout?: Duration.DurationInput
}

export interface CpuPool<I extends Schema.TaggedRequest.All> {
  readonly run: <Req extends I>(
    task: Req
  ) => Effect.Effect<Schema.WithResult.Success<Req>, Schema.WithResult.Failure<Req> | CpuPoolError>
  readonly stats: Effect.Effect<CpuStats>
}

export const tasks = MetricTags.counter("loom_cpu_tasks", "CPU tasks by pool, task and outcome")

export const restarts = MetricTags.counter(
  "loom_cpu_worker_restarts",
  "Worker threads replaced after a crash or an interrupted task"
)

interface Slot<I extends Schema.TaggedRequest.All> {
  readonly worker: Worker.SerializedWorker<I>
  readonly thread: WorkerThreads.Worker
  readonly scope: Scope.CloseableScope
}

/** A thread that died, or did not start, as the task's typed failure. */
const crashedIn = (pool: string) => (error: WorkerError | Cause.TimeoutException) =>
  new CpuWorkerCrashed({
    pool,
    message: error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message
  })

/**
 * @effect/platform decodes every failure, a dead thread's WorkerError included, with
 * the task's failure schema; a failure that does not decode is therefore either a
 * thread that died (the WorkerError is what did not decode) or a broken reply.
 */
const classifyIn = (pool: string) =>
<E>(
  error: E | WorkerError | ParseResult.ParseError
): E | CpuWorkerCrashed | CpuProtocolError => {
  const cause = isTagged(error, "ParseError") ? (error as ParseResult.ParseError).issue.actual : error
  if (isWorkerError(cause)) {
    return cause.reason === "encode" || cause.reason === "decode"
      ? new CpuProtocolError({ pool, message: cause.message })
      : crashedIn(pool)(cause)
  }
  return isTagged(error, "ParseError")
    ? new CpuProtocolError({ pool, message: (error as ParseResult.ParseError).message })
    : error as E
}

export const make = <I extends Schema.TaggedRequest.All>(options: Options) =>
  Effect.gen(function*() {
    /** Terminates the thread outright (a busy thread ignores polite requests), then its scope. */
    const retire = (slot: Slot<I>) =>
      Effect.promise(() => slot.thread.terminate()).pipe(Effect.zipRight(Scope.close(slot.scope, Exit.void)))

    const idle = yield* Queue.unbounded<Slot<I>>()
    // Threads past `prestart` start on demand, up to `size` (each costs a V8 isolate, tens of MB).
    let started = 0
    // Closing, after the pool below has drained (finalizers run in reverse): every thread left is terminated.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Queue.takeAll(idle), (left) =>
        Effect.zipRight(
          Effect.forEach(left, retire, { discard: true }),
          started > 0
            ? Effect.logInfo(`CPU pool ${options.name}: drained, ${left.length} thread(s) stopped`)
            : Effect.void
        ))
    )
    const pool = yield* WorkerPool.make({
      name: options.name,
      workers: options.size,
      capacity: options.capacity,
      overflow: options.overflow,
      ...(options.taskTimeout === undefined ? {} : { jobTimeout: options.taskTimeout }),
      ...(options.drainTimeout === undefined ? {} : { drainTimeout: options.drainTimeout })
    })
    const outer = yield* Effect.scope
    const crashed = crashedIn(options.name)
    let replaced = 0

    const spawnSlot: Effect.Effect<Slot<I>, CpuWorkerCrashed> = Effect.gen(function*() {
      const scope = yield* Scope.make()
      let thread: WorkerThreads.Worker | undefined
      const worker = yield* Worker.makeSerialized<I>({} as Worker.SerializedWorker.Options<I>).pipe(
        Effect.provide(NodeWorker.layer(() => {
          thread = options.spawn()
          return thread
        })),
        Scope.extend(scope),
        Effect.timeout(options.startTimeout ?? Duration.seconds(30)),
        Effect.mapError(crashed),
        Effect.tapError(() => Scope.close(scope, Exit.void))
      )
      if (thread === undefined) return yield* new CpuWorkerCrashed({ pool: options.name, message: "no thread spawned" })
      return { worker, thread, scope }
    })

    /** Replaces a spent thread in the background, so an interrupted caller returns at once. */
    const replace = (slot: Slot<I>) =>
      Effect.gen(function*() {
        replaced++
        yield* Metric.increment(Metric.tagged(restarts, "pool", options.name))
        yield* Effect.forkIn(
          retire(slot).pipe(
            // keep trying (with backoff) rather than lose the slot for good
            Effect.zipRight(
              spawnSlot.pipe(
                Effect.tapError((error) => Effect.logWarning(`CPU pool ${options.name}: ${error.message}; retrying`)),
                Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds"))))
              )
            ),
            Effect.flatMap((fresh) => Queue.offer(idle, fresh))
          ),
          outer
        )
      })

    /**
     * An idle thread, a new one while fewer than `size` run (started uninterruptibly, so that
     * a thread is never left half-made), or else the next one given back.
     */
    const acquire = (restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(Queue.poll(idle), (ready): Effect.Effect<Slot<I>, CpuWorkerCrashed> => {
        if (ready._tag === "Some") return Effect.succeed(ready.value)
        if (started >= options.size) return restore(Queue.take(idle))
        started++
        return Effect.onExit(spawnSlot, (exit) =>
          Effect.sync(() => {
            if (Exit.isFailure(exit)) started--
          }))
      })

    const prestart = Math.min(options.size, options.prestart ?? options.size)
    started = prestart
    const slots = yield* Effect.forEach(Array.from({ length: prestart }), () => spawnSlot, {
      concurrency: "unbounded"
    }).pipe(Effect.orDie)
    yield* Queue.offerAll(idle, slots)

    /** A thread survives a result, the task's own failure or a broken reply; not an interruption or its own death. */
    const release = (slot: Slot<I>, exit: Exit.Exit<unknown, unknown>) => {
      const healthy = Exit.isSuccess(exit) ||
        (!Cause.isInterrupted(exit.cause) &&
          Cause.failureOption(exit.cause).pipe((failure) =>
            failure._tag === "Some" && !isTagged(failure.value, "CpuWorkerCrashed")
          ))
      return healthy ? Queue.offer(idle, slot) : replace(slot)
    }

    // Waiting for a thread stays interruptible (a deadline or a cancelled caller ends the
    // wait); once a thread is taken, it is always given back or replaced.
    const onThread = <Req extends I>(task: Req) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(acquire(restore), (slot) =>
          restore(
            (slot.worker.executeEffect(task) as unknown as Effect.Effect<
              Schema.WithResult.Success<Req>,
              Schema.WithResult.Failure<Req> | WorkerError | ParseResult.ParseError
            >).pipe(Effect.mapError(classifyIn(options.name)))
          ).pipe(Effect.onExit((exit) => release(slot, exit))))
      )

    const run = <Req extends I>(task: Req) =>
      pool.submit(onThread(task)).pipe(
        Effect.onExit((exit) =>
          Metric.increment(MetricTags.tagged(tasks, { pool: options.name, task: task._tag, outcome: outcomeOf(exit) }))
        ),
        Effect.withSpan("CpuPool.run", { attributes: { "loom.task": task._tag }, captureStackTrace: false })
      ) as Effect.Effect<Schema.WithResult.Success<Req>, Schema.WithResult.Failure<Req> | CpuPoolError>

    return {
      run,
      stats: Effect.map(pool.stats, (stats) => ({ ...stats, restarts: replaced, threads: started }))
    } satisfies CpuPool<I>
  })

const isTagged = (error: unknown, tag: string): boolean =>
  typeof error === "object" && error !== null && "_tag" in error && error._tag === tag

const isWorkerError = (error: unknown): error is WorkerError => isTagged(error, "WorkerError")

/** `succeeded`, `interrupted`, or the failure's tag (`CpuTaskFailed`, `CpuWorkerCrashed`, `QueueFull`, ...). */
const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "succeeded"
  if (Cause.isInterruptedOnly(exit.cause)) return "interrupted"
  const failure = Cause.failureOption(exit.cause)
  return failure._tag === "Some" && typeof failure.value === "object" && failure.value !== null &&
      "_tag" in failure.value && typeof failure.value._tag === "string"
    ? failure.value._tag
    : "defect"
}
