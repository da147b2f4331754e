import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { ProcessRunner, ProcessSpec } from "../../src/domain/Process.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import { scratchDir } from "../support/Service.js"

const loom = (...args: Array<string>) =>
  Effect.flatMap(ProcessRunner, (runner) =>
    runner.run(
      new ProcessSpec({
        command: process.execPath,
        args: ["bin/loom.mjs", ...args],
        env: { LOOM_LLM: "simulator", LOOM_DATA_DIR: scratchDir() }
      })
    ))

describe("the loom CLI", () => {
  it.live(
    "lists tools, runs an agent and the coding workflow with progress, and explains bad usage",
    () =>
      Effect.gen(function*() {
        const tools = yield* loom("tools")
        assert.strictEqual(tools.exitCode, 0, tools.stderr)
        assert.match(tools.stdout, /^weather\s+io\s+Current weather/m)
        assert.match(tools.stdout, /^text\.chunk\s+cpu/m)

        const agent = yield* loom("run", "agent", "use weather {\"city\": \"Oslo\"}")
        assert.strictEqual(agent.exitCode, 0, agent.stderr)
        assert.match(agent.stdout, /calls weather \{"city":"Oslo"\}/)
        assert.match(agent.stdout, /weather succeeded/)
        assert.match(agent.stdout, /answer:\nBased on the tool results/)

        const workflow = yield* loom("run", "workflow", "Write add(a, b)")
        assert.strictEqual(workflow.exitCode, 0, workflow.stderr)
        assert.match(workflow.stdout, /runner done .*"passed":false/)
        assert.match(workflow.stdout, /reviewer done .*APPROVED/)

        const bad = yield* loom("frobnicate")
        assert.notStrictEqual(bad.exitCode, 0)
        assert.include(bad.stderr, "usage:")
      }).pipe(Effect.provide(NodeProcessRunner.layer({ timeout: Duration.seconds(60) }))),
    180_000
  )
})
