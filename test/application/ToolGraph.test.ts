import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ToolGraph from "../../src/application/ToolGraph.js"

const node = (id: string, dependsOn: ReadonlyArray<string> = []) => ({ id, tool: "t", input: {}, dependsOn })

describe("ToolGraph", () => {
  it.effect("orders every node after its dependencies", () =>
    Effect.gen(function*() {
      const graph = yield* ToolGraph.make([node("D", ["B", "C"]), node("B", ["A"]), node("C", ["A", "A"]), node("A")])
      const position = (id: string) => graph.order.indexOf(id)
      assert.strictEqual(graph.order.length, 4)
      assert.isBelow(position("A"), position("B"))
      assert.isBelow(position("A"), position("C"))
      assert.isBelow(position("C"), position("D"))
    }))

  it.effect("rejects a cycle, naming the nodes on it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ToolGraph.make([node("A"), node("B", ["A", "C"]), node("C", ["B"])]))
      assert.strictEqual(error.reason, "cycle")
      assert.sameMembers([...error.nodes], ["B", "C"])
      const self = yield* Effect.flip(ToolGraph.make([node("A", ["A"])]))
      assert.strictEqual(self.reason, "cycle")
    }))

  it.effect("rejects an unknown dependency and a repeated id", () =>
    Effect.gen(function*() {
      const unknown = yield* Effect.flip(ToolGraph.make([node("A", ["ghost"])]))
      assert.strictEqual(unknown.reason, "unknown_dependency")
      assert.deepStrictEqual(unknown.nodes, ["A -> ghost"])
      const duplicate = yield* Effect.flip(ToolGraph.make([node("A"), node("A")]))
      assert.strictEqual(duplicate.reason, "duplicate_node")
    }))
})
