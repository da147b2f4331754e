/**
 * The embedded CheckpointStore: one SQLite file (via @effect/sql-sqlite-node), its
 * tables created and upgraded by @effect/sql's Migrator. Every save is one transaction;
 * stored JSON that no longer decodes is a typed `CheckpointCorrupt`, not a crash.
 * Database errors a caller cannot act on are defects.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Config, Effect, Layer, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { canMove, Checkpoint, CheckpointStore, PendingWrite } from "../../domain/CheckpointStore.js"
import type { StoredEvent } from "../../domain/CheckpointStore.js"
import { add, Usage } from "../../domain/Usage.js"
import {
  CheckpointCorrupt,
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
  })
})

interface RunRow {
  readonly thread_id: string
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

/** The row-level statements the store is made of; each runs inside its caller's transaction. */
const rows = (sql: SqlClient.SqlClient) => {
  const corrupt = (threadId: string) => (error: { readonly message: string }) =>
    new CheckpointCorrupt({ threadId, message: error.message })

  const toRecord = (threadId: string, row: RunRow) =>
    Schema.decodeUnknown(RunRow)(row).pipe(
      Effect.map((r) =>
        new RunRecord({
          threadId: r.thread_id,
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

  /** Appends events after the run's last one; call inside the save's transaction. */
  const append = (threadId: string, events: ReadonlyArray<WorkflowEvent>) =>
    Effect.gen(function*() {
      if (events.length === 0) return
      const [last] = yield* sql<
        { seq: number | null }
      >`SELECT MAX(seq) AS seq FROM events WHERE thread_id = ${threadId}`
      const first = (last?.seq ?? 0) + 1
      yield* sql`INSERT INTO events ${
        sql.insert(events.map((event, i) => ({ thread_id: threadId, seq: first + i, event: encodeEvent(event) })))
      }`
    })

  /** Writes a checkpoint (a step saved again, after a resume, replaces the old one). */
  const insertCheckpoint = (threadId: string, checkpoint: Checkpoint) =>
    sql`INSERT OR REPLACE INTO checkpoints ${
      sql.insert({
        thread_id: threadId,
        step: checkpoint.step,
        state: JSON.stringify(checkpoint.state),
        next: JSON.stringify(checkpoint.next)
      })
    }`

  const touch = (
    threadId: string,
    fields: {
      readonly status?: string
      readonly step?: number
      readonly error?: string | null
    } & Partial<ReturnType<typeof usageColumns>>
  ) =>
    Effect.flatMap(
      Clock.currentTimeMillis,
      (now) => sql`UPDATE runs SET ${sql.update({ ...fields, updated_at: now })} WHERE thread_id = ${threadId}`
    )

  const findRun = (threadId: ThreadId) =>
    sql<RunRow>`SELECT * FROM runs WHERE thread_id = ${threadId}`.pipe(
      Effect.orDie,
      Effect.map((rows) => Option.fromNullable(rows[0]))
    )

  return { append, corrupt, findRun, insertCheckpoint, toRecord, touch }
}

/** A run's record, its last checkpoint and that step's pending writes, decoded (bad data is `CheckpointCorrupt`). */
const loadSaved = (sql: SqlClient.SqlClient): CheckpointStore["Type"]["load"] => {
  const { corrupt, findRun, toRecord } = rows(sql)
  return (threadId) =>
    Effect.gen(function*() {
      const row = yield* findRun(threadId)
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
  yield* Migrator.make({})({ loader: migrations }).pipe(Effect.orDie)

  const { append, corrupt, findRun, insertCheckpoint, toRecord, touch } = rows(sql)

  const create: CheckpointStore["Type"]["create"] = (threadId, workflow, checkpoint, events) =>
    Effect.gen(function*() {
      const existing = yield* sql`SELECT 1 FROM runs WHERE thread_id = ${threadId}`
      if (existing.length > 0) return yield* new RunExists({ threadId })
      const now = yield* Clock.currentTimeMillis
      yield* sql`INSERT INTO runs ${
        sql.insert({
          thread_id: threadId,
          workflow,
          status: "running",
          step: checkpoint.step,
          error: null,
          created_at: now,
          updated_at: now
        })
      }`
      yield* insertCheckpoint(threadId, checkpoint)
      yield* append(threadId, events)
    }).pipe(sql.withTransaction, Effect.catchTag("SqlError", Effect.die))

  const saveWrite: CheckpointStore["Type"]["saveWrite"] = (threadId, write, events) =>
    Effect.gen(function*() {
      yield* sql`INSERT OR REPLACE INTO writes ${
        sql.insert({
          thread_id: threadId,
          step: write.step,
          node: write.node,
          update_json: JSON.stringify(write.update)
        })
      }`
      yield* append(threadId, events)
      yield* touch(threadId, {})
    }).pipe(sql.withTransaction, Effect.orDie)

  const saveCheckpoint: CheckpointStore["Type"]["saveCheckpoint"] = (threadId, checkpoint, events) =>
    Effect.gen(function*() {
      yield* insertCheckpoint(threadId, checkpoint)
      yield* sql`DELETE FROM writes WHERE thread_id = ${threadId} AND step < ${checkpoint.step}`
      yield* append(threadId, events)
      yield* touch(threadId, { step: checkpoint.step })
    }).pipe(sql.withTransaction, Effect.orDie)

  const setStatus: CheckpointStore["Type"]["setStatus"] = (threadId, status, events, error) =>
    Effect.gen(function*() {
      const [row] = yield* sql<{ status: RunStatus }>`SELECT status FROM runs WHERE thread_id = ${threadId}`
      if (row === undefined || !canMove(row.status, status)) return false
      yield* append(threadId, events)
      yield* touch(threadId, { status, error: error ?? null })
      return true
    }).pipe(sql.withTransaction, Effect.orDie)

  const addUsage: CheckpointStore["Type"]["addUsage"] = (threadId, usage) =>
    Effect.gen(function*() {
      const row = yield* findRun(threadId)
      if (Option.isNone(row)) return
      const run = yield* toRecord(threadId, row.value)
      yield* touch(threadId, usageColumns(add(run.usage, usage)))
    }).pipe(sql.withTransaction, Effect.orDie)

  const load = loadSaved(sql)

  const getRun: CheckpointStore["Type"]["getRun"] = (threadId) =>
    Effect.flatMap(findRun(threadId), (row) =>
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
