/**
 * A run waiting for a person on a cluster (`npm run test:cluster`): three runners of one
 * @effect/cluster on a real Postgres (test/support/LoomCluster.ts), each with an Ollama
 * simulator of its own in this process. A `review` run writes its draft on the runner
 * holding its shard, then waits on two people at once (the `editor` and `legal` nodes each
 * ask the `approval` interrupt). That runner is killed -9 while the run waits; once its
 * shards have moved to the survivors, both interrupts are resumed through survivors' APIs:
 * the run finishes there, with a whole history, and the draft is not written again.
 *
 * A second cluster: three such runs, and their holder (the first run's) killed -9; every
 * interrupt is resumed at once, before the shards move. The resumes are accepted (200),
 * the dead runner's runs go on once a survivor has taken their shards over (the
 * messages wait in Postgres), the others at once; the test records when each went on.
 *
 * Which runner executed the draft: the one whose own simulator answered a chat
 * (`loom_llm_requests_total{operation="chat"}` in its `/metrics`; each runner talks to its
 * simulator only). How often the draft was written, over all runners: the chats of the
 * run's topic that reached any simulator (the cluster's ledger keeps chats of no coding
 * run in `unplaced`, with their user message).
 */
import { assert, layer } from "@effect/vitest"
import { Clock, Duration, Effect, Schedule } from "effect"
import * as History from "../support/History.js"
import type { Runner } from "../support/LoomCluster.js"
import * as LoomCluster from "../support/LoomCluster.js"
import { json, post } from "../support/Service.js"

interface Waiting {
  readonly step: number
  readonly node: string
  readonly name: string
  readonly key: string
}

interface Run {
  readonly threadId?: string
  readonly status?: string
  readonly waiting?: ReadonlyArray<Waiting>
}

interface EventData {
  readonly step?: number
  readonly node?: string
  readonly key?: string
  readonly state?: {
    readonly round: number
    readonly reviews: ReadonlyArray<unknown>
  }
}

const topic = "tidal bores (waiting-moves)"
const key = (node: string) => `1/${node}/approval/0`
const keys = [key("editor"), key("legal")]

const inspect = (runner: Runner, threadId: string) =>
  Effect.map(json(`${runner.url}/v1/runs/${threadId}`), (reply) => ({ status: reply.status, run: reply.body as Run }))

const waitsOnBoth = (run: Run) =>
  run.status === "waiting" && (run.waiting ?? []).map((w) => w.key).sort().join() === keys.join()

/** Chats answered by `runner`'s own simulator, from its `/metrics`. */
const chatsAnswered = (runner: Runner) =>
  Effect.map(json(`${runner.url}/metrics`), (reply) =>
    String(reply.body).split("\n")
      .filter((line) => line.startsWith("loom_llm_requests_total{") && line.includes(`operation="chat"`))
      .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0))

/** The draft chats of this file's run that reached any simulator, as the ledger's unplaced entries. */
const drafts = (cluster: LoomCluster.Service) => cluster.ledger.unplaced().filter((chat) => chat.includes(topic)).length

/** Granted advisory locks (the shard locks) per Postgres backend, largest first. */
const shardLocks = (cluster: LoomCluster.Service) =>
  Effect.map(
    cluster.sql<{ readonly pid: number; readonly locks: string }>`
      SELECT pid, count(*) AS locks FROM pg_locks WHERE locktype = 'advisory' AND granted GROUP BY pid`,
    (rows) => rows.map((row) => Number(row.locks)).sort((a, b) => b - a)
  ).pipe(Effect.orDie)

/** Polls `check` every `every` until it holds, or dies with `what` and `detail()` after `within`. */
const waitUntil = (
  check: Effect.Effect<boolean>,
  what: string,
  within: Duration.DurationInput,
  detail: () => string = () => "",
  every: Duration.DurationInput = "100 millis"
) =>
  check.pipe(
    Effect.filterOrFail((ok) => ok, () => "not yet"),
    Effect.retry(Schedule.spaced(every)),
    Effect.timeoutFail({ duration: within, onTimeout: () => "timed out" }),
    Effect.catchAll(() => Effect.dieMessage(`${what}: not within ${Duration.format(within)}\n${detail()}`))
  )

/** The runners among `among` that logged a replay of `threadId` (RunManager logs each start of a saved run's execution). */
const replayedBy = (among: ReadonlyArray<Runner>, threadId: string) =>
  among.filter((runner) => runner.output().includes(`resuming run ${threadId} (review)`))

