/**
 * The embedded CheckpointStore: one SQLite file (via @effect/sql-sqlite-node), its
 * tables created and upgraded by @effect/sql's Migrator. Every save is one transaction;
 * stored JSON that no longer decodes is a typed `CheckpointCorrupt`, not a crash.
 * Database errors a caller cannot act on are defects.
 *
 * Kept cheap per step: the client opens the file in WAL mode and caches its prepared
 * statements; the store adds `synchronous = NORMAL` (a commit reaches the WAL without an
 * fsync, so a killed process loses nothing, only a power cut may lose the last commits)
 * and a busy timeout, as the CLI may open the file beside the service. A run's row keeps
 * its last event number, bumped by the save's `UPDATE ... RETURNING`, so appending events
 * reads nothing first.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Config, Effect, Exit, Layer, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { canMove, Checkpoint, CheckpointStore, PendingWrite } from "../../domain/CheckpointStore.js"
import type { StoredEvent } from "../../domain/CheckpointStore.js"
import { add, Usage } from "../../domain/Usage.js"
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

/** Schema migrations, in order. Add new ones; never edit a shipped one. */
export const migrations = Migrator.fromRecord({
  "0001_workflow_runs": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE runs (
      thread_id TEXT PRIMARY KEY NOT NULL,
      workflow TEXT NOT NULL,
      status TEXT NOT NULL,
      step INTEGER NOT NULL,
      error TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    )`
    yield* sql`CREATE TABLE checkpoints (
      thread_id TEXT NOT NULL REFERENCES runs(thread_id),
      step INTEGER NOT NULL,
      state TEXT NOT NULL,
      next TEXT NOT NULL,
      PRIMARY KEY (thread_id, step)
    )`
    yield* sql`CREATE TABLE writes (
      thread_id TEXT NOT NULL REFERENCES runs(thread_id),
      step INTEGER NOT NULL,
      node TEXT NOT NULL,
      update_json TEXT NOT NULL,
      PRIMARY KEY (thread_id, step, node)
    )`
    yield* sql`CREATE TABLE events (
      thread_id TEXT NOT NULL REFERENCES runs(thread_id),
      seq INTEGER NOT NULL,
      event TEXT NOT NULL,
      PRIMARY KEY (thread_id, seq)
    )`
  }),
  // columns, not JSON, so spend can be summed across runs in SQL; NULL amounts were not reported
  "0002_run_usage": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE runs ADD COLUMN calls INTEGER NOT NULL DEFAULT 0`
    yield* sql`ALTER TABLE runs ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0`
    yield* sql`ALTER TABLE runs ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0`
    yield* sql`ALTER TABLE runs ADD COLUMN total_ms REAL`
    yield* sql`ALTER TABLE runs ADD COLUMN prompt_ms REAL`
    yield* sql`ALTER TABLE runs ADD COLUMN completion_ms REAL`
    yield* sql`ALTER TABLE runs ADD COLUMN cost_usd REAL`
  }),
  // the run's last event number, so an append need not read MAX(seq) first
  "0003_run_last_seq": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE runs ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0`
    yield* sql`UPDATE runs SET last_seq = COALESCE(
      (SELECT MAX(seq) FROM events WHERE events.thread_id = runs.thread_id), 0
    )`
  }),
  // a run's thread and turn there, and the later run that stopped it; each run so far is the first of its own thread.
  // `thread` stays nullable (SQLite adds no column whose default is another column): NULL reads as the run's own id
  "0004_run_threads": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE runs ADD COLUMN thread TEXT`
    yield* sql`ALTER TABLE runs ADD COLUMN turn INTEGER NOT NULL DEFAULT 1`
    yield* sql`ALTER TABLE runs ADD COLUMN superseded_by TEXT`
    yield* sql`UPDATE runs SET thread = thread_id`
    yield* sql`CREATE UNIQUE INDEX runs_thread_turn ON runs (thread, turn)`
  })
})

