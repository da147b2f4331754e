/**
 * Durable runs over the real service (real sockets, loopback only): every run is an
 * @effect/workflow execution on the embedded runner (`cluster.db`) with each node an
 * Activity, and Loom's history in `loom.db`. A run cut off by a crash or a Ctrl-C is
 * picked up by the next service on that data directory, and a node that finished is
 * never executed again: the Ollama the service talks to lives in this process and counts
 * every chat request per run and node, as it arrives, which is the external side effect a
 * node's execution has.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Random, Schedule } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { codingScript } from "../../src/infrastructure/ollama/CodingScript.js"
import type { SimChatRequest } from "../../src/infrastructure/ollama/OllamaSimulator.js"
import * as CountingOllama from "../support/CountingOllama.js"
import { checkHistory, codingNodes, historyOf } from "../support/History.js"
import type { Proc } from "../support/Processes.js"
import { crash, exited, loom, service, tempDir, waitFor } from "../support/Processes.js"
import { json, post } from "../support/Service.js"

/**
 * A node execution: `label|node#n`, the n-th execution of `node` in run `label`. On the
 * coding script one node legitimately runs twice per run: the coder, whose first code
 * fails the tests (the runner sends the work back, and the second request carries "The
 * tests are failing"); every other model-calling node runs once. So a chat request is
 * counted against the execution it belongs to, and a finished entry (step, node) of the
 * history against the n-th finished step of that node (coder at step 3 is `coder#1`, at
 * step 5 `coder#2`).
 */
const executionOf = (body: unknown): string | undefined => {
  const { system, user } = CountingOllama.chatParts(body)
  const node = CountingOllama.codingRoles.get(system)
  const label = CountingOllama.labelOf(user)
  if (node === undefined || label === undefined) return undefined
  const n = node === "coder" && user.includes("The tests are failing") ? 2 : 1
  return `${label}|${node}#${n}`
}

/** The model-calling executions every coding run has, once each when nothing goes wrong. */
const executionsOfRun = (label: string) =>
  ["intent#1", "planner#1", "test_writer#1", "coder#1", "coder#2", "reviewer#1"].map((e) => `${label}|${e}`)

const nodeOf = (execution: string) => execution.slice(0, execution.lastIndexOf("#"))

/** Chat requests as they arrive at the simulator's door, per execution, and those it could not place. */
const ledger = () => {
  const arrived = new Map<string, number>()
  const unplaced: Array<string> = []
  return {
    onChat: (body: unknown) => {
      const key = executionOf(body)
      if (key === undefined) unplaced.push(JSON.stringify(CountingOllama.chatParts(body)).slice(0, 200))
      else arrived.set(key, (arrived.get(key) ?? 0) + 1)
    },
    snapshot: (): ReadonlyMap<string, number> => new Map(arrived),
    unplaced
  }
}

/** The sum of `counts` over the executions of one (run, node). */
const perNode = (counts: ReadonlyMap<string, number>, node: string) =>
  [...counts].filter(([key]) => nodeOf(key) === node).reduce((n, [, count]) => n + count, 0)

interface FinishedRow {
  readonly thread: string
  readonly step: number
  readonly node: string
}

/** Reads `loom.db` in `dir` read-only (no service runs meanwhile): the stored NodeFinished events and the statuses. */
const readStore = (dir: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const finished = yield* sql<FinishedRow>`
      SELECT thread_id AS thread, json_extract(event, '$.step') AS step, json_extract(event, '$.node') AS node
      FROM events WHERE json_extract(event, '$._tag') = 'NodeFinished' ORDER BY thread_id, seq`
    const statuses = yield* sql<{ readonly thread: string; readonly status: string }>`
      SELECT thread_id AS thread, status FROM runs`
    return { finished, statuses: new Map(statuses.map((row) => [row.thread, row.status])) }
  }).pipe(
    Effect.provide(SqliteClient.layer({ filename: path.join(dir, "loom.db"), readonly: true, disableWAL: true })),
    Effect.orDie
  )

