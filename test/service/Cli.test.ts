import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Schedule } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { ProcessRunner, ProcessSpec } from "../../src/domain/Process.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import { exited, post, scratchDir, service } from "../support/Service.js"

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

const root = new URL("../..", import.meta.url).pathname
/** tsx's loader and the CLI's entry by absolute path, to run `loom` from another directory. */
const fromAnywhere = [
  "--import",
  path.join(root, "node_modules/tsx/dist/loader.mjs"),
  path.join(root, "src/main.ts")
]

const PATH = process.env["PATH"] ?? ""

const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "")

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

  it.scoped(
    "help, `loom run` alone, the generated code shown plainly, a first question answered, `tools` writes nothing",
    () =>
      Effect.gen(function*() {
        const env = { LOOM_DATA_DIR: yield* dataDir }
        for (const args of [["help"], ["--help"]]) {
          const help = yield* loom(env, ...args)
          assert.strictEqual(help.exitCode, 0, `loom ${args.join(" ")}: ${help.stderr}`)
          assert.include(plain(help.stdout), "COMMANDS")
          assert.notInclude(help.stderr, "ERROR")
          assert.notInclude(help.stdout + help.stderr, "Invalid")
        }
        const helpRun = yield* loom(env, "help", "run")
        assert.strictEqual(helpRun.exitCode, 0, helpRun.stderr)
        assert.include(plain(helpRun.stdout), "$ run")

        // `loom run` alone: what it runs and how, not "unknown command run"
        const run = yield* loom(env, "run")
        assert.strictEqual(run.exitCode, 0, run.stderr)
        assert.match(plain(run.stdout), /- workflow .*<name> <input>/)
        assert.match(plain(run.stdout), /- agent .*<name> <input>/)
        assert.notInclude(run.stdout + run.stderr, "unknown")

        // the result as it is, not a truncated JSON dump of the state
        const workflow = yield* loom(env, "run", "workflow", "coding", "Write add(a, b)")
        assert.strictEqual(workflow.exitCode, 0, workflow.stderr)
        assert.match(workflow.stdout, /^code:\nexport const add = \(a, b\) => a \+ b$/m)
        assert.match(workflow.stdout, /^review:\nAPPROVED/m)
        assert.notMatch(workflow.stdout, /finished {2}\{/)

        // the first question of the README, on the simulator
        const weather = yield* loom(env, "run", "agent", "assistant", "What is the weather in Lisbon?", "--simulator")
        assert.strictEqual(weather.exitCode, 0, weather.stderr)
        assert.match(weather.stdout, /calls weather \{"city":"Lisbon"\}/)
        assert.match(weather.stdout, /weather succeeded \{"city":"Lisbon","celsius":\d+\}/)

        // listing tools opens no database: nothing appears in the directory it runs in
        const cwd = yield* dataDir
        const tools = yield* Effect.flatMap(ProcessRunner, (runner) =>
          runner.run(
            new ProcessSpec({
              command: process.execPath,
              args: [...fromAnywhere, "tools"],
              cwd,
              env: { LOOM_LLM: "simulator" }
            })
          ))
        assert.strictEqual(tools.exitCode, 0, tools.stderr)
        assert.match(tools.stdout, /^weather\s+io/m)
        assert.deepStrictEqual(fs.readdirSync(cwd), [])
      }).pipe(Effect.provide(Runner)),
    180_000
  )

  it.scopedLive(
    "Ctrl-C during `run workflow` says the run's thread id and how to resume and follow it",
    () =>
      Effect.gen(function*() {
        const dir = yield* dataDir
        const child = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(process.execPath, [...fromAnywhere, "run", "workflow", "coding", "Write add(a, b)"], {
              env: {
                PATH,
                LOOM_LLM: "simulator",
                LOOM_DATA_DIR: dir,
                LOOM_SIMULATOR_LATENCY: "2 seconds"
              },
              stdio: ["ignore", "pipe", "pipe"]
            })
          ),
          (child) =>
            Effect.suspend(() => {
              if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
              return exited(child)
            })
        )
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString()
        })
        child.stderr.on("data", (chunk: Buffer) => {
          stderr += chunk.toString()
        })
        yield* Effect.suspend(() => stdout.includes("step 0  intent …") ? Effect.void : Effect.fail("not yet")).pipe(
          Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 600 }),
          Effect.orDie
        )
        process.kill(child.pid!, "SIGINT")
        const code = yield* exited(child).pipe(Effect.timeout("20 seconds"), Effect.orDie)
        assert.strictEqual(code, 0, stderr)
        const found = /loom: interrupted; run ([0-9a-f-]{36}) is kept at its last checkpoint/.exec(stderr)
        assert.isNotNull(found, stderr)
        assert.include(stderr, `loom runs follow ${found![1]}`)
        assert.include(stderr, "loom serve")
      }),
    120_000
  )
})
