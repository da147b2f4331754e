/**
 * Child of `cluster.throughput`: one Loom runner among several on one Postgres, put
 * together from Loom's library as the service's `Clustered` mode does it (PgClient, the
 * Postgres run store, a socket runner, Loom's engine, a RunManager), offering one run
 * kind: `io-5`, five nodes of 50 ms of waiting each, one after another.
 *
 * Argument: a JSON `Options`. It prints `ready` on stdout once its layers are up; then
 * each line `start <prefix> <count>` on stdin starts `count` runs (thread ids
 * `<prefix>-0`, `<prefix>-1`, ...) through the durable engine (`DurableRun.LoomRun.execute`,
 * discarded: each runs on whichever runner holds its shard), after which it prints
 * `started <prefix>`. It runs until killed (SIGTERM closes its layers).
 */
import { RunnerAddress } from "@effect/cluster/RunnerAddress"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Layer, Logger, Redacted, Schema } from "effect"
import { DurableRun, PgCheckpointStore, RunManager, SocketRunner, Workflow, WorkflowEngine, WorkflowEvents } from "loom"
import * as readline from "node:readline"

export interface Options {
  readonly url: string
  readonly port: number
  /** Runs at once on this runner (`RunManager`'s `maxRuns`). */
  readonly maxRuns: number
}

const options = JSON.parse(process.argv[2] ?? "{}") as Options

/** Nodes in the run kind's graph, each waiting `nodeMs`. */
const nodes = 5
const nodeMs = 50

const Steps = Schema.Struct({ count: Schema.Int })
const io5 = Workflow.make({
  name: "io-5",
  state: Steps,
  start: "n0",
  nodes: Object.fromEntries(
    Array.from(
      { length: nodes },
      (_, i) => [`n${i}`, (s: typeof Steps.Type) => Effect.as(Effect.sleep(nodeMs), { count: s.count + 1 })]
    )
  ),
  edges: Object.fromEntries(Array.from({ length: nodes - 1 }, (_, i) => [`n${i}`, `n${i + 1}`]))
})

/** The run manager over Loom's engine, offering `io-5`. */
const Manager = Layer.unwrapEffect(Effect.gen(function*() {
  const engine = yield* WorkflowEngine.WorkflowEngine
  const kind = RunManager.runKind(engine, yield* Effect.orDie(io5), () => ({ count: 0 }))
  return RunManager.RunManager.layer({ workflows: [kind], maxRuns: options.maxRuns })
}))

/** As main.ts's `Clustered`: the Postgres store and this runner, on one PgClient. */
const Runner = Manager.pipe(
  Layer.provideMerge(WorkflowEngine.WorkflowEngine.layer),
  Layer.provideMerge(
    Layer.merge(
      PgCheckpointStore.layer,
      SocketRunner.layer(new RunnerAddress({ host: "127.0.0.1", port: options.port }))
    )
  ),
  Layer.provide(PgClient.layer({ url: Redacted.make(options.url), applicationName: "loom-bench" }))
)

/** Lines on stdin, one at a time. */
const lines = Effect.sync(() => readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]())

const program = Effect.gen(function*() {
  const graph = yield* Effect.orDie(io5)
  const input = yield* lines
  yield* Effect.sync(() => process.stdout.write("ready\n"))
  while (true) {
    const line = yield* Effect.promise(() => input.next())
    if (line.done === true) return yield* Effect.never
    const [command, prefix, count] = line.value.trim().split(" ")
    if (command !== "start" || prefix === undefined) continue
    yield* Effect.forEach(
      Array.from({ length: Number(count) }, (_, i) => `${prefix}-${i}`),
      (id) =>
        DurableRun.LoomRun.execute(
          { threadId: WorkflowEvents.ThreadId.make(id), kind: graph.name, name: graph.name, input: "" },
          { discard: true }
        ),
      { concurrency: 16, discard: true }
    )
    yield* Effect.sync(() => process.stdout.write(`started ${prefix}\n`))
  }
})

/** stdout carries the protocol: logs go to stderr. */
const Logs = Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))

program.pipe(Effect.provide(Runner.pipe(Layer.provideMerge(Logs))), NodeRuntime.runMain)
