import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { scratchDir } from "../support/Scratch.js"
import { answer as cpuAnswer } from "./cpu-example.js"
import { runIn as hitlIn } from "./hitl-example.js"
import { answer } from "./llm-example.js"
import { runIn } from "./workflow-example.js"

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1])
/** A checked copy of a README block: the same text below its one-line header. */
const copy = (file: string) => readFileSync(new URL(file, import.meta.url), "utf8").split("\n").slice(1).join("\n")

describe("README", () => {
  it("shows the library examples that tsc checks", () => {
    assert.strictEqual(blocks[0], copy("./example.ts"))
    assert.strictEqual(blocks[1], copy("./llm-example.ts"))
    assert.strictEqual(blocks[2], copy("./cpu-example.ts"))
    assert.strictEqual(blocks[3], copy("./workflow-example.ts"))
    assert.strictEqual(blocks[4], copy("./hitl-example.ts"))
  })

  it("shows the two quick-start commands", () => {
    assert.include(readme, "npm install && npm start")
    assert.include(readme, "npm install && npm test")
  })

  it.live("the LLM example runs against the simulator", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* answer, { answer: "echo: hi", dimensions: 8 })
    }))

  it.live("the CPU and process example runs on real threads and a real child process", () =>
    Effect.gen(function*() {
      const { count, top } = yield* cpuAnswer
      assert.deepStrictEqual((top as ReadonlyArray<{ index: number }>).map((match) => match.index), [0, 2])
      assert.deepStrictEqual(count, { words: 3 })
    }), 30_000)

  it.live("the workflow example runs, checkpointing to SQLite", () =>
    Effect.gen(function*() {
      const tags = yield* runIn(scratchDir("loom-readme-"))
      assert.strictEqual(tags.filter((tag) => tag === "NodeStarted").length, 6)
      assert.strictEqual(tags[tags.length - 1], "WorkflowFinished")
    }))

  it.live("the human-in-the-loop example waits for its reviewer, then finishes", () =>
    Effect.gen(function*() {
      const result = yield* hitlIn(scratchDir("loom-readme-"))
      assert.deepStrictEqual(result, { asked: [{ draft: "release notes, written up" }], status: "finished" })
    }), 30_000)
})
