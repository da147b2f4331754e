/**
 * The service's start and stop, as an operator reads them: a start-up that cannot go on
 * says which variable or resource and why, in one line, and exits 1 (no stack into
 * Effect's internals, no `ServeError: An error has occurred`); a shutdown says what it
 * cut off, what it drained and how long it took.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { ProcessRunner, ProcessSpec } from "../../src/domain/Process.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import { scratchDir } from "../support/Scratch.js"
import { exited, post, service } from "../support/Service.js"

/** `loom serve` from the sources, as a separate process, until it exits (a start-up that fails does at once). */
const serve = (env: Record<string, string>) =>
  Effect.flatMap(ProcessRunner, (runner) =>
    runner.run(
      new ProcessSpec({
        command: process.execPath,
        args: ["--import", "tsx", "src/main.ts", "serve"],
        env: { LOOM_LLM: "simulator", LOOM_PORT: "0", LOOM_DATA_DIR: scratchDir("loom-start-"), ...env }
      })
    )).pipe(Effect.provide(NodeProcessRunner.layer({ timeout: Duration.seconds(60) })))

/** Exit 1 with one line on stderr that names `setting` and says `why`, and no stack trace. */
const refused = (result: { readonly exitCode: number; readonly stderr: string }, setting: string, why: string) => {
  assert.strictEqual(result.exitCode, 1, result.stderr)
  const lines = result.stderr.split("\n").filter((line) => line.startsWith("loom: "))
  assert.strictEqual(lines.length, 1, result.stderr)
  assert.include(lines[0], setting)
  assert.include(lines[0], why)
  assert.notMatch(result.stderr, /^\s+at /m, "a stack trace")
  assert.notInclude(result.stderr, "An error has occurred")
}

/** A TCP port held by this test while `use` runs. */
const heldPort = Effect.acquireRelease(
  Effect.async<net.Server>((resume) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

describe("start-up errors", () => {
  it.scoped("name the variable or resource and the cause in one line", () =>
    Effect.gen(function*() {
      const dir = scratchDir("loom-bad-")
      const badJson = path.join(dir, "mcp.json")
      fs.writeFileSync(badJson, "{bad")
      const badShape = path.join(dir, "shape.json")
      fs.writeFileSync(badShape, JSON.stringify({ servers: [{ name: "x y", command: "npx" }] }))
      const file = path.join(dir, "a-file")
      fs.writeFileSync(file, "")

      refused(yield* serve({ LOOM_MCP_CONFIG: badJson }), "LOOM_MCP_CONFIG", "JSON")
      refused(yield* serve({ LOOM_MCP_CONFIG: badShape }), "LOOM_MCP_CONFIG", "servers.0")
      refused(yield* serve({ LOOM_MCP_CONFIG: path.join(dir, "missing.json") }), "LOOM_MCP_CONFIG", "ENOENT")
      refused(yield* serve({ LOOM_HOST: "999.1.1.1" }), "LOOM_HOST", "IP address or a host name")
      refused(yield* serve({ LOOM_SHUTDOWN_TIMEOUT: "-1 seconds" }), "LOOM_SHUTDOWN_TIMEOUT", "above zero")
      refused(yield* serve({ LOOM_REQUEST_TIMEOUT: "0 seconds" }), "LOOM_REQUEST_TIMEOUT", "above zero")
      refused(yield* serve({ LOOM_DATA_DIR: file }), "LOOM_DATA_DIR", "not a directory")
      refused(yield* serve({ LOOM_DATA_DIR: path.join(file, "sub") }), "LOOM_DATA_DIR", "not a directory")

      const port = ((yield* heldPort).address() as net.AddressInfo).port
      refused(yield* serve({ LOOM_PORT: String(port) }), `LOOM_PORT=${port}`, "in use by another process")
      refused(yield* serve({ LOOM_HOST: "no-such-host.invalid" }), "LOOM_HOST=no-such-host.invalid", "cannot listen")
    }), 180_000)
})

describe("shutdown", () => {
  it.live("logs the runs it interrupts, the pools it drains and the time it took", () =>
    Effect.gen(function*() {
      const running = yield* service({ LOOM_DATA_DIR: scratchDir(), LOOM_SIMULATOR_LATENCY: "1 minute" })
      const { url } = running
      // a CPU task starts the pool's first thread
      const cpu = yield* post(`${url}/v1/tools/execute`, {
        mode: "batch",
        tool: "text.estimate_tokens",
        inputs: [{ text: "a b c" }]
      })
      assert.strictEqual(cpu.status, 200, JSON.stringify(cpu.body))
      const started = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi", threadId: "cut" })
      assert.strictEqual(started.status, 202)
      running.child.kill("SIGTERM")
      assert.strictEqual(yield* exited(running.child).pipe(Effect.timeout("20 seconds"), Effect.orDie), 0)
      const output = running.output()
      assert.match(output, /INFO .*shutting down \(within 30s\)/)
      assert.match(output, /INFO .*interrupting 1 running run\(s\) \(cut\)/)
      assert.match(output, /INFO .*CPU pool cpu: drained, 1 thread\(s\) stopped/)
      assert.match(output, /INFO .*shut down in \d+ ms/)
      assert.notInclude(output, "ERROR")
    }).pipe(Effect.scoped), 120_000)
})