/** How long a statement waits for another connection's write lock before it fails. */
const busyTimeoutMillis = 5000

interface RunRow {
  readonly thread_id: string
  readonly thread: string | null
  readonly turn: number
  readonly superseded_by: string | null
  readonly workflow: string
  readonly status: string
  readonly step: number
  readonly error: string | null
  readonly created_at: number
  readonly updated_at: number
  readonly calls: number
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_ms: number | null
  readonly prompt_ms: number | null
  readonly completion_ms: number | null
  readonly cost_usd: number | null
}

/** A run's usage as its row's columns. */
const usageColumns = (usage: Usage) => ({
  calls: usage.calls,
  prompt_tokens: usage.prompt,
  completion_tokens: usage.completion,
  total_ms: usage.totalMillis ?? null,
  prompt_ms: usage.promptMillis ?? null,
  completion_ms: usage.completionMillis ?? null,
  cost_usd: usage.costUsd ?? null
})

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
  created_at: Schema.Number,
  updated_at: Schema.Number,
  calls: Schema.NonNegativeInt,
  prompt_tokens: Schema.NonNegativeInt,
  completion_tokens: Schema.NonNegativeInt,
  total_ms: Amount,
  prompt_ms: Amount,
  completion_ms: Amount,
  cost_usd: Amount
})

const usageOf = (row: typeof RunRow.Type) =>
  new Usage({
    calls: row.calls,
    prompt: row.prompt_tokens,
    completion: row.completion_tokens,
    ...(row.total_ms === null ? {} : { totalMillis: row.total_ms }),
    ...(row.prompt_ms === null ? {} : { promptMillis: row.prompt_ms }),
    ...(row.completion_ms === null ? {} : { completionMillis: row.completion_ms }),
    ...(row.cost_usd === null ? {} : { costUsd: row.cost_usd })
  })

const Json = Schema.parseJson()
const EventJson = Schema.parseJson(WorkflowEvent)
const encodeEvent = Schema.encodeSync(EventJson)

const corrupt = (threadId: string) => (error: { readonly message: string }) =>
  new CheckpointCorrupt({ threadId, message: error.message })

const toRecord = (threadId: string, row: RunRow) =>
  Schema.decodeUnknown(RunRow)(row).pipe(
    Effect.map((r) =>
      new RunRecord({
        threadId: r.thread_id,
        thread: r.thread ?? r.thread_id,
        turn: r.turn,
        ...(r.superseded_by === null ? {} : { supersededBy: r.superseded_by }),
        workflow: r.workflow,
        status: r.status,
        step: r.step,
        ...(r.error === null ? {} : { error: r.error }),
        createdAt: r.created_at,
        updatedAt: r.updated_at,
        usage: usageOf(r)
      })
    ),
    Effect.mapError(corrupt(threadId))
  )

/** Runs one statement on a write transaction's connection: its rows, typed by the caller. */
type Statement = <Row extends object = object>(
  text: string,
  params: ReadonlyArray<unknown>
) => Effect.Effect<ReadonlyArray<Row>, SqlError>

/**
 * Runs `body` as one `BEGIN IMMEDIATE` transaction on the client's connection, reserved for
 * its length. The write lock is taken up front, so a second process waits out the busy
 * timeout rather than failing to upgrade a read lock. Statements are fixed SQL text run
 * on the connection itself: the client prepares each once and caches it, and a save pays
 * no per-statement span, compile or scope, as the `sql` template would.
 */
const writing = (sql: SqlClient.SqlClient) => <A, E>(body: (run: Statement) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(sql.reserve, (connection) => {
    const run: Statement = (text, params) => connection.execute(text, params, undefined)
    return Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        run("BEGIN IMMEDIATE", []),
        Effect.onExit(restore(body(run)), (exit) => Effect.orDie(run(Exit.isSuccess(exit) ? "COMMIT" : "ROLLBACK", [])))
      )
    )
  }))

