/**
 * N worker fibers draining a bounded queue of jobs. Overflow is explicit: `reject`
 * fails at once with `QueueFull`, `wait` suspends the caller until there is room
 * (backpressure). A job runs with its caller's context (services, parent span), so
 * a pooled call looks to the job like a direct one.
 *
 * Interruption: a caller interrupted while its job waits means the job never runs;
 * interrupted while it runs means the job is interrupted. Closing the pool's scope
 * stops intake, lets queued and running jobs finish up to `drainTimeout`, then
 * interrupts what is left; their callers fail with `Shutdown`.
 */
import type { Scope } from "effect"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Metric, Option, Queue, Schedule } from "effect"
import type { Timeout } from "../../domain/Errors.js"
import { QueueFull, Shutdown } from "../../domain/Errors.js"
import type { PoolStats } from "../../domain/PoolStats.js"
import * as MetricTags from "./MetricTags.js"
import { within } from "./Timeouts.js"

export type Overflow = "reject" | "wait"

export interface Options {
  /** Names the pool in errors and metrics. */
  readonly name: string
  readonly workers: number
  /** Jobs that may wait for a worker. */
  readonly capacity: number
  readonly overflow: Overflow
  /** Deadline for one job, from the moment a worker starts it. */
  readonly jobTimeout?: Duration.DurationInput
  /** How long closing waits for queued and running jobs (default 30 s). */
  readonly drainTimeout?: Duration.DurationInput
  /** How often the queue-depth and busy gauges are sampled (default 1 s); the hot path never touches them. */
  readonly metricsInterval?: Duration.DurationInput
}

export type Stats = PoolStats

export interface WorkerPool {
  readonly name: string
  /** Runs `job` on a worker and returns its own result. */
  readonly submit: <A, E, R>(job: Effect.Effect<A, E, R>) => Effect.Effect<A, E | QueueFull | Timeout | Shutdown, R>
  readonly stats: Effect.Effect<Stats>
}

export const queueDepth = Metric.gauge("loom_pool_queue_depth", { description: "Jobs waiting for a worker" })
export const busyWorkers = Metric.gauge("loom_pool_busy_workers", { description: "Workers running a job" })
export const rejectedJobs = MetricTags.counter("loom_pool_rejected", "Jobs refused because the queue was full")

const QUEUED = 0
const RUNNING = 1
const CANCELLED = 2

/** A job as the queue holds it: its types are closed over, so the queue holds one type. */
interface Entry {
  readonly run: Effect.Effect<void>
  readonly refuse: Effect.Effect<void>
  state: typeof QUEUED | typeof RUNNING | typeof CANCELLED
  fiber: Fiber.RuntimeFiber<void> | undefined
}

/** A job whose caller went away: never started if still queued, interrupted if running. */
const cancel = (entry: Entry): Effect.Effect<void> =>
  Effect.suspend(() => {
    const running = entry.state === RUNNING ? entry.fiber : undefined
    entry.state = CANCELLED
    return running ? Fiber.interrupt(running) : Effect.void
  })

export const make = (options: Options): Effect.Effect<WorkerPool, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { capacity, name } = options
    const queue = options.overflow === "reject"
      ? yield* Queue.dropping<Entry>(capacity)
      : yield* Queue.bounded<Entry>(capacity)
    const depthGauge = Metric.tagged(queueDepth, "pool", name)
    const busyGauge = Metric.tagged(busyWorkers, "pool", name)
    const rejectedCounter = Metric.tagged(rejectedJobs, "pool", name)
    const shutdown = new Shutdown({ component: name })
    const drainTimeout = options.drainTimeout ?? Duration.seconds(30)
    const jobTimeout = options.jobTimeout

    let busy = 0
    let rejected = 0
    let closing = false
    const idle = yield* Deferred.make<void>()

    // A queue with waiting takers reports a negative size.
    const queued = () => Math.max(0, Option.getOrElse(queue.unsafeSize(), () => 0))
    const signalIfIdle = Effect.suspend(() =>
      closing && busy === 0 && queued() === 0 ? Deferred.succeed(idle, undefined) : Effect.void
    )

    const runEntry = (entry: Entry): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (entry.state === CANCELLED) return Effect.void
        entry.state = RUNNING
        busy++
        return Effect.fork(entry.run).pipe(
          Effect.flatMap((fiber) => {
            entry.fiber = fiber
            return entry.state === CANCELLED ? Fiber.interrupt(fiber) : Fiber.await(fiber)
          }),
          Effect.ensuring(Effect.suspend(() => {
            busy--
            return signalIfIdle
          }))
        )
      })

    const worker = Queue.take(queue).pipe(Effect.flatMap(runEntry), Effect.forever)
    yield* Effect.forkScoped(worker).pipe(Effect.replicateEffect(options.workers))

    const sample = Effect.suspend(() => Effect.zipRight(Metric.set(depthGauge, queued()), Metric.set(busyGauge, busy)))
    yield* sample.pipe(
      Effect.repeat(Schedule.spaced(options.metricsInterval ?? Duration.seconds(1))),
      Effect.forkScoped
    )

    // Added after the workers, so it runs before they are interrupted.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closing = true
        yield* signalIfIdle
        // Finalizers run uninterruptibly; the wait must be interruptible for the deadline to cut it.
        yield* Effect.interruptible(Deferred.await(idle)).pipe(Effect.timeout(drainTimeout), Effect.ignore)
        const left = yield* Queue.takeAll(queue)
        yield* Effect.forEach(left, (entry) => entry.refuse, { discard: true })
        yield* Queue.shutdown(queue)
        yield* Metric.set(depthGauge, 0)
      })
    )

    const offer = (entry: Entry): Effect.Effect<void, QueueFull> =>
      Effect.flatMap(Queue.offer(queue, entry), (accepted) => {
        if (accepted) return Effect.void
        rejected++
        return Effect.zipRight(Metric.increment(rejectedCounter), Effect.fail(new QueueFull({ capacity })))
      })

    /** A job interrupted by the pool rather than by its caller was cut off by shutdown. */
    const shutdownIfInterrupted = <A, E>(cause: Cause.Cause<E>): Effect.Effect<A, E | Shutdown> =>
      closing && Cause.isInterruptedOnly(cause) ? Effect.fail(shutdown) : Effect.failCause(cause)

    const submit = <A, E, R>(job: Effect.Effect<A, E, R>): Effect.Effect<A, E | QueueFull | Timeout | Shutdown, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          if (closing) return yield* shutdown
          const context = yield* Effect.context<R>()
          const done = yield* Deferred.make<A, E | Timeout | Shutdown>()
          const bounded = jobTimeout === undefined ? job : within(`${name}.job`, jobTimeout)(job)
          const entry: Entry = {
            run: bounded.pipe(
              Effect.provide(context),
              Effect.onExit((exit) => Deferred.done(done, exit)),
              Effect.asVoid,
              Effect.catchAllCause(() => Effect.void)
            ),
            refuse: Deferred.done(done, Exit.fail(shutdown)),
            state: QUEUED,
            fiber: undefined
          }
          yield* restore(offer(entry)).pipe(Effect.catchAllCause(shutdownIfInterrupted<void, QueueFull>))
          return yield* restore(Deferred.await(done)).pipe(
            Effect.onInterrupt(() => cancel(entry)),
            Effect.catchAllCause(shutdownIfInterrupted<A, E | Timeout | Shutdown>)
          )
        })
      )

    return {
      name,
      submit,
      stats: Effect.sync(() => ({
        workers: options.workers,
        busy,
        queued: queued(),
        capacity,
        rejected,
        closing
      }))
    } satisfies WorkerPool
  })
