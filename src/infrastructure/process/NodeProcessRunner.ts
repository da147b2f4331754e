/**
 * The ProcessRunner on Node child processes (@effect/platform Command). Each process
 * runs in its own process group with an allow-listed environment; at most
 * `maxProcesses` run at once; output is captured up to a cap per stream (the rest is
 * drained, so a chatty child never blocks on a full pipe); on timeout or interruption
 * the whole group gets SIGKILL, so children of the child die too.
 */
import * as NodeCommandExecutor from "@effect/platform-node/NodeCommandExecutor"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Config, Duration, Effect, Layer, Metric, Option, Stream } from "effect"
import { Timeout } from "../../domain/Errors.js"
import { ProcessFailed, ProcessResult, ProcessRunner } from "../../domain/Process.js"
import type { ProcessSpec } from "../../domain/Process.js"
import * as MetricTags from "../resilience/MetricTags.js"
import * as Timeouts from "../resilience/Timeouts.js"

export interface Options {
  readonly maxProcesses: number
  readonly timeout: Duration.Duration
  readonly maxOutputBytes: number
  /** Parent variables a child may see, read through Effect's Config (the environment, by default). */
  readonly allowEnv: ReadonlyArray<string>
  /** CPU time each process may use unless its spec says otherwise (default: no limit but the deadline). */
  readonly cpuTime?: Duration.Duration | undefined
}

export const defaults: Options = {
  maxProcesses: 4,
  timeout: Timeouts.defaults.process,
  maxOutputBytes: 1024 * 1024,
  allowEnv: ["PATH", "HOME", "LANG", "TMPDIR", "TERM"]
}

export const processes = MetricTags.counter("loom_processes", "Child processes run, by outcome")
export const running = Metric.gauge("loom_processes_running", { description: "Child processes running now" })

/** Folds a byte stream into at most `cap` bytes, draining the rest. */
const capture = <E>(stream: Stream.Stream<Uint8Array, E>, cap: number) =>
  Stream.runFold(stream, { parts: [] as Array<Uint8Array>, size: 0, truncated: false }, (acc, chunk) => {
    if (acc.size >= cap) return { ...acc, truncated: true }
    const room = cap - acc.size
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk
    acc.parts.push(part)
    return { parts: acc.parts, size: acc.size + part.length, truncated: acc.truncated || chunk.length > room }
  }).pipe(Effect.map((acc) => ({ text: Buffer.concat(acc.parts).toString("utf8"), truncated: acc.truncated })))

/**
 * The command to start: under a CPU-time limit, through `sh` setting `ulimit -t` and then
 * exec'ing the command, so the limit is the process's own (and its children inherit it).
 */
const commandOf = (spec: ProcessSpec, cpuTime: Duration.Duration | undefined) =>
  cpuTime === undefined
    ? Command.make(spec.command, ...spec.args)
    : Command.make(
      "/bin/sh",
      "-c",
      "ulimit -t \"$0\" && exec \"$@\"",
      String(Math.max(1, Math.ceil(Duration.toSeconds(cpuTime)))),
      spec.command,
      ...spec.args
    )

export const make = (options: Options) =>
  Effect.gen(function*() {
    const executor = yield* CommandExecutor.CommandExecutor
    const slots = yield* Effect.makeSemaphore(options.maxProcesses)
    const inherited = yield* Effect.forEach(options.allowEnv, (name) =>
      Effect.map(Effect.orDie(Config.option(Config.string(name))), (value) => [name, value] as const))
    const allowed = Object.fromEntries(
      inherited.flatMap(([name, value]) =>
        value._tag === "Some" ? [[name, value.value]] : []
      )
    )
    let active = 0
    const track = (delta: number) =>
      Effect.suspend(() => {
        active += delta
        return Metric.set(running, active)
      })

    const runOnce = (spec: ProcessSpec) =>
      Effect.gen(function*() {
        const started = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        let command = commandOf(spec, spec.cpuTime ?? options.cpuTime).pipe(
          Command.env({ ...allowed, ...spec.env }, { extendEnv: false })
        )
        if (spec.cwd !== undefined) command = Command.workingDirectory(command, spec.cwd)
        if (spec.stdin !== undefined) command = Command.feed(command, spec.stdin)
        const child = yield* executor.start(command).pipe(
          Effect.mapError((error) => new ProcessFailed({ command: spec.command, message: error.message }))
        )
        yield* Effect.acquireRelease(track(1), () => track(-1))
        // Runs before the platform's own finaliser (SIGTERM, then wait): a child that ignores
        // SIGTERM must not hold up a timeout or an interruption.
        yield* Effect.addFinalizer(() =>
          Effect.flatMap(child.isRunning, (alive) => alive ? child.kill("SIGKILL") : Effect.void).pipe(Effect.ignore)
        )
        const cap = spec.maxOutputBytes ?? options.maxOutputBytes
        const [stdout, stderr, exit] = yield* Effect.all([
          capture(child.stdout, cap),
          capture(child.stderr, cap),
          Effect.either(child.exitCode)
        ], { concurrency: "unbounded" }).pipe(
          Effect.mapError((error) => new ProcessFailed({ command: spec.command, message: error.message }))
        )
        const finished = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        const signal = exit._tag === "Left" ? /signal: (\w+)/.exec(exit.left.message)?.[1] : undefined
        return new ProcessResult({
          pid: child.pid,
          exitCode: exit._tag === "Right" ? exit.right : -1,
          ...(signal === undefined ? {} : { signal }),
          stdout: stdout.text,
          stderr: stderr.text,
          truncated: stdout.truncated || stderr.truncated,
          durationMs: finished - started
        }, true)
      }).pipe(Effect.scoped)

    const run = (spec: ProcessSpec) => {
      const timeout = spec.timeout ?? options.timeout
      return slots.withPermits(1)(
        runOnce(spec).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new Timeout({ operation: `process:${spec.command}`, after: timeout })
          })
        )
      ).pipe(
        Effect.tapBoth({
          onFailure: (error) => Metric.increment(Metric.tagged(processes, "outcome", error._tag)),
          onSuccess: (result) =>
            Metric.increment(Metric.tagged(processes, "outcome", result.exitCode === 0 ? "exit_0" : "exit_nonzero"))
        }),
        Effect.withSpan("ProcessRunner.run", { attributes: { "loom.command": spec.command }, captureStackTrace: false })
      )
    }

    return ProcessRunner.of({ run, running: Effect.sync(() => active) })
  })

const NodeCommands = NodeCommandExecutor.layer.pipe(Layer.provide(NodeFileSystem.layer))

export const layer = (options: Partial<Options> = {}) =>
  Layer.effect(ProcessRunner, make({ ...defaults, ...options })).pipe(Layer.provide(NodeCommands))

export const config = Config.all({
  maxProcesses: Config.integer("MAX_PROCESSES").pipe(
    Config.validate({ message: "must be a whole number of 1 or more", validation: (n) => n >= 1 }),
    Config.withDefault(defaults.maxProcesses)
  ),
  timeout: Config.map(Timeouts.config, (table) => table.process),
  cpuTime: Config.option(Config.duration("LOOM_PROCESS_CPU_TIME")).pipe(Config.map(Option.getOrUndefined))
})

export const layerConfig = Layer.effect(
  ProcessRunner,
  Effect.flatMap(config, (read) => make({ ...defaults, ...read }))
).pipe(Layer.provide(NodeCommands))
