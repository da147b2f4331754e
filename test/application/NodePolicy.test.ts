import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Option, Ref, Schedule, Schema, TestClock } from "effect"
import * as fc from "fast-check"
import * as NodeCache from "../../src/application/NodeCache.js"
import * as Workflow from "../../src/application/Workflow.js"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import type { Timeout } from "../../src/domain/Errors.js"
import { ToolFailed } from "../../src/domain/Errors.js"

const State = Schema.Struct({ topic: Schema.String, answer: Schema.String })
type State = typeof State.Type

/** The engine, with a cache of the test's own (the default one is shared by the whole process). */
const env = Layer.merge(WorkflowEngine.layerMemory, NodeCache.NodeCache.layerMemory)

const input = (topic: string): State => ({ topic, answer: "" })

/** A node that counts its runs and fails with ToolFailed on its first `failures` runs. */
const flaky = (runs: Ref.Ref<number>, failures: number) => (state: State) =>
  Effect.flatMap(
    Ref.updateAndGet(runs, (n) => n + 1),
    (n) =>
      n <= failures
        ? Effect.fail(new ToolFailed({ tool: "search", message: `attempt ${n} failed` }))
        : Effect.succeed({ answer: `about ${state.topic}` })
  )

describe("NodePolicy", () => {
  describe("retry", () => {
    it.effect("a node failing twice then succeeding finishes the run under its schedule", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const runs = yield* Ref.make(0)
        const graph = yield* Workflow.make({
          name: "retry",
          state: State,
          start: "ask",
          nodes: { ask: flaky(runs, 2) },
          policies: { ask: { retry: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(2))) } }
        })
        const fiber = yield* Effect.fork(engine.invoke(graph, input("effect")))
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Ref.get(runs), 2)
        assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "the second retry waits for its spacing")
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { topic: "effect", answer: "about effect" })
        assert.strictEqual(yield* Ref.get(runs), 3)
      }).pipe(Effect.provide(env)))

    it.effect("without a policy the same node fails the run (the default is unchanged)", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const runs = yield* Ref.make(0)
        const graph = yield* Workflow.make({
          name: "plain",
          state: State,
          start: "ask",
          nodes: { ask: flaky(runs, 2) }
        })
        const error = yield* Effect.flip(engine.invoke(graph, input("effect")))
        assert.deepStrictEqual(
          [error._tag, error._tag === "NodeFailed" && error.reason, yield* Ref.get(runs)],
          ["NodeFailed", "ToolFailed", 1]
        )
      }).pipe(Effect.provide(env)))

    it.effect("a schedule that gives up fails the run with the node's last error", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const runs = yield* Ref.make(0)
        const graph = yield* Workflow.make({
          name: "give-up",
          state: State,
          start: "ask",
          nodes: { ask: flaky(runs, 5) },
          policies: { ask: { retry: Schedule.recurs(1) } }
        })
        const error = yield* Effect.flip(engine.invoke(graph, input("effect")))
        assert.deepStrictEqual(
          [error._tag === "NodeFailed" && error.reason, error.message, yield* Ref.get(runs)],
          ["ToolFailed", "attempt 2 failed", 2]
        )
      }).pipe(Effect.provide(env)))

    it.effect("the schedule sees the node's typed errors: one it declines is not retried", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const runs = yield* Ref.make(0)
        const graph = yield* Workflow.make({
          name: "typed",
          state: State,
          start: "ask",
          nodes: { ask: flaky(runs, 2) },
          // the schedule takes the node's errors and Timeout; one taking less does not compile
          policies: {
            ask: {
              retry: Schedule.recurWhile((error: ToolFailed | Timeout) =>
                error._tag === "ToolFailed" && !error.retryable
              )
            }
          }
        })
        const error = yield* Effect.flip(engine.invoke(graph, input("effect")))
        assert.deepStrictEqual([error._tag === "NodeFailed" && error.reason, yield* Ref.get(runs)], ["ToolFailed", 1])
      }).pipe(Effect.provide(env)))
  })

  describe("deadline", () => {
    it.effect("a node still running past its deadline fails the run with Timeout, and not before", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const graph = yield* Workflow.make({
          name: "slow",
          state: State,
          start: "ask",
          nodes: { ask: () => Effect.as(Effect.sleep("10 seconds"), { answer: "late" }) },
          policies: { ask: { deadline: "1 second" } }
        })
        const fiber = yield* Effect.fork(engine.invoke(graph, input("effect")))
        yield* TestClock.adjust("999 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
        yield* TestClock.adjust("1 millis")
        const error = yield* Effect.flip(Fiber.join(fiber))
        if (error._tag !== "NodeFailed") return assert.fail(`expected NodeFailed, got ${error._tag}`)
        // the graph's error type carries Timeout: "Timeout" is one of the reasons its runs may give
        const timeout: typeof error.reason = "Timeout"
        assert.deepStrictEqual([error.node, error.reason, error.message], [
          "ask",
          timeout,
          "slow/ask timed out after 1000 ms"
        ])
      }).pipe(Effect.provide(env)))

    it.effect("each attempt gets the deadline: a retry after a timed-out attempt finishes the run", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const runs = yield* Ref.make(0)
        const graph = yield* Workflow.make({
          name: "slow-then-fast",
          state: State,
          start: "ask",
          nodes: {
            ask: () =>
              Effect.flatMap(
                Ref.updateAndGet(runs, (n) => n + 1),
                (n) => Effect.as(Effect.sleep(n === 1 ? "10 seconds" : "500 millis"), { answer: `attempt ${n}` })
              )
          },
          policies: { ask: { deadline: "1 second", retry: Schedule.recurs(1) } }
        })
        const fiber = yield* Effect.fork(engine.invoke(graph, input("effect")))
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Ref.get(runs), 2)
        yield* TestClock.adjust("500 millis")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { topic: "effect", answer: "attempt 2" })
      }).pipe(Effect.provide(env)))
  })

  describe("cache", () => {
    const cached = (runs: Ref.Ref<number>, failures = 0) =>
      Workflow.make({
        name: "cached",
        state: State,
        start: "ask",
        nodes: { ask: flaky(runs, failures) },
        policies: { ask: { cache: { key: (state) => state.topic, ttl: "1 minute" } } }
      })

    it.effect("runs a node once per key within the TTL, and again once it has passed", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const runs = yield* Ref.make(0)
        const graph = yield* cached(runs)
        assert.deepStrictEqual(yield* engine.invoke(graph, input("a")), { topic: "a", answer: "about a" })
        assert.deepStrictEqual(yield* engine.invoke(graph, input("a")), { topic: "a", answer: "about a" })
        assert.strictEqual(yield* Ref.get(runs), 1, "the second run with key a reuses the update")
        yield* engine.invoke(graph, input("b"))
        assert.strictEqual(yield* Ref.get(runs), 2, "another key runs the node")
        yield* TestClock.adjust("59 seconds")
        yield* engine.invoke(graph, input("a"))
        assert.strictEqual(yield* Ref.get(runs), 2, "still within the TTL")
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* engine.invoke(graph, input("a")), { topic: "a", answer: "about a" })
        assert.strictEqual(yield* Ref.get(runs), 3, "past the TTL the node runs again")
      }).pipe(Effect.provide(env)))

    it.effect("a failure is not cached", () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const runs = yield* Ref.make(0)
        const graph = yield* cached(runs, 1)
        yield* Effect.flip(engine.invoke(graph, input("a")))
        yield* engine.invoke(graph, input("a"))
        yield* engine.invoke(graph, input("a"))
        assert.strictEqual(yield* Ref.get(runs), 2)
      }).pipe(Effect.provide(env)))

    it.effect.prop(
      "within the TTL a node runs exactly once per distinct key; past it, once more",
      [fc.array(fc.record({ key: fc.constantFrom("a", "b", "c"), wait: fc.integer({ min: 0, max: 40 }) }), {
        maxLength: 15
      })],
      ([calls]) =>
        Effect.gen(function*() {
          const engine = yield* WorkflowEngine
          const runs = yield* Ref.make(0)
          const graph = yield* cached(runs)
          // the model: when each key's update was stored, in seconds
          const stored = new Map<string, number>()
          let now = 0
          let expected = 0
          for (const { key, wait } of calls) {
            yield* TestClock.adjust(Duration.seconds(wait))
            now += wait
            const at = stored.get(key)
            if (at === undefined || now >= at + 60) {
              stored.set(key, now)
              expected += 1
            }
            yield* engine.invoke(graph, input(key))
          }
          assert.strictEqual(yield* Ref.get(runs), expected)
        }).pipe(Effect.provide(env)),
      { fastCheck: { numRuns: 50 } }
    )
  })

  it.effect("a policy for a node the graph lacks is an InvalidGraph", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Workflow.make({
        name: "ghostly",
        state: State,
        start: "ask",
        nodes: { ask: () => Effect.succeed({ answer: "here" }) },
        // @ts-expect-error a policy's key must be one of the graph's nodes
        policies: { ghost: { deadline: "1 second" } }
      }))
      assert.deepStrictEqual([error._tag, error.reason, error.nodes], ["InvalidGraph", "unknown_dependency", ["ghost"]])
    }))

  it.effect("the in-memory cache evicts the least recently used entry past its capacity", () =>
    Effect.gen(function*() {
      const cache = yield* NodeCache.memory(2)
      const key = (key: string) => ({ graph: "g", node: "n", key })
      const ttl = Duration.minutes(1)
      yield* cache.set(key("a"), 1, ttl)
      yield* cache.set(key("b"), 2, ttl)
      assert.deepStrictEqual(yield* cache.get(key("a")), Option.some(1))
      yield* cache.set(key("c"), 3, ttl)
      assert.deepStrictEqual(
        yield* Effect.forEach(["a", "b", "c"], (k) => cache.get(key(k))),
        [Option.some(1), Option.none(), Option.some(3)]
      )
    }))
})
