/**
 * A LangGraph-style graph over a Schema-typed state. Nodes are Effects from the state
 * to a partial update; edges are static (one node or several: a fan-out) or
 * conditional (a function of the state). The nodes of one step run in parallel and
 * their updates merge field by field: a field's reducer combines the current value with
 * the update (`append` for lists), a field without one takes the update.
 *
 * A graph carries the errors its nodes fail with (`E`): a run's `NodeFailed` names the
 * tag of one of them in `reason` (see `RunError`).
 */
import type { Effect } from "effect"
import { Effect as E, Schema } from "effect"
import { InvalidGraph } from "../domain/Errors.js"
import type { NodeFailed, WorkflowError } from "../domain/Workflow.js"
import type * as Interrupt from "./Interrupt.js"
import * as NodePolicy from "./NodePolicy.js"

/** The pseudo-node that ends a run. */
export const END = "__end__"

/** Where a node leads: a node, several nodes (run together next step), or END. */
export type Targets = string | ReadonlyArray<string>

/** A node's failure: any tagged error with a message. */
export interface NodeError {
  readonly _tag: string
  readonly message: string
}

/** A node: from the state to an update of some of its fields, or a failure `E`. */
export type Node<S, E extends NodeError = NodeError> = (state: S) => Effect.Effect<Partial<S>, E>

export type Edge<S> = Targets | ((state: S) => Targets)

export type Reducers<S> = { readonly [K in keyof S]?: (current: S[K], update: S[K]) => S[K] }

export interface Graph<S, I = unknown, E extends NodeError = NodeError> {
  readonly name: string
  readonly state: Schema.Schema<S, I>
  /** Encodes and decodes node updates (every field optional). */
  readonly update: Schema.Schema<Partial<S>, unknown>
  readonly start: ReadonlyArray<string>
  readonly nodes: ReadonlyMap<string, Node<S, E>>
  readonly edges: ReadonlyMap<string, Edge<S>>
  readonly reducers: Reducers<S>
  /** Steps before a run fails with `StepLimitExceeded` (default 25). */
  readonly maxSteps: number
  /** The interrupts its nodes ask, by name: a resume's value is checked against its `resume` schema. */
  readonly interrupts: ReadonlyMap<string, Interrupt.Any>
}

/** Why a node failed: the tag of one of its graph's node errors, or an update or state that does not encode. */
export type NodeFailure<E extends NodeError> = E["_tag"] | "InvalidUpdate" | "InvalidState"

/** What ends a run of a graph whose nodes fail with `E`: a `NodeFailed` whose `reason` is one of their tags, or an engine error. */
export type RunError<E extends NodeError> =
  | Exclude<WorkflowError, NodeFailed>
  | (NodeFailed & { readonly reason: NodeFailure<E> })

/** The union of the errors of a record of nodes. */
export type ErrorOf<Nodes> = {
  readonly [K in keyof Nodes]: Nodes[K] extends (state: never) => Effect.Effect<unknown, infer E extends NodeError> ? E
    : never
}[keyof Nodes]

/** A reducer that appends the update's items to the current list. */
export const append = <A>(current: ReadonlyArray<A>, update: ReadonlyArray<A>): ReadonlyArray<A> => [
  ...current,
  ...update
]

export const targets = (edge: Targets): ReadonlyArray<string> => typeof edge === "string" ? [edge] : edge

/**
 * Builds a graph, checking that the start, every static edge and every policy name a node
 * (or END). A node without an edge ends the run after it. A node with a policy (a retry
 * schedule, a deadline, a cache: see `NodePolicy`) is kept wrapped in it; a graph with a
 * deadline among its policies may fail with `Timeout` too.
 */
export const make = <
  Fields extends Schema.Struct.Fields,
  Nodes extends { readonly [name: string]: Node<Schema.Struct.Type<Fields>> },
  Policies extends NodePolicy.Policies<Schema.Struct.Type<Fields>, Nodes> = Record<never, never>
>(definition: {
  readonly name: string
  readonly state: Schema.Struct<Fields>
  readonly start: Targets
  readonly nodes: Nodes
  readonly edges?: { readonly [from: string]: Edge<Schema.Struct.Type<Fields>> }
  readonly reducers?: Reducers<Schema.Struct.Type<Fields>>
  readonly maxSteps?: number
  /** The interrupts the nodes ask (see `Interrupt`). */
  readonly interrupts?: ReadonlyArray<Interrupt.Any>
  /** Per-node retry schedules, deadlines and caches, by node name (see `NodePolicy`). */
  readonly policies?: NodePolicy.Checked<Schema.Struct.Type<Fields>, Nodes, Policies>
}): Effect.Effect<
  Graph<Schema.Struct.Type<Fields>, Schema.Struct.Encoded<Fields>, ErrorOf<Nodes> | NodePolicy.ErrorOf<Policies>>,
  InvalidGraph
> => {
  type S = Schema.Struct.Type<Fields>
  type Failure = ErrorOf<Nodes> | NodePolicy.ErrorOf<Policies>
  const update = Schema.partialWith(definition.state, { exact: true }) as unknown as Schema.Schema<Partial<S>, unknown>
  const policies = new Map(
    Object.entries(definition.policies ?? {}) as Array<[string, NodePolicy.NodePolicy<S, Failure>]>
  )
  const nodes = new Map(
    (Object.entries(definition.nodes) as Array<[string, Node<S, Failure>]>).map(([node, f]) => {
      const policy = policies.get(node)
      // a policy adds Timeout only when it has a deadline, and then NodePolicy.ErrorOf<Policies> holds it
      return [
        node,
        policy === undefined
          ? f
          : NodePolicy.apply({ graph: definition.name, node, update }, policy)(f) as Node<S, Failure>
      ]
    })
  )
  const edges = new Map(Object.entries(definition.edges ?? {}))
  const known = (name: string) => name === END || nodes.has(name)
  const unknown = [
    ...targets(definition.start).filter((name) => !known(name) || name === END),
    ...[...edges.keys()].filter((from) => !nodes.has(from)),
    ...[...edges.values()].flatMap((edge) => typeof edge === "function" ? [] : targets(edge).filter((t) => !known(t))),
    ...[...policies.keys()].filter((node) => !nodes.has(node))
  ]
  if (unknown.length > 0) {
    return E.fail(
      new InvalidGraph({
        reason: "unknown_dependency",
        nodes: unknown,
        message: `graph ${definition.name} names nodes it does not have: ${unknown.join(", ")}`
      })
    )
  }
  return E.succeed({
    name: definition.name,
    state: definition.state as unknown as Schema.Schema<S, Schema.Struct.Encoded<Fields>>,
    update,
    start: targets(definition.start),
    nodes,
    edges,
    reducers: definition.reducers ?? {},
    maxSteps: definition.maxSteps ?? 25,
    interrupts: new Map((definition.interrupts ?? []).map((interrupt) => [interrupt.name, interrupt]))
  })
}

/** Applies updates in order, field by field, through the graph's reducers. */
export const merge = <S>(graph: Pick<Graph<S>, "reducers">, state: S, updates: ReadonlyArray<Partial<S>>): S => {
  const next = { ...state }
  for (const update of updates) {
    for (const key of Object.keys(update) as Array<keyof S>) {
      const value = update[key] as S[keyof S]
      const reducer = graph.reducers[key]
      next[key] = reducer ? reducer(next[key], value) : value
    }
  }
  return next
}
