/**
 * The shared CheckpointStore: runs kept in Postgres (via @effect/sql-pg), so several Loom
 * processes can work on one database. Same contract and shape as the SQLite store: one
 * transaction per save, a run's row keeps its last event number, stored JSON that no
 * longer decodes is a typed `CheckpointCorrupt`, database errors a caller cannot act on
 * are defects.
 *
 * What changes with several writers: every write transaction starts by updating (or
 * locking) the run's row, so two processes saving to one run take turns on that row lock
 * and each reads the `last_seq` the other committed (no gap, no duplicate event number),
 * and `setStatus` checks `canMove` against a status nobody can change under it. Processes
 * starting together on a fresh database migrate one at a time, under an advisory lock.
 *
 * Tables are prefixed `loom_` (migrations in `loom_migrations`) so they sit beside
 * @effect/cluster's `cluster_*` tables in the same database.
 */
import { PgClient } from "@effect/sql-pg"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Effect, Exit, Layer, Option, Redacted, Schema } from "effect"
import { canMove, Checkpoint, CheckpointStore, PendingWrite } from "../../domain/CheckpointStore.js"
import type { Placement, StoredEvent } from "../../domain/CheckpointStore.js"
import { Usage } from "../../domain/Usage.js"
import {
  CheckpointCorrupt,
  isOver,
  RunExists,
  RunNotFound,
  RunRecord,
  RunStatus,
  ThreadId,
  WorkflowEvent
} from "../../domain/Workflow.js"
import * as PgAdvisoryLock from "./PgAdvisoryLock.js"

/** Schema migrations, in order. Add new ones; never edit a shipped one. */
export const migrations = Migrator.fromRecord({
  // ids compare as bytes (`COLLATE "C"`), so runs and writes list in the order the in-memory store gives
  "0001_checkpoint_store": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE loom_runs (
      thread_id TEXT COLLATE "C" PRIMARY KEY,
      workflow TEXT NOT NULL,
      status TEXT NOT NULL,
      step INTEGER NOT NULL,
      error TEXT,
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      calls BIGINT NOT NULL DEFAULT 0,
      prompt_tokens BIGINT NOT NULL DEFAULT 0,
      completion_tokens BIGINT NOT NULL DEFAULT 0,
      total_ms DOUBLE PRECISION,
      prompt_ms DOUBLE PRECISION,
      completion_ms DOUBLE PRECISION,
      cost_usd DOUBLE PRECISION,
      last_seq BIGINT NOT NULL DEFAULT 0
    )`
    // JSON as TEXT, as SQLite keeps it: read back byte for byte, and JSONB would refuse a "\u0000"
    yield* sql`CREATE TABLE loom_checkpoints (
      thread_id TEXT COLLATE "C" NOT NULL REFERENCES loom_runs(thread_id),
      step INTEGER NOT NULL,
      state TEXT NOT NULL,
      next TEXT NOT NULL,
      PRIMARY KEY (thread_id, step)
    )`
    yield* sql`CREATE TABLE loom_writes (
      thread_id TEXT COLLATE "C" NOT NULL REFERENCES loom_runs(thread_id),
      step INTEGER NOT NULL,
      node TEXT COLLATE "C" NOT NULL,
      update_json TEXT NOT NULL,
      PRIMARY KEY (thread_id, step, node)
    )`
    yield* sql`CREATE TABLE loom_events (
      thread_id TEXT COLLATE "C" NOT NULL REFERENCES loom_runs(thread_id),
      seq BIGINT NOT NULL,
      event TEXT NOT NULL,
      PRIMARY KEY (thread_id, seq)
    )`
  }),
  // a run's thread and turn there, and the later run that stopped it; each run so far is the first of its own thread.
  // `thread` stays nullable, as in SQLite: a process of the previous version, sharing the database during an upgrade,
  // still inserts runs without one, and NULL reads as the run's own id
  "0002_run_threads": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE loom_runs ADD COLUMN thread TEXT COLLATE "C"`
    yield* sql`ALTER TABLE loom_runs ADD COLUMN turn INTEGER NOT NULL DEFAULT 1`
    yield* sql`ALTER TABLE loom_runs ADD COLUMN superseded_by TEXT COLLATE "C"`
    yield* sql`UPDATE loom_runs SET thread = thread_id`
    yield* sql`CREATE UNIQUE INDEX loom_runs_thread_turn ON loom_runs (thread, turn)`
  })
})

/** The migrator's own table, apart from other @effect/sql users' `effect_sql_migrations`. */
const migrationsTable = "loom_migrations"

/** The advisory lock key processes take turns on to migrate ("loom" in ASCII). */
const migrationLock = 0x6c6f6f6d

