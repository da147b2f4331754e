import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Metric, Ref, Scope, TestClock } from "effect"
import * as fc from "fast-check"
import * as WorkerPool from "../../../src/infrastructure/resilience/WorkerPool.js"

const options = (overrides: Partial<WorkerPool.Options> = {}): WorkerPool.Options => ({
  name: "test",
  workers: 2,
  capacity: 2,
  overflow: "reject",
  metricsInterval: "1 minute",
  ...overrides
})

/** A job that sleeps, recording that it started and whether it completed. */
const tracked = Effect.gen(function*() {
  const started = yield* Ref.make<ReadonlyArray<string>>([])
  const completed = yield* Ref.make<ReadonlyArray<string>>([])
  const interrupted = yield* Ref.make<ReadonlyArray<string>>([])
  const job = (id: string, ms: number) =>
    Ref.update(started, (ids) => [...ids, id]).pipe(
      Effect.zipRight(Effect.sleep(ms)),
      Effect.zipRight(Ref.update(completed, (ids) => [...ids, id])),
      Effect.as(id),
      Effect.onInterrupt(() => Ref.update(interrupted, (ids) => [...ids, id]))
    )
  return { started, completed, interrupted, job }
})

class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}

describe("WorkerPool", () => {
  it.scoped("runs jobs on N workers and returns each job's own result", () =>
    Effect.gen(function*() {
      const pool = yield* WorkerPool.make(options({ workers: 2, capacity: 10 }))
      const { job } = yield* tracked
      const fiber = yield* Effect.fork(
        Effect.forEach(["a", "b", "c", "d"], (id) => pool.submit(job(id, 100)), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* pool.stats).busy, 2)
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), ["a", "b", "c", "d"])
      assert.strictEqual((yield* pool.stats).busy, 0)
    }))

  it.scoped("a job runs with its caller's context", () =>
    Effect.gen(function*() {
      const pool = yield* WorkerPool.make(options())
      const greeting = yield* pool.submit(Greeting).pipe(Effect.provideService(Greeting, "hello"))
      assert.strictEqual(greeting, "hello")
    }))

  it.scoped("overflow reject: a full queue fails at once with QueueFull", () =>
    Effect.gen(function*() {
      const pool = yield* WorkerPool.make(options({ workers: 1, capacity: 1 }))
      const { job } = yield* tracked
      const running = yield* Effect.fork(pool.submit(job("a", 100)))
      yield* TestClock.adjust("1 milli")
      const queued = yield* Effect.fork(pool.submit(job("b", 100)))
      yield* TestClock.adjust("1 milli")
      const error = yield* Effect.flip(pool.submit(job("c", 100)))
      assert.strictEqual(error._tag, "QueueFull")
      assert.strictEqual(error._tag === "QueueFull" && error.capacity, 1)
      assert.strictEqual((yield* pool.stats).rejected, 1)
      yield* TestClock.adjust("200 millis")
      assert.strictEqual(yield* Fiber.join(running), "a")
      assert.strictEqual(yield* Fiber.join(queued), "b")
    }))

  it.scoped("overflow wait: the caller suspends until there is room (backpressure)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkerPool.make(options({ workers: 1, capacity: 1, overflow: "wait" }))
      const { job, started } = yield* tracked
      const fibers = yield* Effect.forEach(["a", "b", "c"], (id) => Effect.fork(pool.submit(job(id, 100))))
      yield* TestClock.adjust("1 milli")
      const third = fibers[2]!
      assert.isTrue((yield* Fiber.poll(third))._tag === "None", "c waits for room")
      assert.strictEqual((yield* pool.stats).queued, 2, "b in the queue, c held back by backpressure")
      yield* TestClock.adjust("300 millis")
      assert.strictEqual(yield* Fiber.join(third), "c")
      assert.deepStrictEqual(yield* Ref.get(started), ["a", "b", "c"])
      assert.strictEqual((yield* pool.stats).rejected, 0)
    }))

  it.scoped("a job past its timeout fails with Timeout naming the pool", () =>
    Effect.gen(function*() {
      const pool = yield* WorkerPool.make(options({ jobTimeout: "1 second" }))
      const { interrupted, job } = yield* tracked
      const fiber = yield* Effect.fork(Effect.flip(pool.submit(job("slow", 5000))))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(error._tag === "Timeout" && error.operation, "test.job")
      assert.deepStrictEqual(yield* Ref.get(interrupted), ["slow"])
    }))

  it.scoped("an interrupted caller's queued job never runs; its running job is interrupted", () =>
    Effect.gen(function*() {
      const pool = yield* WorkerPool.make(options({ workers: 1, capacity: 5 }))
      const { interrupted, job, started } = yield* tracked
      const running = yield* Effect.fork(pool.submit(job("running", 1000)))
      yield* TestClock.adjust("1 milli")
      const waiting = yield* Effect.fork(pool.submit(job("waiting", 10)))
      yield* TestClock.adjust("1 milli")
      yield* Fiber.interrupt(waiting)
      yield* Fiber.interrupt(running)
      assert.deepStrictEqual(yield* Ref.get(interrupted), ["running"])
      const after = yield* Effect.fork(pool.submit(job("after", 10)))
      yield* TestClock.adjust("20 millis")
      assert.strictEqual(yield* Fiber.join(after), "after")
      assert.deepStrictEqual(yield* Ref.get(started), ["running", "after"])
    }))

  it.effect("closing drains queued and running jobs within the deadline", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* WorkerPool.make(options({ workers: 1, capacity: 5, drainTimeout: "1 second" })).pipe(
        Scope.extend(scope)
      )
      const { completed, job } = yield* tracked
      const fibers = yield* Effect.forEach(["a", "b", "c"], (id) => Effect.fork(pool.submit(job(id, 100))))
      yield* TestClock.adjust("1 milli")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 milli")
      assert.strictEqual((yield* Effect.flip(pool.submit(job("late", 1))))._tag, "Shutdown", "intake is closed")
      yield* TestClock.adjust("300 millis")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(yield* Effect.forEach(fibers, Fiber.join), ["a", "b", "c"])
      assert.deepStrictEqual(yield* Ref.get(completed), ["a", "b", "c"])
    }))

  it.effect("closing past the deadline interrupts what is left; its callers fail with Shutdown", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* WorkerPool.make(options({ workers: 1, capacity: 5, drainTimeout: "150 millis" })).pipe(
        Scope.extend(scope)
      )
      const { interrupted, job } = yield* tracked
      const fibers = yield* Effect.forEach(
        ["a", "b", "c"],
        (id) => Effect.fork(Effect.either(pool.submit(job(id, 100))))
      )
      yield* TestClock.adjust("1 milli")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("200 millis")
      yield* Fiber.join(closing)
      const outcomes = yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(
        outcomes.map((o) => o._tag === "Right" ? o.right : o.left._tag),
        ["a", "Shutdown", "Shutdown"]
      )
      assert.deepStrictEqual(yield* Ref.get(interrupted), ["b"])
    }))

  it.effect.prop(
    "never holds more than `capacity` queued jobs, and every job is either run or rejected",
    [
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 40 })
    ],
    ([workers, capacity, durations]) =>
      Effect.scoped(Effect.gen(function*() {
        const pool = yield* WorkerPool.make(options({ workers, capacity }))
        const { job } = yield* tracked
        let maxQueued = 0
        const fibers = []
        for (const [i, ms] of durations.entries()) {
          fibers.push(yield* Effect.fork(Effect.either(pool.submit(job(`j${i}`, ms)))))
          yield* TestClock.adjust(i % 3 === 0 ? "5 millis" : "0 millis")
          maxQueued = Math.max(maxQueued, (yield* pool.stats).queued)
        }
        yield* TestClock.adjust("1 hour")
        const outcomes = yield* Effect.forEach(fibers, Fiber.join)
        assert.isAtMost(maxQueued, capacity)
        const rejected = outcomes.filter((o) => o._tag === "Left")
        assert.isTrue(rejected.every((o) => o._tag === "Left" && o.left._tag === "QueueFull"))
        assert.strictEqual(rejected.length, (yield* pool.stats).rejected)
        assert.strictEqual(outcomes.length, durations.length)
      })),
    { fastCheck: { numRuns: 60 } }
  )
})

describe("WorkerPool metrics", () => {
  it.scoped("samples queue depth and busy workers into gauges tagged with the pool", () =>
    Effect.gen(function*() {
      const pool = yield* WorkerPool.make(
        options({ name: "metered", workers: 1, capacity: 3, metricsInterval: "1 second" })
      )
      const { job } = yield* tracked
      yield* Effect.forEach(["a", "b", "c"], (id) => Effect.fork(pool.submit(job(id, 5000))))
      yield* TestClock.adjust("1 second")
      const depth = yield* Metric.value(Metric.tagged(WorkerPool.queueDepth, "pool", "metered"))
      const busy = yield* Metric.value(Metric.tagged(WorkerPool.busyWorkers, "pool", "metered"))
      assert.strictEqual(depth.value, 2)
      assert.strictEqual(busy.value, 1)
      yield* TestClock.adjust("20 seconds")
    }))
})
