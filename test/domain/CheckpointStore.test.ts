import { assert, describe, it } from "@effect/vitest"
import type { Layer } from "effect"
import { Schema } from "effect"
import * as fc from "fast-check"
import * as path from "node:path"
import { canMove, CheckpointStore } from "../../src/domain/CheckpointStore.js"
import { RunStatus } from "../../src/domain/Workflow.js"
import * as SqliteCheckpointStore from "../../src/infrastructure/persistence/SqliteCheckpointStore.js"
import { checkpointStoreContract } from "../support/CheckpointContract.js"
import { scratchDir } from "../support/Scratch.js"

const statuses = RunStatus.literals

describe("run status moves", () => {
  it("a run ends once: finished and cancelled runs never move again", () => {
    for (const to of statuses) {
      assert.isFalse(canMove("finished", to), `finished -> ${to}`)
      assert.isFalse(canMove("cancelled", to), `cancelled -> ${to}`)
    }
  })

  it("only a running run is interrupted; a run that is not over may resume, be cancelled or fail", () => {
    assert.isTrue(canMove("running", "interrupted"))
    assert.isFalse(canMove("interrupted", "interrupted"))
    assert.isFalse(canMove("failed", "interrupted"))
    for (const from of ["running", "interrupted", "failed"] as const) assert.isTrue(canMove(from, "running"))
    assert.isTrue(canMove("interrupted", "cancelled"))
    assert.isTrue(canMove("running", "finished"))
    assert.isFalse(canMove("failed", "finished"))
  })

  it("a queued run either starts or is cancelled, and no run moves back to the queue", () => {
    for (const to of statuses) {
      assert.strictEqual(canMove("queued", to), to === "running" || to === "cancelled", `queued -> ${to}`)
      assert.isFalse(canMove(to, "queued"), `${to} -> queued`)
    }
  })

  it.prop(
    "any sequence of attempted moves, from a run's start (running or queued), never leaves a terminal status",
    [fc.constantFrom<RunStatus>("running", "queued"), fc.array(fc.constantFrom(...statuses), { maxLength: 30 })],
    ([start, attempts]) => {
      let status = start
      let ended = false
      for (const to of attempts) {
        if (canMove(status, to)) {
          assert.notStrictEqual(to, "queued", `moved ${status} -> queued`)
          assert.isFalse(ended, `moved ${status} -> ${to} after the run ended`)
          status = to
        }
        if (status === "finished" || status === "cancelled") ended = true
      }
      assert.isTrue(Schema.is(RunStatus)(status))
    }
  )
})

/** The stores the contract (test/support/CheckpointContract.ts) runs on; every store must pass it. */
const stores: ReadonlyArray<readonly [string, () => Layer.Layer<CheckpointStore>]> = [
  ["in memory", () => CheckpointStore.layerMemory],
  [
    "SQLite",
    () => SqliteCheckpointStore.layer(path.join(scratchDir("loom-store-"), "loom.db"))
  ]
]

for (const [name, layer] of stores) checkpointStoreContract(it, name, layer)
