/**
 * A Loom cluster for tests, all on loopback: one real Postgres (test/support/Postgres.ts)
 * and N runner processes of the service (`src/main.ts` with `LOOM_DATABASE_URL` and a
 * `LOOM_RUNNER_ADDRESS` each), every runner talking to an Ollama simulator of its own in
 * the test process. Each simulator sits behind a counting front door that records every
 * chat request as it arrives (before the simulator's latency, so a request cut off by a
 * kill is recorded too) with the runner it came from: the ledger says which runner ran
 * which node of which run, and how often.
 *
 * `layer` holds the whole cluster for a test file; its end stops every runner (SIGTERM,
 * then kill -9 of whatever is left of it and of what it started), the simulators and
 * Postgres.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { PgClient } from "@effect/sql-pg"
import { Context, Data, Effect, Layer, Redacted, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { codingScript } from "../../src/infrastructure/ollama/CodingScript.js"
import * as CountingOllama from "./CountingOllama.js"
import { codingNodes } from "./History.js"
import { isAlive } from "./Pids.js"
import * as Postgres from "./Postgres.js"
import { crash as crashTree, descendants, exited, gone, signal } from "./Processes.js"

const PATH = process.env["PATH"] ?? ""
const root = new URL("../..", import.meta.url).pathname
const loader = path.join(root, "node_modules/tsx/dist/loader.mjs")
const main = path.join(root, "src/main.ts")

// ---------------------------------------------------------------------------------------------
// coding runs: which (run, step) a chat request belongs to
// ---------------------------------------------------------------------------------------------

/** The steps that ask the model (the runner runs the tests in a child process and asks nothing). */
export const modelSteps = [0, 1, 2, 3, 5, 7]

/**
 * The run and step a chat is for: the run by its task, the node by its system prompt, and
 * the coder's step by whether the tests failed before (its second round, step 5, carries
 * "The tests are failing"; its first is step 3).
 */
export const stepOf = (body: unknown): { readonly label: string; readonly step: number } | undefined => {
  const { system, user } = CountingOllama.chatParts(body)
  const node = CountingOllama.codingRoles.get(system)
  const label = CountingOllama.labelOf(user)
  if (node === undefined || label === undefined) return undefined
  const step = node === "coder" ? (user.includes("The tests are failing") ? 5 : 3) : codingNodes.indexOf(node)
  return { label, step }
}

// ---------------------------------------------------------------------------------------------
// the ledger of chat requests
// ---------------------------------------------------------------------------------------------

export interface Chat {
  /** The runner whose simulator got it (its index). */
  readonly runner: number
  /** `Date.now()` on arrival. */
  readonly at: number
  readonly label: string
  readonly step: number
}

export interface Ledger {
  readonly record: (runner: number, body: unknown) => void
  /** Every chat so far, in order of arrival. */
  readonly chats: () => ReadonlyArray<Chat>
  /** Chats no run and node could be told for (should stay empty). */
  readonly unplaced: () => ReadonlyArray<string>
}

export const makeLedger = (): Ledger => {
  const chats: Array<Chat> = []
  const unplaced: Array<string> = []
  return {
    record: (runner, body) => {
      const found = stepOf(body)
      if (found === undefined) unplaced.push(JSON.stringify(CountingOllama.chatParts(body)).slice(0, 200))
      else chats.push({ runner, at: Date.now(), ...found })
    },
    chats: () => chats.slice(),
    unplaced: () => unplaced.slice()
  }
}

/** Chats per `label|step`. */
export const countsOf = (chats: ReadonlyArray<Chat>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const chat of chats) {
    counts.set(`${chat.label}|${chat.step}`, (counts.get(`${chat.label}|${chat.step}`) ?? 0) + 1)
  }
  return counts
}

// ---------------------------------------------------------------------------------------------
// the simulators
// ---------------------------------------------------------------------------------------------

/** A simulator on the coding script with a chat latency of `latency` ms, behind a door recording for `runner`. */
const simulator = (ledger: Ledger, runner: number, latency: { readonly min: number; readonly max: number }) =>
  Effect.map(
    CountingOllama.make({
      script: codingScript,
      chat: { latency },
      seed: `loom cluster simulator ${runner}`,
      onChat: (body) => ledger.record(runner, body)
    }),
    (ollama) => ollama.url
  )

