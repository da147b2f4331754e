/**
 * Tagged metrics, built once per distinct set of tags. `Metric.tagged` makes a new metric
 * (and a new registry key to hash) on every call; on a hot path that costs more than the
 * update itself. Worse, a metric from `Metric.tagged` merges its tags into a fresh array
 * on every update, so Effect's registry never finds its hook cached and builds and hashes
 * a `MetricKey` per update (about 1 µs, 2% of a no-op tool call's CPU in a profile). The
 * metrics made here keep their key, and a tagged one is made from the key with its tags:
 * its updates hit the cached hook. The series are the same as `Metric.tagged` makes.
 */
import { Metric, MetricBoundaries, MetricKey, MetricLabel } from "effect"
import type { MetricKeyType } from "effect"

const built = new WeakMap<object, Map<string, unknown>>()
/** The key of each metric made here, for `tagged`. */
const keys = new WeakMap<object, MetricKey.MetricKey<MetricKeyType.MetricKeyType<unknown, unknown>>>()

const keyed = <Type extends MetricKeyType.MetricKeyType.Untyped>(key: MetricKey.MetricKey<Type>) => {
  const metric = Metric.fromMetricKey(key)
  keys.set(metric, key)
  return metric
}

/** `metric` with `tags`, memoised per metric and tag values. */
export const tagged = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  tags: Readonly<Record<string, string>>
): Metric.Metric<Type, In, Out> => {
  let byTags = built.get(metric)
  if (!byTags) {
    byTags = new Map()
    built.set(metric, byTags)
  }
  const key = Object.entries(tags).map(([k, v]) => `${k}\u0000${v}`).join("\u0001")
  let found = byTags.get(key) as Metric.Metric<Type, In, Out> | undefined
  if (!found) {
    const base = keys.get(metric)
    found = base === undefined
      ? Object.entries(tags).reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)
      : Metric.fromMetricKey(
        MetricKey.taggedWithLabels(base, Object.entries(tags).map(([k, v]) => MetricLabel.make(k, v)))
      ) as unknown as Metric.Metric<Type, In, Out>
    byTags.set(key, found)
  }
  return found
}

/** A histogram of durations in milliseconds, 1 ms to about 33 s in doubling buckets: the one shape every timing uses. */
export const millisHistogram = (name: string, description: string) =>
  keyed(MetricKey.histogram(name, MetricBoundaries.exponential({ start: 1, factor: 2, count: 16 }), description))

/** A histogram with its own buckets. */
export const histogram = (name: string, boundaries: MetricBoundaries.MetricBoundaries, description: string) =>
  keyed(MetricKey.histogram(name, boundaries, description))

/** A counter of events (only ever incremented), the shape every count uses. */
export const counter = (name: string, description: string) =>
  keyed(MetricKey.counter(name, { description, incremental: true }))

/** A gauge: a value set, or moved up and down. */
export const gauge = (name: string, description: string) => keyed(MetricKey.gauge(name, { description }))
