/**
 * Floors: for each hot path, the cheapest Effect program doing the same concurrency as
 * Loom does in its scenario. No Loom code, no deliberately slow choices: what any Effect
 * program must pay, so `floorRatio = loom / floor` is what Loom adds on top of Effect.
 */
import { Data, Deferred, Effect, Fiber } from "effect"

const range = (n: number): ReadonlyArray<number> => Array.from({ length: n }, (_, i) => i)

/** `agent.runs-10k`: `runs` runs at once, each one turn of two `ms` sleeps side by side, then its answer. */
export const agentRuns = (runs: number, ms: number): Effect.Effect<void> =>
  Effect.forEach(
    range(runs),
    () => Effect.as(Effect.all([Effect.sleep(ms), Effect.sleep(ms)], { concurrency: "unbounded" }), "done"),
    { concurrency: "unbounded", discard: true }
  )

/** `executor.fanout-100x20ms`: `calls` sleeps of `ms` at once, results in order. */
export const fanout = (calls: number, ms: number): Effect.Effect<ReadonlyArray<string>> =>
  Effect.forEach(range(calls), (i) => Effect.as(Effect.sleep(ms), `c${i}`), { concurrency: calls })

/**
 * `executor.dag-diamond`: A, then B and C side by side, then D, each a sleep of `ms`: the
 * diamond with its shape known up front, so no scheduling at all, only the sleeps.
 */
export const dagDiamond = (ms: number): Effect.Effect<void> =>
  Effect.sleep(ms).pipe(
    Effect.zipRight(Effect.all([Effect.sleep(ms), Effect.sleep(ms)], { concurrency: "unbounded" })),
    Effect.zipRight(Effect.sleep(ms))
  )

/**
 * `pool.noop-100k`: `jobs` no-op jobs from `callers` concurrent callers, at most `workers`
 * running at once. The job runs on its caller's fiber under a semaphore permit: a bounded
 * set of waiters, no extra fork, no Deferred.
 */
export const pool = (jobs: number, workers: number, callers: number): Effect.Effect<void> =>
  Effect.flatMap(
    Effect.makeSemaphore(workers),
    (semaphore) => {
      const job = semaphore.withPermits(1)(Effect.void)
      return Effect.forEach(range(jobs), () => job, { concurrency: callers, discard: true })
    }
  )

/**
 * `breaker.noop-call`: `calls` no-op calls in sequence, each behind the least a breaker must
 * do when closed: read its state, run the call, and count a failure if there is one.
 */
export const breaker = (calls: number): Effect.Effect<void, string> => {
  let open = false
  let failures = 0
  const guard = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E | string> =>
    Effect.suspend((): Effect.Effect<A, E | string> =>
      open ? Effect.fail("open") : Effect.tapErrorCause(self, () =>
        Effect.sync(() => {
          failures++
          open = failures >= 5
        }))
    )
  return Effect.forEach(range(calls), () => guard(Effect.void), { discard: true })
}

/** A batch request that did not answer. */
export class EmbedFailed extends Data.TaggedError("EmbedFailed")<{ readonly cause: unknown }> {}

/**
 * `llm.embed-batched-1000`: `texts` callers at once, each embedding one text, batched across
 * callers: one Deferred per caller, a plain buffer, one timer per batch of up to `maxSize`,
 * each batch one POST of `/api/embed` to `url`.
 */
export const embedBatched = (
  url: string,
  model: string,
  texts: ReadonlyArray<string>,
  maxSize: number,
  maxWaitMs: number
): Effect.Effect<ReadonlyArray<ReadonlyArray<number>>, EmbedFailed> =>
  Effect.gen(function*() {
    type Waiter = { readonly text: string; readonly done: Deferred.Deferred<ReadonlyArray<number>, EmbedFailed> }
    let buffer: Array<Waiter> = []
    let timer: Fiber.RuntimeFiber<void> | undefined

    const send = (batch: ReadonlyArray<Waiter>): Effect.Effect<void> =>
      Effect.tryPromise({
        try: async () => {
          const response = await fetch(`${url}/api/embed`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model, input: batch.map((waiter) => waiter.text) })
          })
          return ((await response.json()) as { embeddings: ReadonlyArray<ReadonlyArray<number>> }).embeddings
        },
        catch: (cause) => new EmbedFailed({ cause })
      }).pipe(
        Effect.exit,
        Effect.flatMap((exit) =>
          Effect.forEach(batch, (waiter, i) =>
            exit._tag === "Success"
              ? Deferred.succeed(waiter.done, exit.value[i]!)
              : Deferred.failCause(waiter.done, exit.cause), { discard: true })
        )
      )

    const flush = Effect.suspend(() => {
      const batch = buffer
      buffer = []
      timer = undefined
      return batch.length === 0 ? Effect.void : Effect.asVoid(Effect.fork(send(batch)))
    })

    const submit = (text: string) =>
      Effect.flatMap(Deferred.make<ReadonlyArray<number>, EmbedFailed>(), (done) =>
        Effect.zipRight(
          Effect.suspend(() => {
            buffer.push({ text, done })
            if (buffer.length >= maxSize) {
              const pending = timer
              return pending === undefined ? flush : Effect.zipRight(Fiber.interruptFork(pending), flush)
            }
            if (timer !== undefined) return Effect.void
            return Effect.map(Effect.fork(Effect.zipRight(Effect.sleep(maxWaitMs), flush)), (fiber) => {
              timer = fiber
            })
          }),
          Deferred.await(done)
        ))

    return yield* Effect.forEach(texts, submit, { concurrency: "unbounded" })
  })
