import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Ref, TestClock } from "effect"
import { LlmUnavailable } from "../../../src/domain/LlmErrors.js"
import * as OllamaEmbeddings from "../../../src/infrastructure/ollama/OllamaEmbeddings.js"

const options = (overrides: Partial<OllamaEmbeddings.Options> = {}): OllamaEmbeddings.Options => ({
  embedBatchSize: 10,
  embedBatchWait: Duration.millis(10),
  embedCacheTtl: Duration.seconds(60),
  embedCacheCapacity: 100,
  ...overrides
})

/** A backend that embeds a text as [its length], records every request, and fails while `down` is set. */
const backend = Effect.gen(function*() {
  const requests = yield* Ref.make<ReadonlyArray<{ readonly model: string; readonly texts: ReadonlyArray<string> }>>([])
  const down = yield* Ref.make(false)
  const send: OllamaEmbeddings.Send = (model, texts) =>
    Effect.gen(function*() {
      yield* Ref.update(requests, (list) => [...list, { model, texts }])
      if (yield* Ref.get(down)) return yield* new LlmUnavailable({ host: "test", message: "down" })
      return texts.map((text) => [model === "a" ? text.length : -text.length])
    })
  return { send, requests, down }
})

describe("OllamaEmbeddings", () => {
  it.scoped("the same text asked for at once is sent once, and every caller gets its vector", () =>
    Effect.gen(function*() {
      const { requests, send } = yield* backend
      const embed = yield* OllamaEmbeddings.make(options(), send)
      const fibers = yield* Effect.forEach(["xx", "xx", "yyy"], (text) => Effect.fork(embed("a", [text])))
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual(yield* Effect.forEach(fibers, Fiber.join), [[[2]], [[2]], [[3]]])
      assert.deepStrictEqual(yield* Ref.get(requests), [{ model: "a", texts: ["xx", "yyy"] }])
    }))

  it.scoped("a batch mixing models sends one request per model and answers in item order", () =>
    Effect.gen(function*() {
      const { requests, send } = yield* backend
      const embed = yield* OllamaEmbeddings.make(options(), send)
      const fiber = yield* Effect.fork(Effect.all([embed("a", ["x", "yy"]), embed("b", ["zzz"])], { concurrency: 2 }))
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [[[1], [2]], [[-3]]])
      assert.strictEqual((yield* Ref.get(requests)).length, 2)
    }))

  it.scoped("a failed request is not cached: the next caller asks again", () =>
    Effect.gen(function*() {
      const { down, requests, send } = yield* backend
      const embed = yield* OllamaEmbeddings.make(options({ embedBatchWait: Duration.zero }), send)
      yield* Ref.set(down, true)
      const failed = yield* Effect.flip(embed("a", ["x"]))
      assert.strictEqual(failed._tag, "LlmUnavailable")
      yield* Ref.set(down, false)
      assert.deepStrictEqual(yield* embed("a", ["x"]), [[1]])
      assert.deepStrictEqual(yield* embed("a", ["x"]), [[1]])
      assert.strictEqual((yield* Ref.get(requests)).length, 2)
    }))

  it.scoped("a vector lives for the cache TTL, and the least recently used goes when it is full", () =>
    Effect.gen(function*() {
      const { requests, send } = yield* backend
      const embed = yield* OllamaEmbeddings.make(
        options({ embedBatchWait: Duration.zero, embedCacheTtl: Duration.seconds(5), embedCacheCapacity: 2 }),
        send
      )
      const sent = Effect.map(Ref.get(requests), (list) => list.flatMap((request) => request.texts))
      yield* embed("a", ["x"])
      yield* embed("a", ["yy"])
      yield* embed("a", ["x"]) // x is now the most recently used
      yield* embed("a", ["zzz"]) // evicts yy
      yield* embed("a", ["x"])
      assert.deepStrictEqual(yield* sent, ["x", "yy", "zzz"])
      yield* embed("a", ["yy"])
      assert.deepStrictEqual(yield* sent, ["x", "yy", "zzz", "yy"])
      yield* TestClock.adjust("5 seconds")
      yield* embed("a", ["yy"])
      assert.deepStrictEqual(yield* sent, ["x", "yy", "zzz", "yy", "yy"], "expired")
    }))

  it.scoped("when the caller fetching a text is interrupted, a caller waiting for it fetches it itself", () =>
    Effect.gen(function*() {
      const { requests, send } = yield* backend
      const embed = yield* OllamaEmbeddings.make(options(), send)
      const first = yield* Effect.fork(embed("a", ["xx"]))
      yield* TestClock.adjust("1 milli")
      const second = yield* Effect.fork(embed("a", ["xx"]))
      yield* TestClock.adjust("1 milli")
      yield* Fiber.interrupt(first)
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual(yield* Fiber.join(second), [[2]])
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(first)))
      assert.deepStrictEqual(yield* Ref.get(requests), [{ model: "a", texts: ["xx"] }])
    }))
})