// ---------------------------------------------------------------------------------------------
// the runner processes
// ---------------------------------------------------------------------------------------------

export class ClusterFailed extends Data.TaggedError("ClusterFailed")<{ readonly message: string }> {}

/** A server listening on a free loopback port, until `close`. */
const listening = Effect.async<net.Server>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
})

const close = (server: net.Server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))

/** `count` distinct loopback ports nothing listens on now (held together while picked, so they differ). */
export const freePorts = (count: number) =>
  Effect.gen(function*() {
    const servers = yield* Effect.all(Array.from({ length: count }, () => listening))
    const ports = servers.map((server) => (server.address() as net.AddressInfo).port)
    yield* Effect.forEach(servers, close, { discard: true })
    return ports
  })

export interface Runner {
  readonly index: number
  /** `A`, `B`, `C`... */
  readonly name: string
  /** Its HTTP API, `http://127.0.0.1:<port>`. */
  readonly url: string
  /** Its `LOOM_RUNNER_ADDRESS`. */
  readonly address: string
  readonly pid: number
  readonly child: ChildProcess
  /** stdout and stderr so far, interleaved, each line prefixed with the test's wall clock. */
  readonly output: () => string
  /** PIDs it started (test runs of the coding workflow), collected whenever it is looked at. */
  readonly started: Set<number>
  readonly alive: () => boolean
}

/**
 * kill -9 of a runner and of what it started: stopped first (so it starts nothing more),
 * its descendants listed (and kept in `started`), then each killed by PID. Waits until the
 * runner is gone.
 */
export const crash = (runner: Runner) =>
  crashTree(runner, (tree) => {
    for (const pid of tree) runner.started.add(pid)
  }).pipe(Effect.asVoid)

/** SIGTERM, up to 20 s to stop; then, or if that fails, kill -9 of it and its descendants. */
export const stop = (runner: Runner) =>
  Effect.suspend(() => {
    for (const pid of gone(runner.child) ? [] : descendants(runner.pid)) runner.started.add(pid)
    if (gone(runner.child)) return Effect.void
    signal(runner.pid, "SIGTERM")
    return exited(runner.child).pipe(
      Effect.timeout("20 seconds"),
      Effect.catchAll(() => crash(runner))
    )
  }).pipe(
    // what it started and left behind, killed and waited for (up to 5 s)
    Effect.zipRight(Effect.sync(() => {
      for (const pid of runner.started) if (isAlive(pid)) signal(pid, "SIGKILL")
    })),
    Effect.zipRight(
      Effect.sync(() => [...runner.started].some(isAlive)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (alive) => !alive }),
        Effect.timeout("5 seconds"),
        Effect.ignore
      )
    )
  )

const stamp = () => new Date().toISOString().slice(11, 23)

