/** Graphs for the workflow tests, shared with the subprocess that is killed mid-run. */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as Workflow from "../../../src/application/Workflow.js"

export const DiamondState = Schema.Struct({
  input: Schema.String,
  visited: Schema.Array(Schema.String)
})

/**
 * a -> (b, c) -> d. Each node appends its name to `log` once its work is done;
 * `beforeB` runs first in b (a gate, or a crash), so b can be stopped mid-step after c
 * has finished.
 */
export const diamond = (log: string, beforeB: Effect.Effect<void> = Effect.void) =>
  Workflow.make({
    name: "diamond",
    state: DiamondState,
    start: "a",
    nodes: {
      a: () => done(log, "a"),
      b: () => Effect.zipRight(beforeB, done(log, "b")),
      c: () => done(log, "c"),
      d: () => done(log, "d")
    },
    edges: { a: ["b", "c"], b: "d", c: "d" },
    reducers: { visited: Workflow.append }
  })

const done = (log: string, node: string) =>
  Effect.sync(() => {
    fs.appendFileSync(log, `${node}\n`)
    return { visited: [node] }
  })

/** How many times each node finished, from the log. */
export const completions = (log: string): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const node of fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter(Boolean) : []) {
    counts[node] = (counts[node] ?? 0) + 1
  }
  return counts
}
