/**
 * Embeddings as the language model serves them: texts from concurrent callers are batched
 * into one request per model, and every vector is cached by (model, text), so a text asked
 * for again costs no request, and a text already on its way is waited for, not asked again.
 * How a batch is sent is the caller's.
 *
 * The cache is a plain `Map` in insertion order (a hit moves its entry to the end, the
 * oldest entry goes when it is full) with time from `Clock`: per text it is one lookup,
 * where Effect's `Cache` costs a hashed key object, a Deferred and its own bookkeeping,
 * about a quarter of the whole embed path when every text is new. A failed request is not
 * cached: the next caller asks again.
 */
import type { Duration, Scope } from "effect"
import { Cause, Duration as Durations, Effect, Exit, Metric } from "effect"
import type { LlmError } from "../../domain/LanguageModel.js"
import * as Batcher from "../resilience/Batcher.js"
import * as MetricTags from "../resilience/MetricTags.js"
import { embedCache } from "./OllamaMetrics.js"

export type Vectors = ReadonlyArray<ReadonlyArray<number>>

/** Embeds the texts of one model in one request: one vector per text, in order. */
export type Send = (model: string, texts: ReadonlyArray<string>) => Effect.Effect<Vectors, LlmError>

export interface Options {
  readonly embedBatchSize: number
  readonly embedBatchWait: Duration.Duration
  readonly embedCacheTtl: Duration.Duration
  readonly embedCacheCapacity: number
}

type Vector = ReadonlyArray<number>

interface Item {
  readonly model: string
  readonly text: string
}

/** One cache entry: its vector once it came, until then the callers waiting for it. */
interface Slot {
  vector: Vector | undefined
  expires: number
  waiters: Array<(next: Effect.Effect<Vector, LlmError>) => void> | undefined
}

const key = (model: string, text: string): string => `${model}\u0000${text}`

const hits = MetricTags.tagged(embedCache, { result: "hit" })
const misses = MetricTags.tagged(embedCache, { result: "miss" })

/** One batch may mix models: one request per model, results put back in item order. */
const runBatch = (send: Send) => (items: ReadonlyArray<Item>): Effect.Effect<Vectors, LlmError> => {
  const model = items[0]!.model
  if (items.every((item) => item.model === model)) return send(model, items.map((item) => item.text))
  const byModel = new Map<string, Array<number>>()
  items.forEach((item, i) => {
    const indices = byModel.get(item.model)
    if (indices) indices.push(i)
    else byModel.set(item.model, [i])
  })
  const results = new Array<Vector>(items.length)
  return Effect.as(
    Effect.forEach(byModel, ([model, indices]) =>
      Effect.map(
        send(model, indices.map((i) => items[i]!.text)),
        (vectors) =>
          indices.forEach((index, j) => {
            results[index] = vectors[j]!
          })
      ), { concurrency: "unbounded", discard: true }),
    results
  )
}

/** `embed(model, texts)`: one vector per text, in order, each from the cache or from a batch. */
export const make = (options: Options, send: Send): Effect.Effect<Send, never, Scope.Scope> =>
  Effect.gen(function*() {
    const batcher = yield* Batcher.make({
      name: "ollama.embed",
      maxSize: options.embedBatchSize,
      maxWait: options.embedBatchWait,
      run: runBatch(send)
    })
    const clock = yield* Effect.clock
    const ttl = Durations.toMillis(options.embedCacheTtl)
    const capacity = Math.max(1, options.embedCacheCapacity)
    const slots = new Map<string, Slot>()

    /**
     * Settles a fetched slot: keeps the vector, or forgets the slot so the next caller asks
     * again. Its waiters get the same outcome, except when the fetching caller was interrupted:
     * that is not theirs, so they look the text up again (the first of them fetches it).
     */
    const settle = (model: string, text: string, slot: Slot, exit: Exit.Exit<Vector, LlmError>) => {
      if (Exit.isSuccess(exit)) {
        slot.vector = exit.value
        slot.expires = clock.unsafeCurrentTimeMillis() + ttl
      } else if (slots.get(key(model, text)) === slot) {
        slots.delete(key(model, text))
      }
      const waiters = slot.waiters
      slot.waiters = undefined
      if (waiters === undefined) return
      const next = Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? one(model, text) : exit
      for (const wake of waiters) wake(next)
    }

    /** Waits for a slot another caller is fetching. */
    const join = (slot: Slot): Effect.Effect<Vector, LlmError> =>
      Effect.async<Vector, LlmError>((resume) => {
        const waiters = slot.waiters ??= []
        waiters.push(resume)
        return Effect.sync(() => {
          const at = waiters.indexOf(resume)
          if (at >= 0) waiters.splice(at, 1)
        })
      })

    const one = (model: string, text: string): Effect.Effect<Vector, LlmError> =>
      Effect.suspend(() => {
        const at = key(model, text)
        const slot = slots.get(at)
        if (slot !== undefined && (slot.vector === undefined || slot.expires > clock.unsafeCurrentTimeMillis())) {
          // most recently used goes last
          slots.delete(at)
          slots.set(at, slot)
          return Effect.zipRight(
            Metric.increment(hits),
            slot.vector === undefined ? join(slot) : Effect.succeed(slot.vector)
          )
        }
        const fresh: Slot = { vector: undefined, expires: Infinity, waiters: undefined }
        slots.delete(at)
        slots.set(at, fresh)
        if (slots.size > capacity) slots.delete(slots.keys().next().value!)
        return Effect.zipRight(
          Metric.increment(misses),
          Effect.onExit(batcher.submit({ model, text }), (exit) => Effect.sync(() => settle(model, text, fresh, exit)))
        )
      })

    const embed: Send = (model, texts) =>
      texts.length === 1
        ? Effect.map(one(model, texts[0]!), (vector) => [vector])
        : Effect.forEach(texts, (text) => one(model, text), { concurrency: "unbounded" })

    /**
     * A call is traced when its caller is: the span then sits in the caller's trace. An
     * untraced caller gets no root span of its own (each request has its span where it is
     * sent); a span costs about as much as the rest of a cache hit.
     */
    return (model, texts) =>
      Effect.withFiberRuntime((fiber) =>
        fiber.currentSpan === undefined
          ? embed(model, texts)
          : Effect.withSpan(embed(model, texts), "LanguageModel.embed", {
            attributes: { "loom.model": model, "loom.texts": texts.length },
            captureStackTrace: false
          })
      )
  })
