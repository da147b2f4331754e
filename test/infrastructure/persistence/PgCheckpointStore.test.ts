/**
 * The Postgres store against a real Postgres, started for this file (test/support/Postgres.ts):
 * the store contract every store passes, each case on a database of its own, then what
 * only a shared database asks for: several processes (a pool each) writing to one run,
 * and starting together on a fresh database.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it, layer } from "@effect/vitest"
import { Array as Arr, Context, Effect, Either, Exit, Layer, Option, Redacted, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Checkpoint, CheckpointStore, PendingWrite } from "../../../src/domain/CheckpointStore.js"
import { Usage } from "../../../src/domain/Usage.js"
import { NodeFinished, NodeStarted, ThreadId } from "../../../src/domain/Workflow.js"
import * as PgCheckpointStore from "../../../src/infrastructure/persistence/PgCheckpointStore.js"
import { checkpointStoreContract } from "../../support/CheckpointContract.js"
import { isAlive } from "../../support/Pids.js"
import * as Postgres from "../../support/Postgres.js"

/** A store on an empty database of its own, so no case sees another's runs. */
const freshStore = () =>
  Layer.unwrapEffect(
    Effect.map(Effect.flatMap(Postgres.Server, (server) => server.createDatabase), PgCheckpointStore.layerUrl)
  ).pipe(Layer.orDie)

/** A store with a pool of its own on `url`, as another Loom process would have. */
const processOn = (url: string) =>
  Effect.map(Layer.build(PgCheckpointStore.layerUrl(url)), Context.get(CheckpointStore))

/** A client on `url`, to look at the tables behind the store's back. */
const sqlOn = (url: string) => PgClient.make({ url: Redacted.make(url) }).pipe(Effect.provide(Reactivity.layer))

const first = new Checkpoint({ step: 0, state: { n: 0 }, next: ["a", "b"] })