/** Spawns one runner with `env` (on top of PATH) and waits until it listens. */
const spawnRunner = (index: number, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.async<Runner, ClusterFailed>((resume) => {
      const child = spawn(process.execPath, ["--import", loader, main], {
        env: { PATH, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let text = ""
      let pending = ""
      let listening = false
      const name = String.fromCharCode(65 + index)
      const runner: Runner = {
        index,
        name,
        url: "",
        address: env["LOOM_RUNNER_ADDRESS"] ?? "",
        pid: child.pid!,
        child,
        output: () => text + pending,
        started: new Set(),
        alive: () => !gone(child)
      }
      const onData = (chunk: Buffer) => {
        pending += chunk.toString()
        const lines = pending.split("\n")
        pending = lines.pop() ?? ""
        for (const line of lines) text += `[${stamp()} ${name}] ${line}\n`
        const found = /Loom listening on (http:\/\/\S+)/.exec(text)
        if (found && !listening) {
          listening = true
          resume(Effect.succeed({ ...runner, url: found[1]! }))
        }
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      child.on("exit", (code, sig) => {
        if (!listening) {
          resume(
            Effect.fail(
              new ClusterFailed({
                message: `runner ${name} exited (${code ?? sig}) before listening:\n${text}${pending}`
              })
            )
          )
        }
      })
    }).pipe(
      Effect.timeoutFail({
        duration: "90 seconds",
        onTimeout: () =>
          new ClusterFailed({ message: `runner ${String.fromCharCode(65 + index)} did not listen within 90 s` })
      })
    ),
    (runner) => stop(runner)
  )

// ---------------------------------------------------------------------------------------------
// the cluster
// ---------------------------------------------------------------------------------------------

export interface Options {
  readonly runners: number
  /** Each simulator's chat latency, in ms (uniform in [min, max]). */
  readonly latency: { readonly min: number; readonly max: number }
  /** More environment for every runner. */
  readonly env?: Record<string, string>
}

export interface Service {
  readonly postgres: Postgres.Service
  /** A client on the runners' database, to read the tables behind their back. */
  readonly sql: PgClient.PgClient
  readonly runners: ReadonlyArray<Runner>
  readonly ledger: Ledger
  /** Every runner's output so far. */
  readonly output: () => string
}

export class Cluster extends Context.Tag("test/LoomCluster/Cluster")<Cluster, Service>() {}

/**
 * The shard locks each runner holds: @effect/cluster's SQL runner storage takes one
 * Postgres advisory lock per shard on a connection of its own, so the granted advisory
 * locks per backend tell how the shards are spread (other advisory locks, such as the
 * migration's, are brief and few).
 */
const shardLocks = (sql: PgClient.PgClient) =>
  Effect.map(
    sql<{ readonly pid: number; readonly locks: string }>`
      SELECT pid, count(*) AS locks FROM pg_locks WHERE locktype = 'advisory' AND granted GROUP BY pid`,
    (rows) => rows.map((row) => Number(row.locks)).sort((a, b) => b - a)
  )

/** Waits until `runners` backends hold shard locks, the least of them at least 1/(2·runners) of the shards. */
const balanced = (sql: PgClient.PgClient, runners: number) => {
  let last: ReadonlyArray<number> = []
  const spread = (locks: ReadonlyArray<number>) => {
    const total = locks.reduce((a, b) => a + b, 0)
    return locks.length >= runners && locks[runners - 1]! * 2 * runners >= total
  }
  return shardLocks(sql).pipe(
    Effect.orDie,
    Effect.tap((locks) => {
      last = locks
    }),
    Effect.repeat({ schedule: Schedule.spaced("250 millis"), until: spread }),
    Effect.timeoutFail({
      duration: "60 seconds",
      onTimeout: () =>
        new ClusterFailed({ message: `shards not spread over ${runners} runners within 60 s: ${last.join(", ")}` })
    }),
    Effect.map(() => last)
  )
}

export const make = (options: Options) =>
  Effect.gen(function*() {
    const postgres = yield* Postgres.start
    const sql = yield* PgClient.make({ url: Redacted.make(postgres.url) }).pipe(
      Effect.provide(Reactivity.layer),
      Effect.orDie
    )
    const ledger = makeLedger()
    const ports = yield* freePorts(options.runners)
    const dirs = yield* Effect.acquireRelease(
      Effect.sync(() => ports.map(() => fs.mkdtempSync(path.join(os.tmpdir(), "loom-cluster-")))),
      (dirs) => Effect.sync(() => dirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })))
    )
    const simulators = yield* Effect.forEach(ports, (_, i) => Effect.orDie(simulator(ledger, i, options.latency)))
    const runners = yield* Effect.forEach(ports, (port, i) =>
      spawnRunner(i, {
        LOOM_DATABASE_URL: postgres.url,
        LOOM_RUNNER_ADDRESS: `127.0.0.1:${port}`,
        LOOM_PORT: "0",
        LOOM_DATA_DIR: dirs[i]!,
        // the scratch files of test runs a kill cuts off stay in the data dir, removed with it
        TMPDIR: dirs[i]!,
        LOOM_LLM: "ollama",
        OLLAMA_HOSTS: simulators[i]!,
        LOOM_SHUTDOWN_TIMEOUT: "5 seconds",
        ...options.env
      }), { concurrency: "unbounded" })
    const locks = yield* balanced(sql, options.runners)
    yield* Effect.logInfo(
      `cluster up: runners ${runners.map((r) => `${r.name}=${r.address}`).join(" ")}, shard locks ${locks.join("/")}`
    )
    return Cluster.of({
      postgres,
      sql,
      runners,
      ledger,
      output: () => runners.map((runner) => runner.output()).join("")
    })
  })

export const layer = (options: Options): Layer.Layer<Cluster, ClusterFailed | Postgres.PostgresError> =>
  Layer.scoped(Cluster, make(options))
