/**
 * A dependency graph of tool calls, checked when it is built: node ids are unique,
 * every dependency names a node, and there is no cycle. Only a valid graph can be
 * handed to `ToolExecutor.executeGraph`.
 */
import { Effect, Either } from "effect"
import { InvalidGraph } from "../domain/Errors.js"

export interface Node {
  readonly id: string
  readonly tool: string
  /** The input, when it does not depend on other nodes' outputs. */
  readonly input?: unknown
  /** Builds the input from the outputs of `dependsOn`, keyed by node id. */
  readonly inputFrom?: (outputs: Readonly<Record<string, unknown>>) => unknown
  readonly dependsOn?: ReadonlyArray<string>
}

export interface ToolGraph {
  readonly nodes: ReadonlyArray<Node>
  /** Every node after all of its dependencies. */
  readonly order: ReadonlyArray<string>
}

/** Validates `nodes` and returns the graph or the reason it cannot run. */
export const validate = (nodes: ReadonlyArray<Node>): Either.Either<ToolGraph, InvalidGraph> => {
  const ids = new Set<string>()
  const duplicates = new Set<string>()
  for (const node of nodes) {
    if (ids.has(node.id)) duplicates.add(node.id)
    ids.add(node.id)
  }
  if (duplicates.size > 0) {
    return Either.left(
      new InvalidGraph({
        reason: "duplicate_node",
        nodes: [...duplicates],
        message: `node ids must be unique: ${[...duplicates].join(", ")}`
      })
    )
  }
  const unknown = nodes.flatMap((node) =>
    (node.dependsOn ?? []).filter((dep) => !ids.has(dep)).map((dep) => `${node.id} -> ${dep}`)
  )
  if (unknown.length > 0) {
    return Either.left(
      new InvalidGraph({
        reason: "unknown_dependency",
        nodes: unknown,
        message: `dependencies name no node: ${unknown.join(", ")}`
      })
    )
  }
  // Kahn's algorithm: what is left after peeling off ready nodes lies on or behind a cycle.
  const pending = new Map(nodes.map((node) => [node.id, new Set(node.dependsOn ?? [])]))
  const dependents = new Map<string, Array<string>>()
  for (const node of nodes) {
    for (const dep of new Set(node.dependsOn)) dependents.set(dep, [...(dependents.get(dep) ?? []), node.id])
  }
  const ready = nodes.filter((node) => (node.dependsOn ?? []).length === 0).map((node) => node.id)
  const order: Array<string> = []
  for (let i = 0; i < ready.length; i++) {
    const id = ready[i]!
    order.push(id)
    pending.delete(id)
    for (const next of dependents.get(id) ?? []) {
      const waiting = pending.get(next)
      waiting?.delete(id)
      if (waiting?.size === 0) ready.push(next)
    }
  }
  if (pending.size > 0) {
    const stuck = [...pending.keys()]
    return Either.left(
      new InvalidGraph({ reason: "cycle", nodes: stuck, message: `a cycle runs through: ${stuck.join(", ")}` })
    )
  }
  return Either.right({ nodes, order })
}

/** `validate` as an Effect. */
export const make = (nodes: ReadonlyArray<Node>): Effect.Effect<ToolGraph, InvalidGraph> => validate(nodes)