/** The statement inserting `count` events, its text made once per count. */
const insertEvents = (() => {
  const texts: Array<string> = []
  return (count: number) =>
    texts[count] ??= `INSERT INTO events (thread_id, seq, event) VALUES ${
      Array.from({ length: count }, () => "(?, ?, ?)").join(", ")
    }`
})()

/** Inserts `events` numbered from `first`. */
const appendEvents = (run: Statement, threadId: string, first: number, events: ReadonlyArray<WorkflowEvent>) =>
  events.length === 0 ?
    Effect.void :
    run(insertEvents(events.length), events.flatMap((event, i) => [threadId, first + i, encodeEvent(event)]))

/** Writes a checkpoint (a step saved again, after a resume, replaces the old one). */
const insertCheckpoint = (run: Statement, threadId: string, checkpoint: Checkpoint) =>
  run("INSERT OR REPLACE INTO checkpoints (thread_id, step, state, next) VALUES (?, ?, ?, ?)", [
    threadId,
    checkpoint.step,
    JSON.stringify(checkpoint.state),
    JSON.stringify(checkpoint.next)
  ])

type RunFields =
  & {
    readonly status?: string
    readonly step?: number
    readonly error?: string | null
    readonly superseded_by?: string
  }
  & Partial<ReturnType<typeof usageColumns>>

/**
 * Updates the run's row (and `updated_at`) and appends `events` after its last one, the
 * row's `last_seq` bumped and read back by the same statement. A missing run is left
 * missing, events and all.
 */
const touch = (run: Statement, threadId: string, fields: RunFields, events: ReadonlyArray<WorkflowEvent> = []) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const columns = Object.keys(fields) as ReadonlyArray<keyof RunFields>
    const set = columns.map((column) => `${column} = ?, `).join("")
    const [row] = yield* run<{ readonly last_seq: number }>(
      `UPDATE runs SET ${set}updated_at = ?, last_seq = last_seq + ? WHERE thread_id = ? RETURNING last_seq`,
      [...columns.map((column) => fields[column] ?? null), now, events.length, threadId]
    )
    if (row !== undefined) yield* appendEvents(run, threadId, row.last_seq - events.length + 1, events)
  })

/** A statement refused by a PRIMARY KEY or UNIQUE constraint (better-sqlite3's error codes). */
const isUniqueViolation = (error: SqlError) => {
  const code = (error.cause as { readonly code?: unknown } | undefined)?.code
  return code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE"
}

const findRun = (sql: SqlClient.SqlClient) => (threadId: ThreadId) =>
  sql<RunRow>`SELECT * FROM runs WHERE thread_id = ${threadId}`.pipe(
    Effect.orDie,
    Effect.map((rows) => Option.fromNullable(rows[0]))
  )

