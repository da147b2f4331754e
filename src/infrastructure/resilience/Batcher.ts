/**
 * Collects calls from independent fibers into batches and runs each batch as one
 * backend call. A batch closes when it holds `maxSize` items or `maxWait` after its
 * first item arrived, whichever comes first. Every caller gets its own result; a
 * failed batch fails each of its callers; a caller interrupted before its batch
 * runs is dropped from it. Closing the scope interrupts the callers still waiting.
 *
 * Effect's RequestResolver batches only requests made in one concurrent step; this
 * batches across callers in time. It is written by hand, the least such a batcher can
 * be: a caller is one `Effect.async` parked in a plain array (no Deferred, no queue, no
 * collector fiber), a batch one fork, its window one sleeping fiber on `Clock` (so
 * `TestClock` drives it), started by the batch's first item and dropped when the
 * batch fills first.
 *
 * Why not `RequestResolver.dataLoader` from @effect/experimental: it has the same shape
 * (an `async` per caller, a fork per window), but every caller goes through
 * `Effect.request` (a blocked request, its `Request` entry and the fiber's request-block
 * machinery) and every batch is replayed through `Effect.forEach({ batching: true })` into
 * the inner resolver; `Effect.request` alone cost 100-500 µs per request here. Measured on
 * this 2-core machine under tsx, medians, a backend answering at once, batches of 100:
 * 1,000 callers at once cost 28 µs each with this batcher (13-17 µs of which is forking the
 * caller itself), 321 µs with dataLoader (34 µs with the former Queue-and-collector one);
 * 10,000 callers 45 against 531 µs. In `llm.embed-batched-1000` end to end (1,000 embeds
 * through cache, batcher and simulator), 67 ms against 358 ms.
 */
import type { Fiber, Scope } from "effect"
import { Duration, Effect, Exit, FiberId, FiberSet, Metric, MetricBoundaries } from "effect"

export interface Options<A, B, E> {
  /** Names the batcher in metrics. */
  readonly name: string
  readonly maxSize: number
  readonly maxWait: Duration.DurationInput
  /** Runs one batch; must return one result per item, in order. */
  readonly run: (items: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<B>, E>
}

export interface Batcher<A, B, E> {
  readonly submit: (item: A) => Effect.Effect<B, E>
}

export const batchSize = Metric.histogram(
  "loom_batch_size",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 10 }),
  "Items per batch run by a Batcher"
)

/** One waiting caller: its item and how to wake it. */
interface Entry<A, B, E> {
  readonly item: A
  readonly resume: (exit: Exit.Exit<B, E>) => void
  /** Interrupted before its batch ran: left out of it. */
  cancelled: boolean
}

export const make = <A, B, E>(options: Options<A, B, E>): Effect.Effect<Batcher<A, B, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxSize = Math.max(1, options.maxSize)
    const maxWait = Duration.decode(options.maxWait)
    const sizes = Metric.tagged(batchSize, "batcher", options.name)
    // Forks from inside `Effect.async` callbacks, with the context `make` ran in (its Clock);
    // the scope's close interrupts whatever is still running.
    const fork = yield* FiberSet.makeRuntime<never>()

    let buffer: Array<Entry<A, B, E>> = []
    /** Counts closed batches: a window's timer flushes only the batch it was started for. */
    let generation = 0
    let timer: Fiber.RuntimeFiber<void> | undefined
    /** Batches taken but not yet answered, so closing the scope can wake their callers. */
    const inFlight = new Set<ReadonlyArray<Entry<A, B, E>>>()
    let closed = false

    const runBatch = (batch: ReadonlyArray<Entry<A, B, E>>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const live = batch.filter((entry) => !entry.cancelled)
        if (live.length === 0) {
          inFlight.delete(batch)
          return Effect.void
        }
        return Metric.update(sizes, live.length).pipe(
          Effect.zipRight(Effect.suspend(() => options.run(live.map((entry) => entry.item)))),
          Effect.flatMap((results) =>
            results.length === live.length
              ? Effect.succeed(results)
              : Effect.die(new Error(`${options.name}: ${results.length} results for ${live.length} items`))
          ),
          Effect.exit,
          Effect.map((exit) => {
            if (!inFlight.delete(batch)) return
            if (Exit.isSuccess(exit)) {
              for (let i = 0; i < live.length; i++) live[i]!.resume(Exit.succeed(exit.value[i] as B))
            } else {
              const failed = Exit.failCause(exit.cause)
              for (const entry of live) entry.resume(failed)
            }
          })
        )
      })

    /** Closes the open batch now and runs it on its own fiber, so the next window opens meanwhile. */
    const flush = () => {
      const batch = buffer
      buffer = []
      generation++
      timer?.unsafeInterruptAsFork(FiberId.none)
      timer = undefined
      if (batch.length === 0) return
      inFlight.add(batch)
      fork(runBatch(batch))
    }

    const startWindow = () => {
      const started = generation
      timer = fork(Effect.zipRight(
        Effect.sleep(maxWait),
        Effect.sync(() => {
          if (generation === started) flush()
        })
      ))
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        const waiting = [buffer, ...inFlight]
        buffer = []
        inFlight.clear()
        timer?.unsafeInterruptAsFork(FiberId.none)
        timer = undefined
        const interrupted = Exit.interrupt(FiberId.none)
        for (const entries of waiting) {
          for (const entry of entries) entry.resume(interrupted)
        }
      })
    )

    const submit = (item: A): Effect.Effect<B, E> =>
      Effect.async<B, E>((resume) => {
        if (closed) return resume(Exit.interrupt(FiberId.none))
        const entry: Entry<A, B, E> = { item, resume, cancelled: false }
        buffer.push(entry)
        if (buffer.length >= maxSize) flush()
        else if (buffer.length === 1) startWindow()
        return Effect.sync(() => {
          entry.cancelled = true
        })
      })

    return { submit }
  })
