import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Schedule } from "effect"
import * as ResourceMonitor from "../../../src/infrastructure/telemetry/ResourceMonitor.js"

/** Holds the event loop (and a core) for `ms` milliseconds. */
const block = (ms: number) =>
  Effect.sync(() => {
    const end = performance.now() + ms
    while (performance.now() < end) {
      // busy on purpose
    }
  })

/** The first snapshot that satisfies `until`, polled on the live clock. */
const sampleUntil = (until: (snapshot: ResourceMonitor.Snapshot) => boolean) =>
  Effect.flatMap(ResourceMonitor.ResourceMonitor, (monitor) =>
    monitor.snapshot.pipe(
      Effect.filterOrFail(until, () => "not yet"),
      Effect.retry(Schedule.spaced("10 millis")),
      Effect.timeout("5 seconds")
    ))

describe("ResourceMonitor", () => {
  it.live("samples CPU, memory and event-loop lag into gauges; a blocked loop shows as lag", () =>
    Effect.gen(function*() {
      const monitor = yield* ResourceMonitor.ResourceMonitor
      const first = yield* monitor.snapshot
      yield* block(150)
      // The next samples see the blocked loop and the busy core.
      const after = yield* sampleUntil((s) => s.sampledAt > first.sampledAt && s.eventLoopLagMs.max >= 100)
      assert.isAtLeast(after.eventLoopLagMs.max, 100)
      assert.isAbove(after.rssBytes, 0)
      assert.isAbove(after.heapUsedBytes, 0)
      assert.isAbove((yield* Metric.value(Metric.tagged(ResourceMonitor.memory, "kind", "rss"))).value, 0)
      assert.isAtLeast((yield* Metric.value(Metric.tagged(ResourceMonitor.eventLoopLag, "quantile", "1"))).value, 0)
    }).pipe(Effect.provide(ResourceMonitor.layer("50 millis"))))

  it.live("the CPU share counts a busy core", () =>
    Effect.gen(function*() {
      const monitor = yield* ResourceMonitor.ResourceMonitor
      const start = (yield* monitor.snapshot).sampledAt
      yield* block(200)
      const after = yield* sampleUntil((s) => s.sampledAt > start)
      assert.isAbove(after.cpu, 0.3)
    }).pipe(Effect.provide(ResourceMonitor.layer("250 millis"))))
})
