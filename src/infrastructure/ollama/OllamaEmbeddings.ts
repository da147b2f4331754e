/**
 * Embeddings as the language model serves them: texts from concurrent callers are batched
 * into one request per model, and every vector is cached by (model, text digest), so a
 * text asked for again costs no request. How a batch is sent is the caller's.
 */
import type { Duration, Scope } from "effect"
import { Cache, Data, Effect, Either, Equal, Hash, Metric } from "effect"
import { createHash } from "node:crypto"
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

/** The cache key of one embedding: equal when model and text digest are. */
class EmbedKey extends Data.Class<{ readonly model: string; readonly text: string; readonly digest: string }> {
  [Hash.symbol]() {
    return Hash.string(`${this.model}\u0000${this.digest}`)
  }
  [Equal.symbol](that: unknown) {
    return that instanceof EmbedKey && that.model === this.model && that.digest === this.digest
  }
}

const embedKey = (model: string, text: string) =>
  new EmbedKey({ model, text, digest: createHash("sha256").update(text).digest("base64url") })

/** One batch may mix models: one request per model, results put back in item order. */
const runBatch = (send: Send) => (items: ReadonlyArray<EmbedKey>) =>
  Effect.gen(function*() {
    const byModel = new Map<string, Array<number>>()
    items.forEach((item, i) => byModel.set(item.model, [...(byModel.get(item.model) ?? []), i]))
    const results = new Array<ReadonlyArray<number>>(items.length)
    yield* Effect.forEach(byModel, ([model, indices]) =>
      Effect.map(
        send(
          model,
          indices.map((i) => items[i]!.text)
        ),
        (vectors) =>
          indices.forEach((index, j) => {
            results[index] = vectors[j]!
          })
      ), { concurrency: "unbounded", discard: true })
    return results
  })

/** `embed(model, texts)`: one vector per text, in order, each from the cache or from a batch. */
export const make = (options: Options, send: Send): Effect.Effect<Send, never, Scope.Scope> =>
  Effect.gen(function*() {
    const batcher = yield* Batcher.make({
      name: "ollama.embed",
      maxSize: options.embedBatchSize,
      maxWait: options.embedBatchWait,
      run: runBatch(send)
    })
    const cache = yield* Cache.make({
      capacity: options.embedCacheCapacity,
      timeToLive: options.embedCacheTtl,
      lookup: (key: EmbedKey) => batcher.submit(key)
    })
    return (model, texts) =>
      Effect.forEach(
        texts,
        (text) =>
          Effect.flatMap(cache.getEither(embedKey(model, text)), (result) =>
            Effect.as(
              Metric.increment(MetricTags.tagged(embedCache, { result: Either.isLeft(result) ? "hit" : "miss" })),
              Either.merge(result)
            )), // one text needs no fiber of its own
        { concurrency: texts.length > 1 ? "unbounded" : 1 }
      ).pipe(
        Effect.withSpan("LanguageModel.embed", {
          attributes: { "loom.model": model, "loom.texts": texts.length },
          captureStackTrace: false
        })
      )
  })