/** A run's record, its last checkpoint and that step's pending writes, decoded (bad data is `CheckpointCorrupt`). */
const loadSaved = (sql: SqlClient.SqlClient): CheckpointStore["Type"]["load"] => {
  const find = findRun(sql)
  return (threadId) =>
    Effect.gen(function*() {
      const row = yield* find(threadId)
      if (Option.isNone(row)) return Option.none()
      const run = yield* toRecord(threadId, row.value)
      const [saved] = yield* sql<{ step: number; state: string; next: string }>`
      SELECT step, state, next FROM checkpoints WHERE thread_id = ${threadId} ORDER BY step DESC LIMIT 1
    `.pipe(Effect.orDie)
      if (saved === undefined) return yield* new CheckpointCorrupt({ threadId, message: "the run has no checkpoint" })
      const checkpoint = yield* Effect.all({
        step: Effect.succeed(saved.step),
        state: Schema.decodeUnknown(Json)(saved.state),
        next: Schema.decodeUnknown(Schema.parseJson(Schema.Array(Schema.String)))(saved.next)
      }).pipe(Effect.map((fields) => new Checkpoint(fields)), Effect.mapError(corrupt(threadId)))
      const rows = yield* sql<{ step: number; node: string; update_json: string }>`
      SELECT step, node, update_json FROM writes WHERE thread_id = ${threadId} AND step = ${saved.step} ORDER BY node
    `.pipe(Effect.orDie)
      const writes = yield* Effect.forEach(rows, (w) =>
        Schema.decodeUnknown(Json)(w.update_json).pipe(
          Effect.map((update) => new PendingWrite({ step: w.step, node: w.node, update })),
          Effect.mapError(corrupt(threadId))
        ))
      return Option.some({ run, checkpoint, writes })
    })
}

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // per connection, so set on the client's one connection before anything else runs
  yield* sql`PRAGMA busy_timeout = ${sql.literal(String(busyTimeoutMillis))}`.pipe(Effect.orDie)
  yield* sql`PRAGMA synchronous = NORMAL`.pipe(Effect.orDie)
  yield* Migrator.make({})({ loader: migrations }).pipe(Effect.orDie)

  const write = writing(sql)
  const find = findRun(sql)

  /**
   * Checks the id and the place in the thread under the write lock, so of two creates
   * racing for a thread's next turn the second sees the first's row. The unique index
   * backs the check: should the INSERT still hit it, that is RunExists too, not a defect.
   */
  const create: CheckpointStore["Type"]["create"] = (threadId, workflow, checkpoint, events, placement) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      write((run) =>
        Effect.gen(function*() {
          const thread = placement?.thread ?? threadId
          const turn = placement?.turn ?? 1
          const existing = yield* run("SELECT 1 FROM runs WHERE thread_id = ? OR (thread = ? AND turn = ?)", [
            threadId,
            thread,
            turn
          ])
          if (existing.length > 0) return yield* new RunExists({ threadId })
          yield* run(
            `INSERT INTO runs (thread_id, thread, turn, workflow, status, step, error, created_at, updated_at, last_seq)
            VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)`,
            [threadId, thread, turn, workflow, placement?.status ?? "running", checkpoint.step, now, now, events.length]
          ).pipe(Effect.catchIf(isUniqueViolation, () => Effect.fail(new RunExists({ threadId }))))
          yield* insertCheckpoint(run, threadId, checkpoint)
          yield* appendEvents(run, threadId, 1, events)
        })
      )).pipe(Effect.catchTag("SqlError", Effect.die))

  const saveWrite: CheckpointStore["Type"]["saveWrite"] = (threadId, pending, events) =>
    write((run) =>
      Effect.zipRight(
        run("INSERT OR REPLACE INTO writes (thread_id, step, node, update_json) VALUES (?, ?, ?, ?)", [
          threadId,
          pending.step,
          pending.node,
          JSON.stringify(pending.update)
        ]),
        touch(run, threadId, {}, events)
      )
    ).pipe(Effect.orDie)

  const saveCheckpoint: CheckpointStore["Type"]["saveCheckpoint"] = (threadId, checkpoint, events) =>
    write((run) =>
      Effect.gen(function*() {
        yield* insertCheckpoint(run, threadId, checkpoint)
        yield* run("DELETE FROM writes WHERE thread_id = ? AND step < ?", [threadId, checkpoint.step])
        yield* touch(run, threadId, { step: checkpoint.step }, events)
      })
    ).pipe(Effect.orDie)

  const setStatus: CheckpointStore["Type"]["setStatus"] = (threadId, status, events, error) =>
    write((run) =>
      Effect.gen(function*() {
        const [row] = yield* run<{ readonly status: RunStatus; readonly superseded_by: string | null }>(
          "SELECT status, superseded_by FROM runs WHERE thread_id = ?",
          [threadId]
        )
        if (row === undefined || row.superseded_by !== null || !canMove(row.status, status)) return false
        yield* touch(run, threadId, { status, error: error ?? null }, events)
        return true
      })
    ).pipe(Effect.orDie)

  /** Whether the run is over is `isOver`'s to say, so the row is read whole, inside the transaction that moves it. */
  const supersede: CheckpointStore["Type"]["supersede"] = (threadId, by, status, events) =>
    write((run) =>
      Effect.gen(function*() {
        const [row] = yield* run<RunRow>("SELECT * FROM runs WHERE thread_id = ?", [threadId])
        if (row === undefined || isOver(yield* toRecord(threadId, row))) return false
        yield* touch(run, threadId, { status, error: null, superseded_by: by }, events)
        return true
      })
    ).pipe(Effect.orDie)

  /** `last_seq` is left as it is, so events appended after a rollback never reuse a number a reader has seen. */
  const clear: CheckpointStore["Type"]["clear"] = (threadId) =>
    write((run) =>
      Effect.gen(function*() {
        yield* run("DELETE FROM checkpoints WHERE thread_id = ?", [threadId])
        yield* run("DELETE FROM writes WHERE thread_id = ?", [threadId])
        yield* run("DELETE FROM events WHERE thread_id = ?", [threadId])
        yield* touch(run, threadId, {})
      })
    ).pipe(Effect.orDie)

  /** A NULL thread (a row written before threads, by an older process) is the run's own. */
  const threadRuns: CheckpointStore["Type"]["threadRuns"] = (thread) =>
    sql<RunRow>`
      SELECT * FROM runs WHERE thread = ${thread} OR (thread IS NULL AND thread_id = ${thread}) ORDER BY turn, thread_id
    `.pipe(
      Effect.orDie,
      Effect.flatMap((rows) => Effect.forEach(rows, (row) => Effect.orDie(toRecord(row.thread_id, row))))
    )

  const addUsage: CheckpointStore["Type"]["addUsage"] = (threadId, usage) =>
    write((run) =>
      Effect.gen(function*() {
        const [row] = yield* run<RunRow>("SELECT * FROM runs WHERE thread_id = ?", [threadId])
        if (row === undefined) return
        const record = yield* toRecord(threadId, row)
        yield* touch(run, threadId, usageColumns(add(record.usage, usage)))
      })
    ).pipe(Effect.orDie)

  const load = loadSaved(sql)

  const getRun: CheckpointStore["Type"]["getRun"] = (threadId) =>
    Effect.flatMap(find(threadId), (row) =>
      Option.isNone(row)
        ? Effect.fail(new RunNotFound({ threadId }))
        : toRecord(threadId, row.value).pipe(Effect.orDie))

  const listRuns = sql<RunRow>`SELECT * FROM runs ORDER BY created_at, thread_id`.pipe(
    Effect.orDie,
    Effect.flatMap((rows) => Effect.forEach(rows, (row) => Effect.orDie(toRecord(row.thread_id, row))))
  )

  const events: CheckpointStore["Type"]["events"] = (threadId, afterSeq = 0) =>
    Effect.gen(function*() {
      yield* getRun(threadId)
      const rows = yield* sql<{ seq: number; event: string }>`
        SELECT seq, event FROM events WHERE thread_id = ${threadId} AND seq > ${afterSeq} ORDER BY seq
      `.pipe(Effect.orDie)
      return yield* Effect.forEach(rows, (row) =>
        Schema.decodeUnknown(EventJson)(row.event).pipe(
          Effect.map((event): StoredEvent => ({ seq: row.seq, event })),
          Effect.mapError(corrupt(threadId))
        ))
    })

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

/** The store over the SQLite file `filename` (its directory is created if missing). */
export const layer = (filename: string) =>
  Layer.effect(CheckpointStore, make).pipe(
    Layer.provide(
      Layer.unwrapEffect(
        Effect.sync(() => {
          fs.mkdirSync(path.dirname(filename), { recursive: true })
          return SqliteClient.layer({ filename })
        })
      )
    ),
    Layer.orDie
  )

/** `LOOM_DATA_DIR` (default `./data`): the database is `loom.db` in it. */
export const dataDir = Config.string("LOOM_DATA_DIR").pipe(Config.withDefault("./data"))

export const layerConfig = Layer.unwrapEffect(
  Effect.map(dataDir, (dir) => layer(path.join(dir, "loom.db")))
)
