import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Ref, Scope } from "effect"
import { Worker as Thread } from "node:worker_threads"
import { ChunkText, CosineTopK, EstimateTokens } from "../../../src/domain/Cpu.js"
import type { CpuTask } from "../../../src/domain/Cpu.js"
import * as CpuPool from "../../../src/infrastructure/cpu/CpuPool.js"
import { cosineTopK } from "../../../src/infrastructure/cpu/kernels/CosineTopK.js"
import { chunkText } from "../../../src/infrastructure/cpu/kernels/TextChunks.js"
import { Crash, Lie, Spin, Throw } from "../../support/cpu/TestTasks.js"
import type { TestTask } from "../../support/cpu/TestTasks.js"

const testWorker = new URL("../../support/cpu/test-worker.mjs", import.meta.url)
const cpuWorker = new URL("../../../src/infrastructure/cpu/cpu-worker.mjs", import.meta.url)

const options = (spawn: () => Thread, size = 2): CpuPool.Options => ({
  name: "cpu-test",
  size,
  capacity: 16,
  overflow: "wait",
  spawn
})

describe("CpuPool", () => {
  it.live("runs the built-in tasks on worker threads, with vectors shared, not copied", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make<CpuTask>(options(() => new Thread(cpuWorker)))
      const rows = 500
      const dims = 16
      const shared = new SharedArrayBuffer(rows * dims * 4)
      const matrix = new Float32Array(shared)
      for (let i = 0; i < matrix.length; i++) matrix[i] = Math.sin(i)
      const query = Array.from({ length: dims }, (_, d) => Math.cos(d))
      const top = yield* pool.run(new CosineTopK({ matrix: shared, rows, dims, query, k: 5 }))
      assert.deepStrictEqual(top, cosineTopK(matrix, rows, dims, query, 5))
      const text = "the quick brown fox jumps over the lazy dog ".repeat(20)
      assert.deepStrictEqual(yield* pool.run(new ChunkText({ text, size: 50, overlap: 10 })), chunkText(text, 50, 10))
      assert.strictEqual(yield* pool.run(new EstimateTokens({ text: "a b c" })), 3)
    })))

  it.live("a CPU task runs off the main thread: the event loop keeps answering a timer", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make<TestTask>(options(() => new Thread(testWorker), 1))
      const ticks = yield* Ref.make(0)
      const ticker = yield* Effect.fork(
        Effect.forever(Effect.zipRight(Effect.sleep("10 millis"), Ref.update(ticks, (n) => n + 1)))
      )
      const result = yield* pool.run(new Spin({ ms: 400 }))
      yield* Fiber.interrupt(ticker)
      assert.notStrictEqual(result.threadId, 0, "ran on a worker thread")
      assert.isAtLeast(yield* Ref.get(ticks), 10, "the main thread stayed free")
    })))

  it.live("a task that crashes its thread fails alone; the thread is replaced and the next task succeeds", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make<TestTask>(options(() => new Thread(testWorker), 1))
      const error = yield* Effect.flip(pool.run(new Crash()))
      assert.strictEqual(error._tag, "CpuWorkerCrashed")
      assert.include(error._tag === "CpuWorkerCrashed" && error.message, "exited with code 1")
      const after = yield* pool.run(new Spin({ ms: 1 }))
      assert.isAbove(after.threadId, 0)
      assert.strictEqual((yield* pool.stats).restarts, 1)
    })))

  it.live("a task's own failure is typed and costs no thread; an undecodable result is a protocol error", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make<TestTask>(options(() => new Thread(testWorker), 1))
      const thrown = yield* Effect.flip(pool.run(new Throw({ message: "bad input" })))
      assert.deepStrictEqual([thrown._tag, thrown._tag === "CpuTaskFailed" && thrown.message], [
        "CpuTaskFailed",
        "bad input"
      ])
      const lie = yield* Effect.flip(pool.run(new Lie()))
      assert.strictEqual(lie._tag, "CpuProtocolError")
      assert.isAbove((yield* pool.run(new Spin({ ms: 1 }))).threadId, 0)
      assert.strictEqual((yield* pool.stats).restarts, 0)
    })))

  it.live("interrupting a long CPU task returns promptly and the pool recovers", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make<TestTask>(options(() => new Thread(testWorker), 1))
      const fiber = yield* Effect.fork(pool.run(new Spin({ ms: 60_000 })))
      yield* Effect.sleep("200 millis")
      const start = yield* Clock.currentTimeMillis
      yield* Fiber.interrupt(fiber)
      assert.isBelow((yield* Clock.currentTimeMillis) - start, 2000)
      const next = yield* pool.run(new Spin({ ms: 1 }))
      assert.isAbove(next.threadId, 0)
      assert.strictEqual((yield* pool.stats).restarts, 1)
    })))

  it.live("closing the scope terminates every thread", () =>
    Effect.gen(function*() {
      const threads: Array<Thread> = []
      const exited = new Set<Thread>()
      const scope = yield* Scope.make()
      const pool = yield* CpuPool.make<TestTask>(options(() => {
        const thread = new Thread(testWorker)
        thread.on("exit", () => exited.add(thread))
        threads.push(thread)
        return thread
      }, 2)).pipe(Scope.extend(scope))
      yield* pool.run(new Spin({ ms: 1 }))
      yield* Scope.close(scope, Exit.void)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(threads.length, 2)
      assert.strictEqual(exited.size, 2)
    }))

  it.live("with prestart 0, no thread starts until tasks need one, and never more than size", () =>
    Effect.scoped(Effect.gen(function*() {
      let spawned = 0
      const pool = yield* CpuPool.make<TestTask>({
        ...options(() => {
          spawned++
          return new Thread(testWorker)
        }, 2),
        prestart: 0
      })
      yield* Effect.sleep("100 millis")
      assert.strictEqual(spawned, 0, "an idle pool holds no thread")
      yield* pool.run(new Spin({ ms: 1 }))
      assert.strictEqual(spawned, 1, "one task, one thread")
      yield* pool.run(new Spin({ ms: 1 }))
      assert.strictEqual(spawned, 1, "the thread is kept for the next task")
      yield* Effect.all(Array.from({ length: 6 }, () => pool.run(new Spin({ ms: 50 }))), { concurrency: "unbounded" })
      assert.strictEqual(spawned, 2, "at most size threads")
    })))
})
