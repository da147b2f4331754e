/**
 * Where cached node updates live (see `NodePolicy`'s `cache`). Entries are keyed by graph
 * name, node and the key the node's policy computes from the state, and hold the update
 * encoded with the graph's update schema (JSON values), so an app may back the cache with a
 * store shared between processes. Only successes are stored.
 *
 * It is a `Context.Reference`, not a `Context.Tag`: a graph that caches needs nothing new
 * from its caller, and `WorkflowEngine`'s layers stay as they are. By default every graph
 * of the process shares one in-memory cache (`memory`, 10,000 entries). An app swaps it by
 * providing another around its runs: `Effect.provide(NodeCache.layerMemory)` for a cache of
 * its own, or `Layer.succeed(NodeCache, NodeCache.of({ get, set }))` over a shared store.
 */
import { Clock, Context, Duration, Effect, Layer, Option } from "effect"

/** Which entry: a node of a graph, and the key its policy computed from the state. */
export interface Key {
  readonly graph: string
  readonly node: string
  readonly key: string
}

export interface Service {
  /** The update stored under `key`, unless there is none or it has expired. */
  readonly get: (key: Key) => Effect.Effect<Option.Option<unknown>>
  /** Stores an encoded update under `key` for `ttl`, replacing what was there. */
  readonly set: (key: Key, update: unknown, ttl: Duration.Duration) => Effect.Effect<void>
}

/** Entries the default cache keeps before it evicts the least recently used. */
export const defaultCapacity = 10_000

/**
 * An in-memory cache of at most `capacity` entries, least recently used evicted first. An
 * entry expires `ttl` after it was set, by the `Clock` of the fiber that reads it (so
 * `TestClock` drives expiry). Built outside an Effect because it is the Reference's default.
 */
export const unsafeMemory = (capacity: number = defaultCapacity): Service => {
  // Map keeps insertion order: re-inserting an entry on use makes the first one the least recently used
  const entries = new Map<string, { readonly update: unknown; readonly expires: number }>()
  const id = (key: Key) => JSON.stringify([key.graph, key.node, key.key])
  return {
    get: (key) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const at = id(key)
        const entry = entries.get(at)
        if (entry === undefined) return Option.none()
        entries.delete(at)
        if (now >= entry.expires) return Option.none()
        entries.set(at, entry)
        return Option.some(entry.update)
      }),
    set: (key, update, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const at = id(key)
        entries.delete(at)
        entries.set(at, { update, expires: now + Duration.toMillis(ttl) })
        if (entries.size > capacity) entries.delete(entries.keys().next().value!)
      })
  }
}

/** `unsafeMemory`, built as an Effect. */
export const memory = (capacity: number = defaultCapacity): Effect.Effect<Service> =>
  Effect.sync(() => unsafeMemory(capacity))

export class NodeCache extends Context.Reference<NodeCache>()("loom/NodeCache", {
  defaultValue: (): Service => unsafeMemory()
}) {
  /** A fresh in-memory cache (`memory`) for what it is provided to: a test, or an app's own runs. */
  static readonly layerMemory: Layer.Layer<NodeCache> = Layer.effect(NodeCache, memory())
}
