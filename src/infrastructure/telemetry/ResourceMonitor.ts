/**
 * Samples what the process itself costs: CPU use since the last sample, memory, and
 * event-loop lag. Lag quantiles come from Node's event-loop delay histogram; its max
 * also counts how late the sampler's own timer fired, because resetting the histogram
 * drops a delay still in progress. Each sample goes into gauges and is kept as the
 * latest snapshot for health.
 */
import { Context, Duration, Effect, Layer, Metric, Ref, Schedule } from "effect"
import { monitorEventLoopDelay } from "node:perf_hooks"
import type { HealthCheck } from "../../domain/Health.js"
import { ok } from "../../domain/Health.js"

export interface Snapshot {
  /** Share of one core used since the previous sample (1 = a whole core). */
  readonly cpu: number
  readonly rssBytes: number
  readonly heapUsedBytes: number
  readonly eventLoopLagMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly sampledAt: number
}

export const cpuUsage = Metric.gauge("loom_process_cpu_usage", {
  description: "CPU used by the process since the last sample, in cores"
})
export const memory = Metric.gauge("loom_process_memory_bytes", { description: "Process memory by kind" })
export const eventLoopLag = Metric.gauge("loom_event_loop_lag_ms", {
  description: "Event-loop delay over the last sample period, by quantile"
})

const empty: Snapshot = {
  cpu: 0,
  rssBytes: 0,
  heapUsedBytes: 0,
  eventLoopLagMs: { p50: 0, p99: 0, max: 0 },
  sampledAt: 0
}

export interface Service {
  /** The latest sample. */
  readonly snapshot: Effect.Effect<Snapshot>
}

export class ResourceMonitor extends Context.Tag("loom/ResourceMonitor")<ResourceMonitor, Service>() {}

const gauges = {
  rss: Metric.tagged(memory, "kind", "rss"),
  heapUsed: Metric.tagged(memory, "kind", "heap_used"),
  p50: Metric.tagged(eventLoopLag, "quantile", "0.5"),
  p99: Metric.tagged(eventLoopLag, "quantile", "0.99"),
  max: Metric.tagged(eventLoopLag, "quantile", "1")
}

const nsToMs = (ns: number) => (Number.isFinite(ns) ? ns / 1e6 : 0)

/** Samples every `interval` while the scope is open. */
export const make = (interval: Duration.DurationInput = Duration.seconds(5)) =>
  Effect.gen(function*() {
    const periodMs = Duration.toMillis(interval)
    const delay = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const histogram = monitorEventLoopDelay({ resolution: 10 })
        histogram.enable()
        return histogram
      }),
      (histogram) => Effect.sync(() => histogram.disable())
    )
    const latest = yield* Ref.make(empty)
    let lastCpu = process.cpuUsage()
    let lastAt = performance.now()
    let periodic = false // the first sample is taken at once, not after a period

    const sample = Effect.gen(function*() {
      const now = performance.now()
      const used = process.cpuUsage(lastCpu)
      const cpu = now > lastAt ? (used.user + used.system) / 1000 / (now - lastAt) : 0
      const late = periodic ? Math.max(0, now - lastAt - periodMs) : 0
      periodic = true
      lastCpu = process.cpuUsage()
      lastAt = now
      const mem = process.memoryUsage()
      const lag = {
        p50: nsToMs(delay.percentile(50)),
        p99: nsToMs(delay.percentile(99)),
        max: Math.max(nsToMs(delay.max), late)
      }
      delay.reset()
      yield* Metric.set(cpuUsage, cpu)
      yield* Metric.set(gauges.rss, mem.rss)
      yield* Metric.set(gauges.heapUsed, mem.heapUsed)
      yield* Metric.set(gauges.p50, lag.p50)
      yield* Metric.set(gauges.p99, lag.p99)
      yield* Metric.set(gauges.max, lag.max)
      const sampledAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      yield* Ref.set(latest, { cpu, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, eventLoopLagMs: lag, sampledAt })
    })

    yield* sample
    yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(interval)))
    return ResourceMonitor.of({ snapshot: Ref.get(latest) })
  })

export const layer = (interval?: Duration.DurationInput) => Layer.scoped(ResourceMonitor, make(interval))

/** Readiness: the latest sample, for reading (never down: a busy process still serves). */
export const healthCheck = Effect.map(ResourceMonitor, (monitor): HealthCheck => ({
  name: "resources",
  critical: false,
  run: Effect.map(monitor.snapshot, ok)
}))