/**
 * The executions with a NodeFinished stored: the n-th finished step of a node in a run is
 * its execution `label|node#n`. `labels` maps thread ids to run labels.
 */
const finishedExecutions = (rows: ReadonlyArray<FinishedRow>, labels: ReadonlyMap<string, string>) => {
  const seen = new Map<string, number>()
  const done = new Set<string>()
  for (const row of [...rows].sort((a, b) => a.step - b.step)) {
    const label = labels.get(row.thread)
    if (label === undefined || row.node === "runner") continue
    const node = `${label}|${row.node}`
    const n = (seen.get(node) ?? 0) + 1
    seen.set(node, n)
    done.add(`${node}#${n}`)
  }
  return done
}

const statusOf = (url: string, id: string) =>
  Effect.map(json(`${url}/v1/runs/${id}`), (reply) => (reply.body as { status?: string }).status ?? `${reply.status}`)

/** Waits until each run is `finished` (polled), or fails with the statuses seen last and the service's output. */
const allFinished = (
  running: Proc & { readonly url: string },
  ids: ReadonlyArray<string>,
  within: Duration.DurationInput
) => {
  let last: ReadonlyArray<string> = []
  return Effect.forEach(ids, (id) => statusOf(running.url, id)).pipe(
    Effect.tap((statuses) => {
      last = statuses
    }),
    Effect.filterOrFail((statuses) => statuses.every((status) => status === "finished"), () => "not yet"),
    Effect.retry(Schedule.spaced("200 millis")),
    Effect.timeoutFail({ duration: within, onTimeout: () => "timed out" }),
    Effect.catchAll(() =>
      Effect.dieMessage(
        `runs not all finished within ${Duration.format(within)}: ${
          ids.map((id, i) => `${id}=${last[i]}`).join(", ")
        }\n` +
          running.output().slice(-6000)
      )
    )
  )
}

/** SIGTERM, and the exit code; a shutdown that takes more than 20 s fails the test with the service's output. */
const stop = (running: Proc) =>
  Effect.suspend(() => {
    running.child.kill("SIGTERM")
    return exited(running.child)
  }).pipe(
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "shutdown hangs" }),
    Effect.catchAll((what) => Effect.dieMessage(`${what}:\n${running.output().slice(-6000)}`))
  )

/** Lines of the service's log worth a look: warnings, errors, defects. */
const oddLines = (output: string) => output.split("\n").filter((line) => /WARN|ERROR|FATAL|defect|Error:/i.test(line))

/** What the test saw at one kill, while no process ran. */
interface Snapshot {
  /** Executions with a NodeFinished in `loom.db` (F_k). */
  readonly finished: ReadonlySet<string>
  /** Chat requests per execution so far (R_k). */
  readonly arrived: ReadonlyMap<string, number>
  /** Executions that made a request in the cycle this kill ended and have no NodeFinished: cut off mid-node. */
  readonly cutOff: ReadonlyArray<string>
  /** The runs not `finished` in `loom.db`: the next service must resume each of them, once. */
  readonly unfinished: ReadonlyArray<string>
}