layer(Postgres.layer, { excludeTestServices: true, timeout: "60 seconds" })("PgCheckpointStore", (it) => {
  checkpointStoreContract(it, "Postgres", freshStore)

  it.scoped("the server listens on 127.0.0.1 only, with no Unix socket", () =>
    Effect.gen(function*() {
      const server = yield* Postgres.Server
      const sql = yield* sqlOn(server.url)
      const [listen] = yield* sql<{ readonly listen_addresses: string }>`SHOW listen_addresses`
      const [sockets] = yield* sql<{ readonly unix_socket_directories: string }>`SHOW unix_socket_directories`
      assert.deepStrictEqual([listen?.listen_addresses, sockets?.unix_socket_directories], ["127.0.0.1", ""])
      assert.isTrue(server.url.startsWith("postgres://loom:"))
      assert.isTrue(isAlive(server.pid ?? -1), "the postmaster's PID is known")
    }))

  it.scoped("two processes appending to one run: events numbered 1..n, no gap, no duplicate, each save's together", () =>
    Effect.gen(function*() {
      const url = yield* Effect.flatMap(Postgres.Server, (server) => server.createDatabase)
      const [a, b] = yield* Effect.all([processOn(url), processOn(url)])
      const t = ThreadId.make("shared")
      yield* a.create(t, "w", first, [new NodeStarted({ step: 0, node: "setup" })])
      const saves = 20
      const append = (store: typeof a, who: string) =>
        Effect.forEach(Arr.range(1, saves), (i) => {
          const node = `${who}${i}`
          return store.saveWrite(t, new PendingWrite({ step: 0, node, update: { i } }), [
            new NodeStarted({ step: 0, node }),
            new NodeFinished({ step: 0, node, update: { i } })
          ])
        }, { concurrency: 4, discard: true })
      yield* Effect.all([append(a, "a"), append(b, "b")], { concurrency: "unbounded", discard: true })

      const events = yield* b.events(t)
      assert.deepStrictEqual(events.map((e) => e.seq), Arr.range(1, 1 + 2 * 2 * saves))
      for (const [started, finished] of Arr.chunksOf(events.slice(1), 2)) {
        assert.strictEqual(started?.event._tag, "NodeStarted")
        assert.deepStrictEqual(
          [finished?.event._tag, finished?.event._tag === "NodeFinished" && finished.event.node],
          ["NodeFinished", started?.event._tag === "NodeStarted" && started.event.node],
          "a save's events are numbered one after another"
        )
      }
      const saved = Option.getOrThrow(yield* a.load(t))
      assert.strictEqual(saved.writes.length, 2 * saves)
      assert.isTrue(yield* b.setStatus(t, "finished", [new NodeStarted({ step: 1, node: "end" })]))
      assert.deepStrictEqual((yield* a.events(t, 2 * 2 * saves)).map((e) => e.seq), [
        2 * 2 * saves + 1,
        2 * 2 * saves + 2
      ])
    }))

  it.scoped("two processes racing: one create wins, one finish wins, every usage is summed", () =>
    Effect.gen(function*() {
      const url = yield* Effect.flatMap(Postgres.Server, (server) => server.createDatabase)
      const [a, b] = yield* Effect.all([processOn(url), processOn(url)])
      const t = ThreadId.make("raced")
      const created = yield* Effect.all([a, b].map((store) => Effect.either(store.create(t, "w", first, []))), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(created.map(Either.isRight).filter(Boolean).length, 1)
      assert.deepStrictEqual(Arr.getLefts(created).map((error) => error._tag), ["RunExists"])

      const spend = new Usage({ calls: 1, prompt: 10, completion: 5, costUsd: 0.25 })
      yield* Effect.all(
        [a, b].map((store) => Effect.forEach(Arr.range(1, 15), () => store.addUsage(t, spend), { concurrency: 3 })),
        { concurrency: "unbounded" }
      )
      const { usage } = yield* a.getRun(t)
      assert.deepStrictEqual(usage, new Usage({ calls: 30, prompt: 300, completion: 150, costUsd: 7.5 }))

      const moved = yield* Effect.all(
        [a, b].map((store) => store.setStatus(t, "finished", [new NodeStarted({ step: 1, node: "end" })])),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(moved.filter(Boolean).length, 1)
      assert.deepStrictEqual((yield* b.events(t)).map((e) => e.seq), [1])
    }))

  // unguarded, about one start in three loses the race to create the migrations table: a few rounds catch it
  it.effect("three processes starting at once on a fresh database migrate it once, without error", () =>
    Effect.forEach(Arr.range(1, 4), () =>
      Effect.scoped(Effect.gen(function*() {
        const url = yield* Effect.flatMap(Postgres.Server, (server) => server.createDatabase)
        const stores = yield* Effect.all([processOn(url), processOn(url), processOn(url)], { concurrency: "unbounded" })
        const sql = yield* sqlOn(url)
        const migrations = yield* sql<{ readonly name: string }>`SELECT name FROM loom_migrations ORDER BY migration_id`
        assert.deepStrictEqual(migrations.map((m) => m.name), ["checkpoint_store", "run_threads"])
        const t = ThreadId.make("t")
        yield* stores[0]!.create(t, "w", first, [])
        assert.strictEqual((yield* stores[2]!.getRun(t)).workflow, "w")
      })), { discard: true }))

  it.scoped("stored JSON that no longer decodes is CheckpointCorrupt, not a crash", () =>
    Effect.gen(function*() {
      const url = yield* Effect.flatMap(Postgres.Server, (server) => server.createDatabase)
      const store = yield* processOn(url)
      const t = ThreadId.make("t")
      yield* store.create(t, "w", first, [new NodeStarted({ step: 0, node: "a" })])
      const sql = yield* sqlOn(url)
      yield* sql`UPDATE loom_checkpoints SET state = '{oops' WHERE thread_id = ${t}`
      yield* sql`UPDATE loom_events SET event = '{"_tag":"Nope"}' WHERE thread_id = ${t}`
      assert.strictEqual((yield* Effect.flip(store.load(t)))._tag, "CheckpointCorrupt")
      assert.strictEqual((yield* Effect.flip(store.events(t)))._tag, "CheckpointCorrupt")
    }))
})

describe("Postgres (test support)", () => {
  it.live(
    "its scope's end stops the server, leaves no postgres process and removes its temp dir",
    () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Postgres.start.pipe(Scope.extend(scope))
        const pid = server.pid ?? -1
        const processes = [pid, ...Postgres.childrenOf(pid)]
        const dir = path.dirname(server.dataDir)
        assert.isTrue(isAlive(pid))
        assert.isAbove(processes.length, 1, "the postmaster has its workers")
        assert.match(path.basename(dir), /^loom-pg-/)
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(processes.filter(isAlive), [])
        assert.isFalse(fs.existsSync(dir))
      }),
    60_000
  )
})
