import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Layer, TestClock } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { ProcessRunner, ProcessSpec } from "../../../src/domain/Process.js"
import * as NodeProcessRunner from "../../../src/infrastructure/process/NodeProcessRunner.js"
import { eventually } from "../../support/Eventually.js"
import { isAlive } from "../../support/Pids.js"
import { scratchDir } from "../../support/Scratch.js"

const node = (script: string, extra: Partial<ConstructorParameters<typeof ProcessSpec>[0]> = {}) =>
  new ProcessSpec({ command: process.execPath, args: ["-e", script], ...extra })

const env = ConfigProvider.fromMap(new Map([["PATH", process.env.PATH ?? ""], ["LOOM_SECRET", "hunter2"]]))
const runner = (options: Partial<NodeProcessRunner.Options> = {}) =>
  NodeProcessRunner.layer({ timeout: Duration.seconds(10), ...options }).pipe(
    Layer.provide(Layer.setConfigProvider(env))
  )

const run = (spec: ProcessSpec) => Effect.flatMap(ProcessRunner, (r) => r.run(spec))
const scratch = () => scratchDir("loom-proc-")

describe("NodeProcessRunner", () => {
  it.live(
    "a process over its CPU-time limit is ended by the kernel long before the wall deadline",
    () =>
      Effect.gen(function*() {
        // with only the 30 s wall deadline this would be a Timeout; the 1 s CPU limit ends it with SIGXCPU
        const result = yield* run(
          node("while (true) {}", { cpuTime: Duration.seconds(1), timeout: Duration.seconds(30) })
        )
        assert.strictEqual(result.exitCode, -1)
        assert.include(["SIGXCPU", "SIGKILL"], result.signal)
      }).pipe(Effect.provide(runner())),
    20_000
  )

  it.live("the runner's default CPU-time limit reaches a child's own children", () =>
    Effect.gen(function*() {
      const result = yield* run(node(
        "const r = require('node:child_process').spawnSync(process.execPath, ['-e', 'while (true) {}']); console.log(r.signal)"
      ))
      assert.strictEqual(result.exitCode, 0)
      assert.include(["SIGXCPU", "SIGKILL"], result.stdout.trim())
    }).pipe(Effect.provide(runner({ cpuTime: Duration.seconds(1), timeout: Duration.seconds(30) }))), 20_000)

  it.live("returns exit code, output and duration; feeds stdin; passes only allow-listed variables", () =>
    Effect.gen(function*() {
      const result = yield* run(node(
        "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{console.log(s.toUpperCase()+'|'+(process.env.LOOM_SECRET??'none')+'|'+process.env.EXTRA);console.error('warn');process.exit(3)})",
        { stdin: "hello", env: { EXTRA: "given" } }
      ))
      assert.strictEqual(result.exitCode, 3)
      assert.strictEqual(result.stdout.trim(), "HELLO|none|given")
      assert.strictEqual(result.stderr.trim(), "warn")
      assert.isFalse(result.truncated)
      assert.isAbove(result.pid, 0)
    }).pipe(Effect.provide(runner())))

  it.live("an allow-listed variable reaches the child", () =>
    Effect.gen(function*() {
      const result = yield* run(node("console.log(process.env.LOOM_SECRET)"))
      assert.strictEqual(result.stdout.trim(), "hunter2")
    }).pipe(Effect.provide(runner({ allowEnv: ["PATH", "LOOM_SECRET"] }))))

  it.live("output over the cap is truncated and flagged, and the child is not blocked by it", () =>
    Effect.gen(function*() {
      const result = yield* run(node("process.stdout.write('x'.repeat(200000)); console.log('done')", {
        maxOutputBytes: 1000
      }))
      assert.strictEqual(result.exitCode, 0)
      assert.strictEqual(result.stdout.length, 1000)
      assert.isTrue(result.truncated)
    }).pipe(Effect.provide(runner())))

  it.scoped("a process past its timeout is killed (its pid is gone) with a Timeout error", () =>
    Effect.gen(function*() {
      const dir = scratch()
      const pidFile = join(dir, "pid")
      const fiber = yield* Effect.fork(Effect.flip(run(node(
        `require('fs').writeFileSync(${
          JSON.stringify(pidFile)
        }, String(process.pid)); process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)`,
        { timeout: Duration.seconds(2) }
      ))))
      yield* eventually(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").length > 0, "the child to start")
      const pid = Number(readFileSync(pidFile, "utf8"))
      assert.isTrue(isAlive(pid))
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "Timeout")
      yield* eventually(() => !isAlive(pid), "the child to be killed")
    }).pipe(Effect.provide(runner())))

  it.scoped("interrupting a run kills the process and the child it spawned", () =>
    Effect.gen(function*() {
      const dir = scratch()
      const pidFile = join(dir, "pids")
      const fiber = yield* Effect.fork(run(node(
        `const c = require('child_process').spawn('sleep', ['60'], { stdio: 'ignore' });
         require('fs').writeFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + c.pid);
         setInterval(() => {}, 1000)`
      )))
      yield* eventually(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").includes(" "), "both to start")
      const pids = readFileSync(pidFile, "utf8").split(" ").map(Number)
      assert.isTrue(pids.every(isAlive))
      const runner = yield* ProcessRunner
      assert.strictEqual(yield* runner.running, 1)
      yield* Fiber.interrupt(fiber)
      yield* eventually(() => !pids.some(isAlive), "both to be killed")
      assert.strictEqual(yield* runner.running, 0)
    }).pipe(Effect.provide(runner())))

  it.live("a command that cannot start is a ProcessFailed naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(run(new ProcessSpec({ command: "/no/such/loom-command" })))
      assert.strictEqual(error._tag, "ProcessFailed")
      assert.strictEqual(error._tag === "ProcessFailed" && error.command, "/no/such/loom-command")
    }).pipe(Effect.provide(runner())))
})
