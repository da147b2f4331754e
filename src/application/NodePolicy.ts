/**
 * What a workflow node may declare besides its function, as LangGraph's `RetryPolicy`,
 * `TimeoutPolicy` and `CachePolicy` do: a retry schedule, a deadline and a cache.
 * `Workflow.make` wraps each node that has a policy; a node without one runs as it is.
 *
 * In order: the cache first (a hit gives the stored update and the node does not run);
 * otherwise the node runs under its deadline, retried by its schedule. Each attempt gets
 * the whole deadline, and an attempt cut off fails with `Timeout`, which the schedule sees
 * like the node's own errors (and retries, unless it says otherwise). A success is stored
 * under the cache key; a failure never is.
 */
import type { Schedule } from "effect"
import { Duration, Effect, Option, Schema } from "effect"
import type { Timeout } from "../domain/Errors.js"
import * as Timeouts from "../infrastructure/resilience/Timeouts.js"
import { NodeCache } from "./NodeCache.js"
import type { ErrorOf as NodesErrorOf, Node, NodeError } from "./Workflow.js"

/** Reuses a node's update for states with the same key. */
export interface CachePolicy<S> {
  /** The key of a state: two states with one key get one update. */
  readonly key: (state: S) => string
  /** How long an update is reused after the node gave it (by the fiber's `Clock`). */
  readonly ttl: Duration.DurationInput
}

/** A node's policy; each part is optional and off by default. */
export interface NodePolicy<S, E extends NodeError = NodeError> {
  /**
   * Runs a failing node again, as `Effect.retry` does: the schedule gets each error (the
   * node's own, or `Timeout` from an attempt past its deadline) and decides.
   */
  readonly retry?: Schedule.Schedule<unknown, E | Timeout>
  /** How long each attempt may run; one still running then is interrupted and fails with `Timeout`. */
  readonly deadline?: Duration.DurationInput
  /** Reuses the update of an earlier run of the node whose state had the same key. */
  readonly cache?: CachePolicy<S>
}

/** The policies of a record of nodes, each typed with its node's errors. */
export type Policies<S, Nodes> = {
  readonly [K in keyof Nodes]?: NodePolicy<S, NodesErrorOf<Pick<Nodes, K>>>
}

/**
 * The `policies` a graph of `Nodes` takes: `P`, checked against `Policies` (inferring the
 * node errors from `Nodes`, not from `P`), naming none but `Nodes`.
 */
export type Checked<S, Nodes, P> =
  & P
  & Policies<S, NoInfer<Nodes>>
  & { readonly [K in Exclude<keyof P, keyof Nodes>]: never }

/** The errors a record of policies adds to its nodes': `Timeout` when one of them has a deadline. */
export type ErrorOf<P> = {
  readonly [K in keyof P]-?: NonNullable<P[K]> extends { readonly deadline?: undefined } ? never : Timeout
}[keyof P]

/** Where a node is: its graph, its name, and the schema its updates are stored with. */
export interface Site<S> {
  readonly graph: string
  readonly node: string
  readonly update: Schema.Schema<Partial<S>, unknown>
}

/** `node` with `policy` around it: the cache, then the retried node, each attempt under the deadline. */
export const apply =
  <S, E extends NodeError>(site: Site<S>, policy: NodePolicy<S, E>) => (node: Node<S, E>): Node<S, E | Timeout> => {
    const { cache, deadline, retry } = policy
    const bounded: Node<S, E | Timeout> = deadline === undefined
      ? node
      : (state) => Timeouts.within(`${site.graph}/${site.node}`, deadline)(node(state))
    const retried: Node<S, E | Timeout> = retry === undefined ? bounded : (state) => Effect.retry(bounded(state), retry)
    if (cache === undefined) return retried
    const ttl = Duration.decode(cache.ttl)
    const encode = Schema.encode(site.update)
    const decode = Schema.decodeUnknown(site.update)
    return (state) =>
      Effect.flatMap(NodeCache, (store) => {
        const key = { graph: site.graph, node: site.node, key: cache.key(state) }
        // an update that does not encode is not stored: the engine fails the node with InvalidUpdate
        const run = Effect.tap(
          retried(state),
          (update) => Effect.ignore(Effect.flatMap(encode(update), (encoded) => store.set(key, encoded, ttl)))
        )
        return Effect.flatMap(
          store.get(key),
          Option.match({
            onNone: () => Effect.zipRight(Effect.annotateCurrentSpan("loom.node.cache", "miss"), run),
            // an entry that no longer decodes (the state's schema changed) is a miss
            onSome: (encoded) =>
              Effect.matchEffect(decode(encoded), {
                onFailure: () => Effect.zipRight(Effect.annotateCurrentSpan("loom.node.cache", "miss"), run),
                onSuccess: (update) => Effect.as(Effect.annotateCurrentSpan("loom.node.cache", "hit"), update)
              })
          })
        )
      })
  }
