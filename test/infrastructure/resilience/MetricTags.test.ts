import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, MetricBoundaries } from "effect"
import * as MetricTags from "../../../src/infrastructure/resilience/MetricTags.js"

/** The counter's value, as a plain `Metric.tagged` of the same metric reads it: the series is one and the same. */
const plainCount = (metric: Metric.Metric.Counter<number>, tags: ReadonlyArray<readonly [string, string]>) =>
  Effect.map(Metric.value(tags.reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)), (state) => state.count)

describe("MetricTags", () => {
  it.effect("a tagged counter made from its key counts into the series Metric.tagged names", () =>
    Effect.gen(function*() {
      const calls = MetricTags.counter("test_metric_tags_calls", "calls by tool and status")
      const ok = MetricTags.tagged(calls, { tool: "t", status: "ok" })
      assert.strictEqual(MetricTags.tagged(calls, { tool: "t", status: "ok" }), ok, "made once per tags")
      yield* Metric.increment(ok)
      yield* Metric.increment(ok)
      yield* Metric.incrementBy(MetricTags.tagged(calls, { tool: "t", status: "failed" }), 5)
      assert.strictEqual(yield* plainCount(calls, [["tool", "t"], ["status", "ok"]]), 2)
      assert.strictEqual(yield* plainCount(calls, [["tool", "t"], ["status", "failed"]]), 5)
      // the fiber's own metric labels still apply, on top of the tags
      yield* Metric.increment(ok).pipe(Effect.tagMetrics("region", "eu"))
      assert.strictEqual(yield* plainCount(calls, [["tool", "t"], ["status", "ok"], ["region", "eu"]]), 1)
      assert.strictEqual(yield* plainCount(calls, [["tool", "t"], ["status", "ok"]]), 2)
    }))

  it.effect("histograms and gauges keep their series the same way", () =>
    Effect.gen(function*() {
      const took = MetricTags.histogram(
        "test_metric_tags_ms",
        MetricBoundaries.linear({ start: 0, width: 10, count: 3 }),
        "ms"
      )
      yield* Metric.update(MetricTags.tagged(took, { route: "/a" }), 7)
      yield* Metric.update(MetricTags.tagged(took, { route: "/a" }), 12)
      const state = yield* Metric.value(Metric.tagged(took, "route", "/a"))
      assert.deepStrictEqual([state.count, state.sum], [2, 19])
      const level = MetricTags.gauge("test_metric_tags_level", "level by host")
      yield* Metric.set(MetricTags.tagged(level, { host: "h" }), 3)
      assert.strictEqual((yield* Metric.value(Metric.tagged(level, "host", "h"))).value, 3)
    }))
})
