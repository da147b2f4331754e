/**
 * Collects calls from independent fibers into batches and runs each batch as one
 * backend call. A batch closes when it holds `maxSize` items or `maxWait` after its
 * first item arrived, whichever comes first. Every caller gets its own result; a
 * failed batch fails each of its callers; a caller interrupted before its batch
 * runs is dropped from it.
 *
 * Effect's RequestResolver batches only requests made in one concurrent step; this
 * batches across callers in time, on a Queue and a Deferred per caller.
 */
import type { Scope } from "effect"
import { Deferred, Duration, Effect, Exit, Metric, MetricBoundaries, Option, Queue } from "effect"

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

interface Entry<A, B, E> {
  readonly item: A
  readonly deferred: Deferred.Deferred<B, E>
  cancelled: boolean
}

export const make = <A, B, E>(options: Options<A, B, E>): Effect.Effect<Batcher<A, B, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Entry<A, B, E>>(), Queue.shutdown)
    const maxWait = Duration.toMillis(options.maxWait)
    const sizes = Metric.tagged(batchSize, "batcher", options.name)
    const scope = yield* Effect.scope

    const runBatch = (entries: ReadonlyArray<Entry<A, B, E>>): Effect.Effect<void> => {
      const live = entries.filter((entry) => !entry.cancelled)
      if (live.length === 0) return Effect.void
      return Metric.update(sizes, live.length).pipe(
        Effect.zipRight(Effect.exit(options.run(live.map((entry) => entry.item)))),
        Effect.map((exit) =>
          Exit.isSuccess(exit) && exit.value.length !== live.length
            ? Exit.die(new Error(`${options.name}: ${exit.value.length} results for ${live.length} items`))
            : exit
        ),
        Effect.flatMap((exit) =>
          Effect.forEach(live, (entry, i) =>
            Exit.isSuccess(exit)
              ? Deferred.succeed(entry.deferred, exit.value[i] as B)
              : Deferred.failCause(entry.deferred, exit.cause), { discard: true })
        )
      )
    }

    // Set while a window is open; a submitter that fills the batch wakes the collector early.
    let wake: Deferred.Deferred<void> | undefined
    const queued = () => Math.max(0, Option.getOrElse(queue.unsafeSize(), () => 0))

    /**
     * One window: wait for a first item, then until the batch could be full or `maxWait` has
     * passed since that item (one timer per batch, not per item), then take what is there.
     */
    const collect = Effect.gen(function*() {
      const first = yield* Queue.take(queue)
      if (options.maxSize > 1) {
        if (queued() < options.maxSize - 1) {
          const signal = yield* Deferred.make<void>()
          wake = signal
          yield* Effect.raceFirst(Deferred.await(signal), Effect.sleep(maxWait))
          wake = undefined
        }
      }
      const rest = options.maxSize > 1 ? yield* Queue.takeUpTo(queue, options.maxSize - 1) : []
      // The batch runs on its own fiber, so the next window opens while it is in flight.
      yield* Effect.forkIn(runBatch([first, ...rest]), scope)
    })
    yield* Effect.forkScoped(Effect.forever(collect))

    const submit = (item: A): Effect.Effect<B, E> =>
      Effect.flatMap(Deferred.make<B, E>(), (deferred) => {
        const entry: Entry<A, B, E> = { item, deferred, cancelled: false }
        return Queue.offer(queue, entry).pipe(
          Effect.zipRight(Effect.suspend(() =>
            wake !== undefined && queued() >= options.maxSize - 1 ? Deferred.succeed(wake, undefined) : Effect.void
          )),
          Effect.zipRight(Deferred.await(deferred)),
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              entry.cancelled = true
            })
          )
        )
      })

    return { submit }
  })