describe("durable runs over the real service", () => {
  it.scopedLive(
    "kill -9 mid-run 10 times in a row on one data dir: every run finishes and no finished node runs again",
    () =>
      Effect.gen(function*() {
        const began = performance.now()
        const dir = yield* tempDir()
        const chats = ledger()
        let answered = 0
        const ollama = yield* CountingOllama.make({
          script: (request: SimChatRequest) => {
            answered++
            return codingScript(request)
          },
          chat: { latency: { min: 300, max: 600 } },
          seed: 20_240_611,
          onChat: chats.onChat
        })
        const env = {
          LOOM_DATA_DIR: dir,
          // the scratch files of test runs a kill cuts off stay in `dir`, removed with it
          TMPDIR: dir,
          LOOM_LLM: "ollama",
          OLLAMA_HOSTS: ollama.url,
          LOOM_MAX_RUNS: "16",
          LOOM_SHUTDOWN_TIMEOUT: "10 seconds"
        }
        const labels = new Map(Array.from({ length: 6 }, (_, i) => [`durable-run-${i + 1}`, String(i + 1)]))
        const ids = [...labels.keys()]

        let running = yield* service(env)
        for (const [id, label] of labels) {
          const started = yield* post(`${running.url}/v1/runs`, {
            kind: "workflow",
            name: "coding",
            input: CountingOllama.task(label),
            threadId: id
          })
          assert.strictEqual(started.status, 202, JSON.stringify(started.body))
          assert.strictEqual((started.body as { threadId: string }).threadId, id)
        }

        const rng = Random.make("loom durable runs: kill -9")
        const snapshots: Array<Snapshot> = []
        const logs: Array<string> = []
        let before: ReadonlyMap<string, number> = new Map()
        for (let kill = 1; kill <= 10; kill++) {
          yield* Effect.sleep(yield* rng.nextIntBetween(300, 901))
          yield* crash(running)
          logs.push(running.output())
          // what the dead process had sent is read by the simulator's door before counting
          yield* Effect.sleep("150 millis")
          const store = yield* readStore(dir)
          const finished = finishedExecutions(store.finished, labels)
          const arrived = chats.snapshot()
          snapshots.push({
            finished,
            arrived,
            cutOff: [...arrived].filter(([key, n]) => n > (before.get(key) ?? 0) && !finished.has(key)).map(([key]) =>
              key
            ),
            unfinished: ids.filter((id) => store.statuses.get(id) !== "finished")
          })
          before = arrived
          running = yield* service(env)
        }

        yield* allFinished(running, ids, "90 seconds")
        for (const id of ids) checkHistory(id, yield* historyOf(running.url, id), codingNodes)
        const code = yield* stop(running)
        logs.push(running.output())
        assert.strictEqual(code, 0, running.output().slice(-4000))

        const final = chats.snapshot()
        const store = yield* readStore(dir)
        const finishedAtEnd = finishedExecutions(store.finished, labels)
        // What went wrong, gathered so that the summary is printed first.
        const problems: Array<string> = []
        // (1) per execution: one with a NodeFinished stored at kill k was never requested again after k.
        let executionChecks = 0
        const duplicates = new Map<string, number>()
        snapshots.forEach((snapshot, k) => {
          for (const key of snapshot.finished) {
            executionChecks++
            const extra = (final.get(key) ?? 0) - (snapshot.arrived.get(key) ?? 0)
            if (extra > 0) duplicates.set(key, Math.max(duplicates.get(key) ?? 0, extra))
            if (extra !== 0) problems.push(`${key}, finished at kill ${k + 1}, asked the model ${extra} more time(s)`)
          }
        })
        // (2) per (run, node): the coder runs twice per run, so R_k(run, node) may legitimately grow after kill k
        // while the node has executions still to come. The counts are compared when every execution the node has in
        // the whole run had finished at kill k (as many finished entries in F_k as in the final history): from then on
        // the node must ask the model nothing more, so its final count equals R_k(run, node).
        let nodeChecks = 0
        snapshots.forEach((snapshot, k) => {
          const nodes = new Set([...snapshot.finished].map(nodeOf))
          for (const node of nodes) {
            const finishedNow = [...snapshot.finished].filter((key) => nodeOf(key) === node).length
            const finishedInAll = [...finishedAtEnd].filter((key) => nodeOf(key) === node).length
            if (finishedNow !== finishedInAll) continue
            nodeChecks++
            const after = perNode(final, node) - perNode(snapshot.arrived, node)
            if (after !== 0) {
              problems.push(`${node}: all finished at kill ${k + 1}, asked the model ${after} more time(s)`)
            }
          }
        })

        // (3) no execution asked the model twice within one life of the service (two fibers on one run, say)
        const lives = [...snapshots.map((snapshot) => snapshot.arrived), final]
        lives.forEach((arrived, life) => {
          const previous = life === 0 ? new Map<string, number>() : lives[life - 1]!
          const twice = [...arrived].filter(([key, n]) => n - (previous.get(key) ?? 0) > 1).map(([key]) => key)
          for (const key of twice) problems.push(`${key} asked the model twice in life ${life + 1} of the service`)
        })
        // (4) each restart resumed every run the kill before it had cut off, each once
        snapshots.forEach((snapshot, k) => {
          const resumed = [...logs[k + 1]!.matchAll(/resuming run (\S+) \(coding\)/g)].map((found) => found[1]!)
          if ([...resumed].sort().join() !== [...snapshot.unfinished].sort().join()) {
            problems.push(
              `after kill ${k + 1}: resumed [${resumed.join(", ")}], cut off [${snapshot.unfinished.join(", ")}]`
            )
          }
        })

        const requests = [...final.values()].reduce((n, count) => n + count, 0)
        const needed = finishedAtEnd.size
        const cutOff = snapshots.reduce((n, s) => n + s.cutOff.length, 0)
        // cut off, yet never asked again: the engine had stored the node's result (its Activity completed in
        // cluster.db) before the kill, the NodeFinished in loom.db was still to be written; the replay returned it
        const fromEngine = snapshots.reduce(
          (n, s) => n + s.cutOff.filter((key) => final.get(key) === s.arrived.get(key)).length,
          0
        )
        const midNode = snapshots.filter((s) => s.cutOff.length > 0).length
        const duplicated = [...duplicates.values()].reduce((n, count) => n + count, 0)
        const seconds = ((performance.now() - began) / 1000).toFixed(1)
        console.log(
          `durable kill -9: 10 kills (${midNode} mid-node, runs still going at each: ` +
            `${snapshots.map((s) => s.unfinished.length).join(",")}); ` +
            `${ids.length} runs started, ${ids.length} finished; ${requests} model-calling node executions ` +
            `(chat requests; ${needed} needed; the simulator answered ${answered}, dead clients included); ` +
            `${duplicated} duplicates of finished nodes; ${requests - needed} re-run after being cut off mid-node ` +
            `(${cutOff} executions cut off at a kill, ${fromEngine} of them given back by the engine unasked); ` +
            `checks: ${executionChecks} finished executions, ` +
            `${nodeChecks} finished (run, node); ${seconds} s`
        )
        const odd = logs.flatMap(oddLines)
        if (odd.length > 0) console.log(`service log, warnings and errors:\n${odd.slice(0, 40).join("\n")}`)
        assert.deepStrictEqual(chats.unplaced, [], "chat requests of no known run and node")
        // every run asked for its six model-calling executions, each at least once, and for nothing else
        assert.sameMembers([...final.keys()], [...labels.values()].flatMap(executionsOfRun))
        assert.sameMembers([...finishedAtEnd], [...labels.values()].flatMap(executionsOfRun))
        assert.deepStrictEqual(problems, [])
        assert.strictEqual(duplicated, 0)
        // the kills landed while nodes ran, or the test proved nothing
        assert.isAbove(midNode, 0, "no kill cut a node off")
      }),
    150_000
  )

  it.scopedLive(
    "a second service on the same data directory is refused, naming the directory and the holder",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir()
        const env = { LOOM_DATA_DIR: dir, TMPDIR: dir, LOOM_LLM: "simulator" }
        const first = yield* service(env)
        assert.strictEqual(fs.readFileSync(path.join(dir, "loom.lock"), "utf8").trim(), String(first.pid))

        const second = yield* loom({ ...env, LOOM_PORT: "0" })
        const code = yield* exited(second.child).pipe(
          Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => "the second service did not exit" }),
          Effect.orDie
        )
        assert.isNotNull(code, second.output())
        assert.notStrictEqual(code, 0, second.output())
        assert.notMatch(second.output(), /Loom listening/)
        assert.include(
          second.output(),
          `LOOM_DATA_DIR=${path.resolve(dir)}: in use by another Loom process (pid ${first.pid})`
        )

        console.log(
          `durable lock: second service exited ${code}: ` +
            (second.output().split("\n").find((line) => line.includes("in use by another Loom process")) ?? "")
        )

        // the first keeps serving, its engine and store untouched: a run on it still finishes
        assert.deepStrictEqual((yield* json(`${first.url}/health/live`)).body, { status: "ok" })
        assert.strictEqual((yield* json(`${first.url}/v1/runs`)).status, 200)
        const started = yield* post(`${first.url}/v1/runs`, {
          kind: "workflow",
          name: "coding",
          input: CountingOllama.task("lock")
        })
        assert.strictEqual(started.status, 202, JSON.stringify(started.body))
        yield* allFinished(first, [(started.body as { threadId: string }).threadId], "30 seconds")
        assert.strictEqual(fs.readFileSync(path.join(dir, "loom.lock"), "utf8").trim(), String(first.pid))
        assert.strictEqual(yield* stop(first), 0, first.output())
        assert.isFalse(fs.existsSync(path.join(dir, "loom.lock")), "the lock outlived its holder's shutdown")
      }),
    60_000
  )

  it.scopedLive(
    "a run cut off by Ctrl-C in `loom run workflow` is resumed by the service started next on that data dir",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir()
        const chats = ledger()
        const ollama = yield* CountingOllama.make({
          script: codingScript,
          chat: { latency: { min: 150, max: 300 } },
          seed: 7,
          onChat: chats.onChat
        })
        const env = { LOOM_DATA_DIR: dir, TMPDIR: dir, LOOM_LLM: "ollama", OLLAMA_HOSTS: ollama.url }

        const cli = yield* loom(env, "run", "workflow", "coding", CountingOllama.task("cli"))
        yield* waitFor(cli, () => /step 2 {2}test_writer …/.test(cli.stdout()), "the CLI to reach step 2")
        process.kill(cli.pid, "SIGINT")
        const code = yield* exited(cli.child).pipe(
          Effect.timeoutFail({
            duration: "20 seconds",
            onTimeout: () => `Ctrl-C did not end the CLI:\n${cli.output()}`
          }),
          Effect.orDie
        )
        assert.strictEqual(code, 0, cli.output())
        const found = /loom: interrupted; run ([0-9a-f-]{36}) is kept at its last checkpoint/.exec(cli.stderr())
        assert.isNotNull(found, cli.output())
        const threadId = found![1]!
        const labels = new Map([[threadId, "cli"]])

        const cut = yield* readStore(dir)
        const finishedThen = finishedExecutions(cut.finished, labels)
        const arrivedThen = chats.snapshot()
        assert.strictEqual(cut.statuses.get(threadId), "interrupted")
        assert.includeMembers([...finishedThen], ["cli|intent#1", "cli|planner#1"])
        assert.notInclude([...finishedThen], "cli|reviewer#1")

        const running = yield* service(env)
        yield* allFinished(running, [threadId], "60 seconds")
        checkHistory(threadId, yield* historyOf(running.url, threadId), codingNodes)
        assert.include(running.output(), `resuming run ${threadId}`)
        assert.strictEqual(yield* stop(running), 0, running.output())

        const final = chats.snapshot()
        assert.deepStrictEqual(chats.unplaced, [])
        assert.sameMembers([...final.keys()], executionsOfRun("cli"))
        for (const key of finishedThen) {
          assert.strictEqual(final.get(key), arrivedThen.get(key), `${key}, finished before Ctrl-C, ran again`)
        }
        const odd = [...oddLines(cli.output()), ...oddLines(running.output())]
        console.log(
          `durable Ctrl-C: run ${threadId} interrupted after ${finishedThen.size} model-calling nodes, ` +
            `finished by the service; ${[...final.values()].reduce((n, c) => n + c, 0)} chat requests ` +
            `for ${final.size} executions` + (odd.length > 0 ? `\n${odd.slice(0, 20).join("\n")}` : "")
        )
      }),
    90_000
  )
})