/** Lines of the runners' logs worth a look: warnings, errors, defects. */
const oddLines = (output: string) => output.split("\n").filter((line) => /WARN|ERROR|FATAL|defect|Error:/i.test(line))

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

layer(LoomCluster.layer({ runners: 3, latency: { min: 150, max: 250 } }), {
  excludeTestServices: true,
  timeout: "180 seconds"
})("a waiting run on a cluster of three runners sharing one Postgres", (it) => {
  it.scoped(
    "a run waiting for a person survives the death of the runner that held it",
    () =>
      Effect.gen(function*() {
        const cluster = yield* LoomCluster.Cluster
        const { runners } = cluster
        const began = yield* Clock.currentTimeMillis
        const [a] = runners
        const started = yield* post(`${a!.url}/v1/runs`, { kind: "workflow", name: "review", input: topic })
        assert.strictEqual(started.status, 202, JSON.stringify(started.body))
        const threadId = (started.body as { threadId: string }).threadId

        // the draft is written, then the run waits on both reviewers
        let last: Run = {}
        yield* waitUntil(
          Effect.map(inspect(a!, threadId), (reply) => waitsOnBoth(last = reply.run)),
          "the run to wait on both reviewers",
          "60 seconds",
          () => `${JSON.stringify(last)}\n${cluster.output().slice(-10_000)}`
        )
        const waitingAt = yield* Clock.currentTimeMillis
        assert.strictEqual(drafts(cluster), 1, `draft chats: ${JSON.stringify(cluster.ledger.unplaced())}`)

        // the runner that executed it: the one whose simulator answered the draft
        const answered = yield* Effect.forEach(runners, chatsAnswered)
        assert.deepStrictEqual([...answered].sort(), [0, 0, 1], `chats answered per runner: ${answered.join("/")}`)
        const victim = runners[answered.indexOf(1)]!
        const survivors = runners.filter((runner) => runner !== victim)
        const locksBefore = yield* shardLocks(cluster)
        const shards = locksBefore.reduce((sum, n) => sum + n, 0)

        // kill -9 while the run waits
        const killedAt = yield* Clock.currentTimeMillis
        yield* LoomCluster.crash(victim)
        assert.isFalse(victim.alive())

        // the run is still waiting on both, through each survivor (its record is in Postgres)
        for (const survivor of survivors) {
          const seen = yield* inspect(survivor, threadId)
          assert.strictEqual(seen.status, 200, JSON.stringify(seen.run))
          assert.isTrue(waitsOnBoth(seen.run), `through ${survivor.name}: ${JSON.stringify(seen.run)}`)
        }

        // the dead runner's shards move: two backends hold all of them
        let locks: ReadonlyArray<number> = []
        yield* waitUntil(
          Effect.map(shardLocks(cluster), (now) => {
            locks = now
            return now.length === 2 && now.reduce((sum, n) => sum + n, 0) >= shards
          }),
          "the dead runner's shards to move to the survivors",
          "60 seconds",
          () => `locks before ${locksBefore.join("/")}, now ${locks.join("/")}\n${cluster.output().slice(-10_000)}`,
          "250 millis"
        )
        const movedAt = yield* Clock.currentTimeMillis
        // a run that waits has nothing to do: taking its shard over need not replay it (recorded, not required)
        const replayedOnMove = replayedBy(survivors, threadId).map((runner) => runner.name)

        // both people answer, each through another survivor
        const [s1, s2] = survivors
        const editor = yield* post(`${s1!.url}/v1/runs/${threadId}/resume`, {
          interrupt: key("editor"),
          value: { approved: true }
        })
        const editorAt = yield* Clock.currentTimeMillis
        assert.strictEqual(editor.status, 200, JSON.stringify(editor.body))
        const legal = yield* post(`${s2!.url}/v1/runs/${threadId}/resume`, {
          interrupt: key("legal"),
          value: { approved: true, note: "fine by legal" }
        })
        const resumedAt = yield* Clock.currentTimeMillis
        assert.strictEqual(legal.status, 200, JSON.stringify(legal.body))

        // the run finishes on a survivor: polled through both, up to 60 s
        const statuses: Array<string> = []
        yield* waitUntil(
          Effect.map(Effect.forEach(survivors, (survivor) => inspect(survivor, threadId)), (replies) => {
            // status[what it waits on] through each survivor
            const now = replies.map((reply) =>
              `${reply.run.status}[${(reply.run.waiting ?? []).map((w) => w.key.split("/")[1]).join(",")}]`
            ).join("/")
            if (statuses.at(-1) !== now) statuses.push(now)
            return replies.every((reply) => reply.run.status === "finished")
          }),
          "the run to finish after both resumes",
          "60 seconds",
          () =>
            `statuses through ${survivors.map((s) => s.name).join("/")}: ${statuses.join(" -> ")}\n` +
            cluster.output().slice(-20_000),
          "250 millis"
        )
        const finishedAt = yield* Clock.currentTimeMillis
        // it went on on a survivor: its execution was started there again
        const continuedOn = replayedBy(survivors, threadId)
        assert.isAbove(continuedOn.length, 0, `no survivor replayed the run:\n${cluster.output().slice(-10_000)}`)

        // the history: whole, one draft (step 0) and both reviews at step 1, each once; both resumes stored
        const events = yield* History.historyOf<EventData>(s1!.url, threadId)
        History.checkHistory(threadId, events)
        const finished = events.filter((e) => e.event === "NodeFinished").map((e) => `${e.data.step}:${e.data.node}`)
        assert.sameMembers(finished, ["0:draft", "1:editor", "1:legal"])
        assert.deepStrictEqual(events.filter((e) => e.event === "Interrupted").map((e) => e.data.key).sort(), keys)
        assert.deepStrictEqual(
          events.filter((e) => e.event === "Resumed").map((e) => e.data.key),
          [key("editor"), key("legal")]
        )
        const state = events.at(-1)!.data.state!
        assert.strictEqual(state.round, 1)
        assert.sameDeepMembers<unknown>([...state.reviews], [
          { round: 1, reviewer: "editor", approved: true },
          { round: 1, reviewer: "legal", approved: true, note: "fine by legal" }
        ])

        // the draft was not written again: one draft chat in all, none by a survivor
        assert.strictEqual(drafts(cluster), 1, `draft chats: ${JSON.stringify(cluster.ledger.unplaced())}`)
        assert.deepStrictEqual(yield* Effect.forEach(survivors, chatsAnswered), [0, 0], "chats answered by survivors")

        const odd = oddLines(survivors.map((s) => s.output()).join(""))
        console.log(
          `waiting run moved: draft on ${victim.name}, waiting after ${seconds(waitingAt - began)}; ${victim.name} ` +
            `killed -9; shards moved (locks ${locksBefore.join("/")} -> ${locks.join("/")}) ` +
            `${seconds(movedAt - killedAt)} after the kill; resumes through ${s1!.name} (${
              seconds(editorAt - movedAt)
            }) and ${s2!.name} (${seconds(resumedAt - editorAt)}); finished ${
              seconds(finishedAt - resumedAt)
            } after the last resume, ${seconds(finishedAt - killedAt)} after the kill (statuses ${
              statuses.join(" -> ")
            }); replayed on ${continuedOn.map((runner) => runner.name).join("+")} (before the resumes: ${
              replayedOnMove.join("+") || "none"
            })` + (odd.length > 0 ? `\nsurvivors' odd log lines:\n${odd.slice(0, 30).join("\n")}` : "")
        )
      }),
    300_000
  )
})