/**
 * Runs the migrations holding an advisory lock. The Migrator serialises its own runs with
 * a table lock, but first creates that table unguarded.
 */
const migrate = Migrator.make({})({ loader: migrations, table: migrationsTable }).pipe(
  PgAdvisoryLock.withLock(migrationLock)
)

/** An `int8` column: `pg` gives it as text (it may not fit a double) unless the client was told to parse it. */
const Int8 = Schema.Union(Schema.Int, Schema.compose(Schema.NumberFromString, Schema.Int))
const Count = Int8.pipe(Schema.nonNegative())
const Amount = Schema.NullOr(Schema.NonNegative)

const RunRow = Schema.Struct({
  thread_id: ThreadId,
  thread: Schema.NullOr(ThreadId),
  turn: Schema.Int.pipe(Schema.positive()),
  superseded_by: Schema.NullOr(ThreadId),
  workflow: Schema.String,
  status: RunStatus,
  step: Schema.NonNegativeInt,
  error: Schema.NullOr(Schema.String),
  created_at: Int8,
  updated_at: Int8,
  calls: Count,
  prompt_tokens: Count,
  completion_tokens: Count,
  total_ms: Amount,
  prompt_ms: Amount,
  completion_ms: Amount,
  cost_usd: Amount
})

const CheckpointRow = Schema.Struct({
  step: Schema.NonNegativeInt,
  state: Schema.parseJson(),
  next: Schema.parseJson(Schema.Array(Schema.String))
})

const WriteRow = Schema.Struct({
  step: Schema.NonNegativeInt,
  node: Schema.String,
  update_json: Schema.parseJson()
})

const EventRow = Schema.Struct({ seq: Count, event: Schema.parseJson(WorkflowEvent) })

const decodeRuns = Schema.decodeUnknown(Schema.Array(RunRow))
const decodeCheckpoints = Schema.decodeUnknown(Schema.Array(CheckpointRow))
const decodeWrites = Schema.decodeUnknown(Schema.Array(WriteRow))
const decodeEvents = Schema.decodeUnknown(Schema.Array(EventRow))
const decodeMove = Schema.decodeUnknown(
  Schema.Array(Schema.Struct({ status: RunStatus, superseded_by: Schema.NullOr(Schema.String) }))
)
const decodeLastSeq = Schema.decodeUnknown(Schema.Array(Schema.Struct({ last_seq: Count })))
const encodeEvent = Schema.encodeSync(Schema.parseJson(WorkflowEvent))

const runColumns =
  "thread_id, thread, turn, superseded_by, workflow, status, step, error, created_at, updated_at, calls, prompt_tokens, completion_tokens, " +
  "total_ms, prompt_ms, completion_ms, cost_usd"

const corrupt = (threadId: string) => (error: { readonly message: string }) =>
  new CheckpointCorrupt({ threadId, message: error.message })

const toRecord = (row: typeof RunRow.Type) =>
  new RunRecord({
    threadId: row.thread_id,
    thread: row.thread ?? row.thread_id,
    turn: row.turn,
    ...(row.superseded_by === null ? {} : { supersededBy: row.superseded_by }),
    workflow: row.workflow,
    status: row.status,
    step: row.step,
    ...(row.error === null ? {} : { error: row.error }),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    usage: new Usage({
      calls: row.calls,
      prompt: row.prompt_tokens,
      completion: row.completion_tokens,
      ...(row.total_ms === null ? {} : { totalMillis: row.total_ms }),
      ...(row.prompt_ms === null ? {} : { promptMillis: row.prompt_ms }),
      ...(row.completion_ms === null ? {} : { completionMillis: row.completion_ms }),
      ...(row.cost_usd === null ? {} : { costUsd: row.cost_usd })
    })
  })

