/**
 * Tagged metrics, built once per distinct set of tags. `Metric.tagged` makes a new metric
 * (and a new registry key to hash) on every call; on a hot path that costs more than the
 * update itself.
 */
import { Metric, MetricBoundaries } from "effect"

const built = new WeakMap<object, Map<string, unknown>>()

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
    found = Object.entries(tags).reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)
    byTags.set(key, found)
  }
  return found
}

/** A histogram of durations in milliseconds, 1 ms to about 33 s in doubling buckets: the one shape every timing uses. */
export const millisHistogram = (name: string, description: string) =>
  Metric.histogram(name, MetricBoundaries.exponential({ start: 1, factor: 2, count: 16 }), description)

/** A counter of events (only ever incremented), the shape every count uses. */
export const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })
