import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as fs from "node:fs"
import { ProcessRunner, ProcessSpec } from "../../src/domain/Process.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import { post, scratchDir, service } from "../support/Service.js"

/** A scratch data directory, removed when the test's scope closes. */
const dataDir = Effect.acquireRelease(
  Effect.sync(scratchDir),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** `loom ...` from the sources, as a separate process. */
const loom = (env: Record<string, string>, ...args: Array<string>) =>
  Effect.flatMap(ProcessRunner, (runner) =>
    runner.run(
      new ProcessSpec({
        command: process.execPath,
        args: ["--import", "tsx", "src/main.ts", ...args],
        env: { LOOM_LLM: "simulator", ...env }
      })
    ))

const Runner = NodeProcessRunner.layer({ timeout: Duration.seconds(60) })

describe("the loom CLI", () => {
  it.scoped(
    "lists tools, runs an agent and the coding workflow in this process, with progress or JSON",
    () =>
      Effect.gen(function*() {
        const env = { LOOM_DATA_DIR: yield* dataDir }
        const tools = yield* loom(env, "tools")
        assert.strictEqual(tools.exitCode, 0, tools.stderr)
        assert.match(tools.stdout, /^weather\s+io\s+Current weather/m)
        assert.match(tools.stdout, /^text\.chunk\s+cpu/m)
        const toolsJson = yield* loom(env, "tools", "--json")
        assert.deepInclude(JSON.parse(toolsJson.stdout), {
          name: "code.run_tests",
          kind: "process",
          description: "Runs JavaScript code (an ES module) against node:test tests that import it from ./solution.mjs"
        })

        const agent = yield* loom(env, "run", "agent", "assistant", "use weather {\"city\": \"Oslo\"}")
        assert.strictEqual(agent.exitCode, 0, agent.stderr)
        assert.match(agent.stdout, /calls weather \{"city":"Oslo"\}/)
        assert.match(agent.stdout, /weather succeeded/)
        assert.match(agent.stdout, /answer:\nBased on the tool results/)

        const workflow = yield* loom(env, "run", "workflow", "coding", "Write add(a, b)", "--json")
        assert.strictEqual(workflow.exitCode, 0, workflow.stderr)
        const events = workflow.stdout.trim().split("\n").map((line) => JSON.parse(line) as { _tag: string })
        assert.strictEqual(events[0]?._tag, "NodeStarted")
        assert.strictEqual(events[events.length - 1]?._tag, "WorkflowFinished")
      }).pipe(Effect.provide(Runner)),
    180_000
  )

  it.scoped(
    "bad usage prints the command's help and exits 2; --help exits 0",
    () =>
      Effect.gen(function*() {
        const env = { LOOM_DATA_DIR: yield* dataDir }
        const unknown = yield* loom(env, "frobnicate")
        assert.strictEqual(unknown.exitCode, 2)
        assert.include(unknown.stdout + unknown.stderr, "Invalid subcommand")
        assert.include(unknown.stdout, "$ loom")

        const missing = yield* loom(env, "runs", "show")
        assert.strictEqual(missing.exitCode, 2)
        assert.include(missing.stderr, "Missing argument <id>")
        assert.include(missing.stdout, "$ show")

        const badPort = yield* loom(env, "serve", "--port", "eighty")
        assert.strictEqual(badPort.exitCode, 2)
        assert.include(badPort.stdout, "$ serve")

        const noSuchWorkflow = yield* loom(env, "run", "workflow", "cooking", "soup")
        assert.strictEqual(noSuchWorkflow.exitCode, 2)
        assert.include(noSuchWorkflow.stderr, "unknown workflow \"cooking\"")
        assert.include(noSuchWorkflow.stdout, "$ workflow")

        const help = yield* loom(env, "runs", "follow", "--help")
        assert.strictEqual(help.exitCode, 0)
        assert.include(help.stdout, "Print a run's events")

        // the README's command list is the one `loom --help` prints
        const root = yield* loom(env, "--help")
        assert.strictEqual(root.exitCode, 0)
        const listed = root.stdout.replace(/\x1b\[[0-9;]*m/g, "").split("COMMANDS")[1]!.split("\n")
          .filter((line) => line.startsWith("  - ")).map((line) => line.slice(2).trimEnd())
        const readme = fs.readFileSync(new URL("../../README.md", import.meta.url), "utf8")
        assert.deepStrictEqual(/```text\n([\s\S]*?)```/.exec(readme)![1]!.trimEnd().split("\n"), listed)
      }).pipe(Effect.provide(Runner)),
    120_000
  )

  it.scoped(
    "runs list, show, follow and cancel talk to a running service",
    () =>
      Effect.gen(function*() {
        const { url } = yield* service({ LOOM_DATA_DIR: yield* dataDir, LOOM_SIMULATOR_LATENCY: "1 second" })
        const none = { LOOM_DATA_DIR: "/nonexistent" }
        const started = yield* post(`${url}/v1/runs`, { kind: "workflow", name: "coding", input: "Write add(a, b)" })
        const threadId = (started.body as { threadId: string }).threadId

        const follow = yield* loom(none, "runs", "follow", threadId, "--url", url)
        assert.strictEqual(follow.exitCode, 0, follow.stderr)
        assert.match(follow.stdout, /step 0 {2}intent …/)
        assert.match(follow.stdout, /finished {2}/)

        const list = yield* loom(none, "runs", "list", "--url", url, "--json")
        assert.strictEqual(list.exitCode, 0, list.stderr)
        assert.deepInclude(
          (JSON.parse(list.stdout) as Array<{ threadId: string; status: string }>).map((run) => [
            run.threadId,
            run.status
          ]),
          [threadId, "finished"]
        )
        const show = yield* loom(none, "runs", "show", threadId, "--url", url)
        assert.match(show.stdout, new RegExp(`^${threadId}\\s+coding\\s+finished`, "m"))

        const slow = yield* post(`${url}/v1/runs`, { kind: "workflow", name: "coding", input: "Write sub(a, b)" })
        const slowId = (slow.body as { threadId: string }).threadId
        const cancel = yield* loom(none, "runs", "cancel", slowId, "--url", url, "--json")
        assert.strictEqual(cancel.exitCode, 0, cancel.stderr)
        assert.strictEqual((JSON.parse(cancel.stdout) as { status: string }).status, "cancelled")

        const unknown = yield* loom(none, "runs", "show", "no-such-run", "--url", url)
        assert.strictEqual(unknown.exitCode, 1)
        assert.include(unknown.stderr, "no run no-such-run")
        const unknownFollow = yield* loom(none, "runs", "follow", "no-such-run", "--url", url)
        assert.strictEqual(unknownFollow.exitCode, 1)
        assert.include(unknownFollow.stderr, "no run no-such-run")

        // port 9 (discard): nothing listens there on loopback
        const down = yield* loom(none, "runs", "list", "--url", "http://127.0.0.1:9")
        assert.strictEqual(down.exitCode, 1)
        assert.include(down.stderr, "cannot reach Loom at http://127.0.0.1:9")
      }).pipe(Effect.provide(Runner)),
    180_000
  )
})