/** Runs one statement (`$1`, `$2`, ... placeholders) on a reserved connection: its rows, still to decode. */
type Statement = (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<unknown>, SqlError>

/**
 * Runs `body` on a connection reserved for its length. Statements go to that connection
 * itself, not through the `sql` template, which would join any @effect/sql transaction
 * the caller happens to be in (of this client or another one).
 */
const session = (sql: SqlClient.SqlClient) => <A, E>(body: (run: Statement) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.flatMap(sql.reserve, (connection) => body((text, params) => connection.execute(text, params, undefined)))
  ).pipe(
    // Never cut off mid-statement: @effect/sql-pg answers an interrupted query with pg_cancel_backend and hands the
    // connection back while the query may still run, so the cancel can land on the next user of that connection
    // (the cluster's storage shares the pool), which stalled runs for good under load. Each call is a few statements.
    Effect.uninterruptible
  )

/** Runs `body` as one transaction opened by `begin`: committed if it succeeds, rolled back otherwise. */
const transaction =
  (sql: SqlClient.SqlClient, begin = "BEGIN") => <A, E>(body: (run: Statement) => Effect.Effect<A, E>) =>
    session(sql)((run) =>
      Effect.zipRight(
        run(begin, []),
        Effect.onExit(body(run), (exit) => Effect.orDie(run(Exit.isSuccess(exit) ? "COMMIT" : "ROLLBACK", [])))
      )
    )

/** The statement inserting `count` events, its text made once per count. */
const insertEvents = (() => {
  const texts: Array<string> = []
  return (count: number) =>
    texts[count] ??= `INSERT INTO loom_events (thread_id, seq, event) VALUES ${
      Array.from({ length: count }, (_, i) => `($${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`).join(", ")
    }`
})()

/** Inserts `events` numbered from `first`. */
const appendEvents = (run: Statement, threadId: string, first: number, events: ReadonlyArray<WorkflowEvent>) =>
  events.length === 0 ?
    Effect.void :
    run(insertEvents(events.length), events.flatMap((event, i) => [threadId, first + i, encodeEvent(event)]))

/** Writes a checkpoint (a step saved again, after a resume, replaces the old one). */
const upsertCheckpoint = (run: Statement, threadId: string, checkpoint: Checkpoint) =>
  run(
    `INSERT INTO loom_checkpoints (thread_id, step, state, next) VALUES ($1, $2, $3, $4)
    ON CONFLICT (thread_id, step) DO UPDATE SET state = EXCLUDED.state, next = EXCLUDED.next`,
    [threadId, checkpoint.step, JSON.stringify(checkpoint.state), JSON.stringify(checkpoint.next)]
  )

/**
 * Bumps the run's `updated_at` and `last_seq` (with `set`, more `, column = $4, ...`
 * assignments taking `params` from `$4` on) and appends `events` after the run's last
 * one. The UPDATE holds the row's lock until commit: a second process appending to the
 * run waits for it, then reads the `last_seq` this one left. A missing run is left
 * missing, events and all; tells whether the run is there.
 */
const touch = (
  run: Statement,
  threadId: string,
  events: ReadonlyArray<WorkflowEvent>,
  set = "",
  params: ReadonlyArray<unknown> = []
) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const [row] = yield* run(
      `UPDATE loom_runs SET updated_at = $2, last_seq = last_seq + $3${set} WHERE thread_id = $1 RETURNING last_seq`,
      [threadId, now, events.length, ...params]
    ).pipe(Effect.flatMap(decodeLastSeq))
    if (row === undefined) return false
    yield* appendEvents(run, threadId, row.last_seq - events.length + 1, events)
    return true
  })

/** Adds to an amount that may be absent: absent on both sides stays absent (as `Usage.add` sums). */
const plus = (column: string, placeholder: string) =>
  `, ${column} = COALESCE(${column} + ${placeholder}, ${column}, ${placeholder})`

/** `touch`'s assignments adding `usage` to the run's sums, in the row, so no process reads them first. */
const addUsageSet =
  ", calls = calls + $4, prompt_tokens = prompt_tokens + $5, completion_tokens = completion_tokens + $6" +
  plus("total_ms", "$7") + plus("prompt_ms", "$8") + plus("completion_ms", "$9") + plus("cost_usd", "$10")

const usageParams = (usage: Usage) => [
  usage.calls,
  usage.prompt,
  usage.completion,
  usage.totalMillis ?? null,
  usage.promptMillis ?? null,
  usage.completionMillis ?? null,
  usage.costUsd ?? null
]

/**
 * The store over the `SqlClient` in context (a PgClient), once its tables are migrated.
 * Fails if the database cannot be reached or migrated.
 */
export const make: Effect.Effect<CheckpointStore["Type"], SqlError | Migrator.MigrationError, SqlClient.SqlClient> =
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* migrate

    const read = session(sql)
    const write = transaction(sql)
    // one snapshot for the run, its checkpoint and that step's writes, whatever other processes commit meanwhile
    const snapshot = transaction(sql, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    /** The run's record; `lock` (` FOR UPDATE`) holds its row until the transaction ends. */
    const findRun = (run: Statement, threadId: ThreadId, lock = "") =>
      run(`SELECT ${runColumns} FROM loom_runs WHERE thread_id = $1${lock}`, [threadId]).pipe(
        Effect.flatMap((rows) => Effect.mapError(decodeRuns(rows), corrupt(threadId))),
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toRecord))
      )

    const create = Effect.fn("PgCheckpointStore.create")(
      function*(
        threadId: ThreadId,
        workflow: string,
        checkpoint: Checkpoint,
        events: ReadonlyArray<WorkflowEvent>,
        placement?: Placement
      ) {
        const now = yield* Clock.currentTimeMillis
        return yield* write((run) =>
          Effect.gen(function*() {
            // waits for a concurrent create of the same id, or of the same place in the thread (no conflict target:
            // the primary key and the (thread, turn) index both count), to commit, then inserts nothing
            const inserted = yield* run(
              `INSERT INTO loom_runs
              (thread_id, thread, turn, workflow, status, step, error, created_at, updated_at, last_seq)
              VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7, $8) ON CONFLICT DO NOTHING RETURNING thread_id`,
              [
                threadId,
                placement?.thread ?? threadId,
                placement?.turn ?? 1,
                workflow,
                placement?.status ?? "running",
                checkpoint.step,
                now,
                events.length
              ]
            )
            if (inserted.length === 0) return yield* new RunExists({ threadId })
            yield* upsertCheckpoint(run, threadId, checkpoint)
            yield* appendEvents(run, threadId, 1, events)
          })
        )
      },
      Effect.catchTag("SqlError", Effect.die)
    )

    const saveWrite = Effect.fn("PgCheckpointStore.saveWrite")(
      (threadId: ThreadId, pending: PendingWrite, events: ReadonlyArray<WorkflowEvent>) =>
        write((run) =>
          Effect.gen(function*() {
            if (!(yield* touch(run, threadId, events))) return
            yield* run(
              `INSERT INTO loom_writes (thread_id, step, node, update_json) VALUES ($1, $2, $3, $4)
              ON CONFLICT (thread_id, step, node) DO UPDATE SET update_json = EXCLUDED.update_json`,
              [threadId, pending.step, pending.node, JSON.stringify(pending.update)]
            )
          })
        ),
      Effect.orDie
    )

    const saveCheckpoint = Effect.fn("PgCheckpointStore.saveCheckpoint")(
      (threadId: ThreadId, checkpoint: Checkpoint, events: ReadonlyArray<WorkflowEvent>) =>
        write((run) =>
          Effect.gen(function*() {
            if (!(yield* touch(run, threadId, events, ", step = $4", [checkpoint.step]))) return
            yield* upsertCheckpoint(run, threadId, checkpoint)
            yield* run("DELETE FROM loom_writes WHERE thread_id = $1 AND step < $2", [threadId, checkpoint.step])
          })
        ),
      Effect.orDie
    )

    const setStatus = Effect.fn("PgCheckpointStore.setStatus")(
      (threadId: ThreadId, status: RunStatus, events: ReadonlyArray<WorkflowEvent>, error?: string) =>
        write((run) =>
          Effect.gen(function*() {
            // locked, so the status checked is the one the move replaces, and no supersede lands in between
            const [row] = yield* run(
              "SELECT status, superseded_by FROM loom_runs WHERE thread_id = $1 FOR UPDATE",
              [threadId]
            ).pipe(Effect.flatMap(decodeMove))
            if (row === undefined || row.superseded_by !== null || !canMove(row.status, status)) return false
            return yield* touch(run, threadId, events, ", status = $4, error = $5", [status, error ?? null])
          })
        ),
      Effect.orDie
    )

    const supersede = Effect.fn("PgCheckpointStore.supersede")(
      (threadId: ThreadId, by: ThreadId, status: "interrupted" | "cancelled", events: ReadonlyArray<WorkflowEvent>) =>
        write((run) =>
          Effect.gen(function*() {
            // locked and read whole, so whether the run is over is `isOver`'s to say, of the row this moves
            const found = yield* findRun(run, threadId, " FOR UPDATE")
            if (Option.isNone(found) || isOver(found.value)) return false
            return yield* touch(run, threadId, events, ", status = $4, error = NULL, superseded_by = $5", [status, by])
          })
        ),
      Effect.orDie
    )

    const clear = Effect.fn("PgCheckpointStore.clear")(
      (threadId: ThreadId) =>
        write((run) =>
          Effect.gen(function*() {
            // the row first: a save to the run waits for the rollback, and none lands between its deletes.
            // `last_seq` stays, so events appended after it never reuse a number a reader has seen
            if (!(yield* touch(run, threadId, []))) return
            yield* run("DELETE FROM loom_checkpoints WHERE thread_id = $1", [threadId])
            yield* run("DELETE FROM loom_writes WHERE thread_id = $1", [threadId])
            yield* run("DELETE FROM loom_events WHERE thread_id = $1", [threadId])
          })
        ),
      Effect.orDie
    )

    const threadRuns = Effect.fn("PgCheckpointStore.threadRuns")(
      (thread: ThreadId) =>
        read((run) =>
          // a NULL thread (a run inserted by a process of the previous version) is the run's own
          run(
            `SELECT ${runColumns} FROM loom_runs
            WHERE thread = $1 OR (thread IS NULL AND thread_id = $1) ORDER BY turn, thread_id`,
            [thread]
          ).pipe(Effect.flatMap(decodeRuns), Effect.map((rows) => rows.map(toRecord)))
        ),
      Effect.orDie
    )

    const addUsage = Effect.fn("PgCheckpointStore.addUsage")(
      (threadId: ThreadId, usage: Usage) =>
        write((run) => Effect.asVoid(touch(run, threadId, [], addUsageSet, usageParams(usage)))),
      Effect.orDie
    )

    const load = Effect.fn("PgCheckpointStore.load")(
      (threadId: ThreadId) =>
        snapshot((run) =>
          Effect.gen(function*() {
            const found = yield* findRun(run, threadId)
            if (Option.isNone(found)) return Option.none()
            const [saved] = yield* run(
              "SELECT step, state, next FROM loom_checkpoints WHERE thread_id = $1 ORDER BY step DESC LIMIT 1",
              [threadId]
            ).pipe(Effect.flatMap((rows) => Effect.mapError(decodeCheckpoints(rows), corrupt(threadId))))
            if (saved === undefined) {
              return yield* new CheckpointCorrupt({ threadId, message: "the run has no checkpoint" })
            }
            const writes = yield* run(
              "SELECT step, node, update_json FROM loom_writes WHERE thread_id = $1 AND step = $2 ORDER BY node",
              [threadId, saved.step]
            ).pipe(Effect.flatMap((rows) => Effect.mapError(decodeWrites(rows), corrupt(threadId))))
            return Option.some({
              run: found.value,
              checkpoint: new Checkpoint(saved),
              writes: writes.map((w) => new PendingWrite({ step: w.step, node: w.node, update: w.update_json }))
            })
          })
        ),
      Effect.catchTag("SqlError", Effect.die)
    )

    const getRecord = (run: Statement, threadId: ThreadId) =>
      findRun(run, threadId).pipe(
        Effect.catchTag("CheckpointCorrupt", Effect.die),
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new RunNotFound({ threadId })),
          onSome: Effect.succeed
        }))
      )

    const getRun = Effect.fn("PgCheckpointStore.getRun")(
      (threadId: ThreadId) => read((run) => getRecord(run, threadId)),
      Effect.catchTag("SqlError", Effect.die)
    )

    const listRuns = read((run) =>
      run(`SELECT ${runColumns} FROM loom_runs ORDER BY created_at, thread_id`, []).pipe(
        Effect.flatMap(decodeRuns),
        Effect.map((rows) => rows.map(toRecord))
      )
    ).pipe(Effect.orDie, Effect.withSpan("PgCheckpointStore.listRuns"))

    const events = Effect.fn("PgCheckpointStore.events")(
      (threadId: ThreadId, afterSeq: number = 0) =>
        read((run) =>
          Effect.gen(function*() {
            yield* getRecord(run, threadId)
            const rows = yield* run(
              "SELECT seq, event FROM loom_events WHERE thread_id = $1 AND seq > $2 ORDER BY seq",
              [threadId, afterSeq]
            ).pipe(Effect.flatMap((rows) => Effect.mapError(decodeEvents(rows), corrupt(threadId))))
            return rows.map((row): StoredEvent => ({ seq: row.seq, event: row.event }))
          })
        ),
      Effect.catchTag("SqlError", Effect.die)
    )

    return CheckpointStore.of({
      create,
      saveWrite,
      saveCheckpoint,
      setStatus,
      supersede,
      clear,
      threadRuns,
      addUsage,
      load,
      getRun,
      listRuns,
      events
    })
  })

/** The store over the PgClient (or other Postgres `SqlClient`) in context. */
export const layer: Layer.Layer<CheckpointStore, SqlError | Migrator.MigrationError, SqlClient.SqlClient> = Layer
  .effect(CheckpointStore, make)

/** The store on its own PgClient pool, connected to `url` (`postgres://user:password@host:port/database`). */
export const layerUrl = (
  url: Redacted.Redacted<string> | string
): Layer.Layer<CheckpointStore, SqlError | Migrator.MigrationError> =>
  layer.pipe(
    Layer.provide(PgClient.layer({
      url: Redacted.isRedacted(url) ? url : Redacted.make(url),
      applicationName: "loom"
    }))
  )