/** Waits until `threadId` waits on both reviewers, through `runner`. */
const untilWaiting = (cluster: LoomCluster.Service, runner: Runner, threadId: string) => {
  let last: Run = {}
  return waitUntil(
    Effect.map(inspect(runner, threadId), (reply) => waitsOnBoth(last = reply.run)),
    `${threadId} to wait on both reviewers`,
    "60 seconds",
    () => `${JSON.stringify(last)}\n${cluster.output().slice(-10_000)}`
  )
}

layer(LoomCluster.layer({ runners: 3, latency: { min: 150, max: 250 } }), {
  excludeTestServices: true,
  timeout: "180 seconds"
})("a waiting run on a cluster whose holder dies, answered at once", (it) => {
  it.scoped(
    "resumes posted right after the holder's kill, before its shards move, are kept: the run finishes on a survivor",
    () =>
      Effect.gen(function*() {
        const cluster = yield* LoomCluster.Cluster
        const { runners } = cluster
        const [a] = runners
        // three runs, one at a time, each placed by the runner whose simulator answered its draft
        const placed: Array<{ readonly threadId: string; readonly topic: string; readonly runner: Runner }> = []
        for (let i = 1; i <= 3; i++) {
          const title = `${topic} #${i}`
          const before = yield* Effect.forEach(runners, chatsAnswered)
          const started = yield* post(`${a!.url}/v1/runs`, { kind: "workflow", name: "review", input: title })
          assert.strictEqual(started.status, 202, JSON.stringify(started.body))
          const threadId = (started.body as { threadId: string }).threadId
          yield* untilWaiting(cluster, a!, threadId)
          const after = yield* Effect.forEach(runners, chatsAnswered)
          const by = runners.filter((_, r) => after[r]! > before[r]!)
          assert.strictEqual(by.length, 1, `${threadId}: chats answered ${before.join("/")} -> ${after.join("/")}`)
          placed.push({ threadId, topic: title, runner: by[0]! })
        }
        const victim = placed[0]!.runner
        const survivors = runners.filter((runner) => runner !== victim)
        const [s1, s2] = survivors
        const shards = (yield* shardLocks(cluster)).reduce((sum, n) => sum + n, 0)

        const killedAt = yield* Clock.currentTimeMillis
        yield* LoomCluster.crash(victim)
        // at once: every run's editor through one survivor and its legal through the other
        const answers: Array<string> = []
        for (const run of placed) {
          for (const [node, via] of [["editor", s1!], ["legal", s2!]] as const) {
            const sent = yield* Clock.currentTimeMillis
            const reply = yield* post(`${via.url}/v1/runs/${run.threadId}/resume`, {
              interrupt: key(node),
              value: { approved: true }
            }).pipe(
              Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => `${node} of ${run.threadId}: no answer` }),
              Effect.orDie
            )
            const took = (yield* Clock.currentTimeMillis) - sent
            answers.push(`${run.threadId}(${run.runner.name}) ${node} via ${via.name}: ${reply.status} in ${took} ms`)
            assert.strictEqual(reply.status, 200, `${answers.at(-1)}: ${JSON.stringify(reply.body)}`)
          }
        }
        const answeredAt = yield* Clock.currentTimeMillis

        // each run finishes: polled through the survivors every 250 ms up to 60 s; when the shards moved, as well
        const finishedAt = new Map<string, number>()
        const replayedAt = new Map<string, number>()
        let movedAt: number | undefined
        let statuses = ""
        yield* waitUntil(
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            if (movedAt === undefined) {
              const locks = yield* shardLocks(cluster)
              if (locks.length === 2 && locks.reduce((sum, n) => sum + n, 0) >= shards) movedAt = now
            }
            const replies = yield* Effect.forEach(placed, (run, i) => inspect(survivors[i % 2]!, run.threadId))
            for (const run of placed) {
              if (!replayedAt.has(run.threadId) && replayedBy(survivors, run.threadId).length > 0) {
                replayedAt.set(run.threadId, now)
              }
            }
            statuses = replies.map((reply, i) => `${placed[i]!.threadId}=${reply.run.status}`).join(" ")
            replies.forEach((reply, i) => {
              if (reply.run.status === "finished" && !finishedAt.has(placed[i]!.threadId)) {
                finishedAt.set(placed[i]!.threadId, now)
              }
            })
            return finishedAt.size === placed.length
          }),
          "every run to finish after resumes given right after the kill",
          "60 seconds",
          () =>
            `${statuses}; shards moved ${movedAt === undefined ? "not yet" : seconds(movedAt - killedAt)}\n` +
            `${answers.join("\n")}\n${cluster.output().slice(-20_000)}`,
          "250 millis"
        )

        for (const run of placed) {
          const events = yield* History.historyOf<EventData>(s1!.url, run.threadId)
          History.checkHistory(run.threadId, events)
          assert.sameMembers(
            events.filter((e) => e.event === "NodeFinished").map((e) => `${e.data.step}:${e.data.node}`),
            ["0:draft", "1:editor", "1:legal"],
            run.threadId
          )
          assert.strictEqual(
            cluster.ledger.unplaced().filter((chat) => chat.includes(run.topic)).length,
            1,
            `${run.threadId}: draft chats`
          )
        }
        const odd = oddLines(survivors.map((s) => s.output()).join(""))
        console.log(
          `resumes right after the kill of ${victim.name} (runs ${
            placed.map((run) => `${run.threadId} on ${run.runner.name}`).join(", ")
          }): answered in ${seconds(answeredAt - killedAt)}\n  ${answers.join("\n  ")}\nshards moved ${
            movedAt === undefined ? "(not seen)" : seconds(movedAt - killedAt)
          } after the kill; after the kill, each run replayed on a survivor / finished: ${
            placed.map((run) =>
              `${run.threadId} (${run.runner.name}) ${seconds((replayedAt.get(run.threadId) ?? NaN) - killedAt)} / ${
                seconds(finishedAt.get(run.threadId)! - killedAt)
              }`
            ).join(", ")
          }` + (odd.length > 0 ? `\nsurvivors' odd log lines:\n${odd.slice(0, 30).join("\n")}` : "")
        )
      }),
    300_000
  )
})
