/**
 * Loom as a cluster (`npm run test:cluster`): three service processes, each one runner of
 * an @effect/cluster on one real Postgres (`LOOM_DATABASE_URL`, a `LOOM_RUNNER_ADDRESS`
 * each), all on loopback. Each runner talks to an Ollama simulator of its own in this
 * process, which records every chat request as it arrives: the run it is for (its task
 * text), the node (its system prompt) and the runner that sent it (whose simulator got
 * it). So the test knows which runner executed which node of which run, and how often.
 *
 * - Any runner's API serves any run: a run started through A is followed and inspected
 *   through B and cancelled through C, and stays cancelled.
 * - 30 coding runs started round-robin through the three APIs; once a third of their nodes
 *   have finished, the runner executing most of them is killed -9. Its shards move to the
 *   survivors, which resume its runs from their last finished node: every run finishes,
 *   every history is whole (gapless ids, no (step, node) finished twice), no node whose
 *   NodeFinished was stored before the kill asks the model again, and the dead runner's
 *   runs finish on the others.
 */
import { assert, layer } from "@effect/vitest"
import { Clock, Duration, Effect, Schedule } from "effect"
import { task } from "../support/CountingOllama.js"
import { checkHistory, codingNodes, historyOf, parseEvents } from "../support/History.js"
import type { Chat, Runner } from "../support/LoomCluster.js"
import * as LoomCluster from "../support/LoomCluster.js"
import { countsOf, modelSteps } from "../support/LoomCluster.js"
import { isAlive } from "../support/Pids.js"
import { json, post } from "../support/Service.js"

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

const startRun = (runner: Runner, label: string) =>
  post(`${runner.url}/v1/runs`, { kind: "workflow", name: "coding", input: task(label), threadId: label })

interface RunBody {
  readonly threadId?: string
  readonly status?: string
  readonly workflow?: string
  readonly step?: number
}

const inspect = (runner: Runner, id: string) =>
  Effect.map(json(`${runner.url}/v1/runs/${id}`), (reply) => ({ status: reply.status, run: reply.body as RunBody }))

/**
 * A run followed over SSE as it goes: the events read so far, and whether the stream has
 * ended. The request is aborted when the scope closes.
 */
const follow = (runner: Runner, id: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const abort = new AbortController()
      let text = ""
      let ended = false
      const done = fetch(`${runner.url}/v1/runs/${id}/events`, { signal: abort.signal }).then(async (response) => {
        const reader = response.body!.getReader()
        const decoder = new TextDecoder()
        for (let read = await reader.read(); !read.done; read = await reader.read()) {
          text += decoder.decode(read.value, { stream: true })
        }
        ended = true
      }).catch(() => {
        ended = true
      })
      return {
        abort,
        done,
        events: () => parseEvents(text.slice(0, text.lastIndexOf("\n\n") + 2)),
        ended: () => ended
      }
    }),
    (followed) => Effect.sync(() => followed.abort.abort())
  )

/** Polls `check` every 100 ms until it holds, or dies with `what` and `detail()` after `within`. */
const waitUntil = (
  check: Effect.Effect<boolean>,
  what: string,
  within: Duration.DurationInput,
  detail: () => string = () => ""
) =>
  check.pipe(
    Effect.filterOrFail((ok) => ok, () => "not yet"),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeoutFail({ duration: within, onTimeout: () => "timed out" }),
    Effect.catchAll(() => Effect.dieMessage(`${what}: not within ${Duration.format(within)}\n${detail()}`))
  )

// ---------------------------------------------------------------------------------------------
// the store, read behind the runners' back
// ---------------------------------------------------------------------------------------------

interface StoreState {
  /** Status and `updated_at` (ms) per run. */
  readonly runs: Map<string, { readonly status: string; readonly updatedAt: number }>
  /** `label|step` of every NodeFinished stored. */
  readonly finished: Set<string>
}

const readStore = (cluster: LoomCluster.Service) =>
  Effect.gen(function*() {
    const sql = cluster.sql
    const runs = yield* sql<{ readonly thread_id: string; readonly status: string; readonly updated_at: string }>`
      SELECT thread_id, status, updated_at FROM loom_runs`
    const finished = yield* sql<{ readonly thread_id: string; readonly step: number; readonly node: string }>`
      SELECT thread_id, (event::json->>'step')::int AS step, event::json->>'node' AS node
      FROM loom_events WHERE event::json->>'_tag' = 'NodeFinished'`
    return {
      runs: new Map(runs.map((row) => [row.thread_id, { status: row.status, updatedAt: Number(row.updated_at) }])),
      finished: new Set(finished.map((row) => `${row.thread_id}|${row.step}`))
    } satisfies StoreState
  }).pipe(Effect.orDie)

/** Lines of the runners' logs worth a look: warnings, errors, defects. */
const oddLines = (output: string) => output.split("\n").filter((line) => /WARN|ERROR|FATAL|defect|Error:/i.test(line))

const RUNS = 30
const labels = Array.from({ length: RUNS }, (_, i) => `cluster-${String(i + 1).padStart(2, "0")}`)

/** Chats of `label`, in order of arrival. */
const chatsOf = (chats: ReadonlyArray<Chat>, label: string) => chats.filter((chat) => chat.label === label)

layer(LoomCluster.layer({ runners: 3, latency: { min: 150, max: 250 }, env: { LOOM_MAX_RUNS: "64" } }), {
  excludeTestServices: true,
  timeout: "180 seconds"
})("Loom on a cluster of three runners sharing one Postgres", (it) => {
  it.scoped(
    "a run started through A is followed and inspected through B, and cancelled through C",
    () =>
      Effect.gen(function*() {
        const cluster = yield* LoomCluster.Cluster
        const a = cluster.runners[0]!
        const id = "cancel-1"
        const started = yield* startRun(a, id)
        assert.strictEqual(started.status, 202, JSON.stringify(started.body))

        // the run executes on the runner holding its shard: the one whose simulator gets its chats
        yield* waitUntil(
          Effect.sync(() => chatsOf(cluster.ledger.chats(), id).length > 0),
          "the run's first chat",
          "30 seconds",
          cluster.output
        )
        const executor = cluster.runners[chatsOf(cluster.ledger.chats(), id)[0]!.runner]!
        // B follows and inspects, C cancels: C is not the executor, so the cancel goes from one runner to another
        const others = cluster.runners.filter((runner) => runner !== a)
        const c = others.find((runner) => runner !== executor)!
        const b = others.find((runner) => runner !== c)!

        const followed = yield* follow(b, id)
        yield* waitUntil(
          Effect.sync(() => followed.events().some((e) => e.event === "NodeFinished" && e.data.node === "planner")),
          "B's stream to show the planner finished",
          "30 seconds",
          () => JSON.stringify(followed.events()) + cluster.output()
        )
        const seen = yield* inspect(b, id)
        assert.strictEqual(seen.status, 200, JSON.stringify(seen.run))
        assert.strictEqual(seen.run.status, "running")
        assert.strictEqual(seen.run.workflow, "coding")

        const cancelled = yield* post(`${c.url}/v1/runs/${id}/cancel`)
        const cancelledAt = yield* Clock.currentTimeMillis
        const atCancel = chatsOf(cluster.ledger.chats(), id).length
        assert.strictEqual(cancelled.status, 200, JSON.stringify(cancelled.body))
        assert.strictEqual((cancelled.body as RunBody).status, "cancelled")

        // B's stream ends with the run, without a WorkflowFinished
        yield* waitUntil(
          Effect.sync(followed.ended),
          "B's stream to end after the cancel",
          "10 seconds",
          () => JSON.stringify(followed.events())
        )
        const events = followed.events()
        assert.deepStrictEqual(events.map((e) => e.id), events.map((_, i) => i + 1), "B's stream: ids with a gap")
        assert.notInclude(events.map((e) => e.event), "WorkflowFinished")

        // Long enough for the rest of the run (about 2 s of chats and test runs) had it not stopped.
        yield* Effect.sleep("5 seconds")
        for (const runner of cluster.runners) {
          const after = yield* inspect(runner, id)
          assert.strictEqual(after.run.status, "cancelled", `status through ${runner.name}`)
        }
        const chats = chatsOf(cluster.ledger.chats(), id)
        const late = chats.slice(atCancel)
        console.log(
          `cancel: run ${id} started through ${a.name}, executed by ${executor.name}, followed and inspected through ` +
            `${b.name}, cancelled through ${c.name} after ${atCancel} chat(s); ${late.length} chat(s) after the cancel ` +
            `answered${
              late.length === 0
                ? ""
                : `: ${late.map((chat) => `step ${chat.step} at +${chat.at - cancelledAt} ms`).join(", ")}`
            }`
        )
        // What "no further node requests" can mean here. C marks the run cancelled in the store and answers; the
        // executor is another process, which learns of it at its next look at the run's status (RunManager's
        // `cancelEvery`, every second) and then interrupts the run, node in flight and all (that node's chat request
        // is aborted). The chat of the node in flight at the cancel was sent, and counted, before the cancel; but
        // until the executor looks, the run goes on: that node may finish and the next one send its chat. So the
        // bound is in time: no chat later than that second after the cancel (plus 1 s for a loaded machine), none
        // at all after it. In one second of a coding run (150-250 ms chats, a test run of a few hundred ms between
        // the coder's rounds) that is at most two new chats: the next node's, and one more after a quick test run.
        const window = 2_000
        assert.deepStrictEqual(
          late.filter((chat) => chat.at - cancelledAt > window).map((chat) =>
            `step ${chat.step} at +${chat.at - cancelledAt} ms`
          ),
          [],
          "chats after the executor must have seen the cancel"
        )
        assert.isAtMost(late.length, 2, "chats started after the cancel")
      }),
    120_000
  )

  it.scoped(
    "kill -9 of the runner holding the most runs mid-way: its runs finish on the others, no finished node runs again",
    () =>
      Effect.gen(function*() {
        const cluster = yield* LoomCluster.Cluster
        const began = yield* Clock.currentTimeMillis
        const { ledger, runners } = cluster
        assert.isTrue(runners.every((runner) => runner.alive()), "all three runners up")

        // 30 runs, round-robin through the three APIs
        yield* Effect.forEach(labels, (label, i) =>
          Effect.map(startRun(runners[i % runners.length]!, label), (reply) => {
            assert.strictEqual(reply.status, 202, `${label}: ${JSON.stringify(reply.body)}`)
            assert.strictEqual((reply.body as RunBody).threadId, label)
          }), { concurrency: 6, discard: true })
        const finishesOf = (state: StoreState) =>
          [...state.finished].filter((key) => labels.includes(key.slice(0, key.indexOf("|")))).length

        // mid-way: a third of the 30 × 8 nodes finished
        const third = (RUNS * codingNodes.length) / 3
        yield* waitUntil(
          Effect.map(readStore(cluster), (state) => finishesOf(state) >= third),
          `${third} nodes finished`,
          "90 seconds",
          cluster.output
        )

        // the victim: the runner with the most unfinished runs, by where each run's last chat went
        const before = yield* readStore(cluster)
        const lastRunner = (chats: ReadonlyArray<Chat>, label: string) => chatsOf(chats, label).at(-1)?.runner
        const holding = (chats: ReadonlyArray<Chat>, state: StoreState, runner: number) =>
          labels.filter((label) => state.runs.get(label)?.status !== "finished" && lastRunner(chats, label) === runner)
        const load = runners.map((runner) => holding(ledger.chats(), before, runner.index).length)
        const victim = runners[load.indexOf(Math.max(...load))]!
        const survivors = runners.filter((runner) => runner !== victim)

        const killedAt = yield* Clock.currentTimeMillis
        yield* LoomCluster.crash(victim)
        // what the dead process had sent is read at the simulator's door before counting
        yield* Effect.sleep("200 millis")
        // the store first, the chats after: a node finished in the store had all its chats counted by then
        const atKill = yield* readStore(cluster)
        const chatsAtKill = ledger.chats()
        const countsAtKill = countsOf(chatsAtKill)
        const held = holding(chatsAtKill, atKill, victim.index)
        const finishedAtKill = [...atKill.finished].filter((key) => labels.includes(key.slice(0, key.indexOf("|"))))
        assert.isAbove(held.length, 0, `the victim ${victim.name} held no unfinished run (load ${load.join("/")})`)
        assert.isFalse(victim.alive())

        // every run finishes, through the survivors (one inspected through each, in turn)
        let statuses: ReadonlyArray<string> = []
        yield* waitUntil(
          Effect.map(
            Effect.forEach(labels, (label, i) => inspect(survivors[i % survivors.length]!, label), { concurrency: 6 }),
            (replies) => {
              statuses = replies.map((reply) => `${reply.run.status}`)
              return statuses.every((status) => status === "finished")
            }
          ),
          "all 30 runs finished after the kill",
          "120 seconds",
          () =>
            `${labels.map((label, i) => `${label}=${statuses[i]}`).join(" ")}\nheld by ${victim.name}: ${
              held.join(" ")
            }\n` +
            cluster.output().slice(-20_000)
        )
        const end = yield* readStore(cluster)

        // each run's stored history, through a survivor: whole, each (step, node) finished once, in order
        for (const [i, label] of labels.entries()) {
          checkHistory(label, yield* historyOf(survivors[i % survivors.length]!.url, label), codingNodes)
        }

        const chats = ledger.chats().filter((chat) => labels.includes(chat.label))
        const counts = countsOf(chats)
        assert.deepStrictEqual(ledger.unplaced(), [], "chats of no known run and node")
        // every model-calling node of every run asked the model, and nothing else was asked
        assert.sameMembers(
          [...counts.keys()],
          labels.flatMap((label) => modelSteps.map((step) => `${label}|${step}`)),
          "(run, step) pairs that chatted"
        )

        // no finished node ran again: a model-calling (run, step) whose NodeFinished was stored at the kill has as
        // many chats now as then
        const checked = finishedAtKill.filter((key) => counts.has(key))
        const again = checked.filter((key) => counts.get(key) !== countsAtKill.get(key))
        assert.deepStrictEqual(
          again.map((key) => `${key}: ${countsAtKill.get(key)} at the kill, ${counts.get(key)} at the end`),
          [],
          "nodes finished before the kill that asked the model again"
        )
        assert.isAbove(checked.length, 0)

        // nothing came from the dead runner after it died
        assert.deepStrictEqual(
          chats.filter((chat) => chat.runner === victim.index && chat.at > killedAt + 200),
          [],
          "chats from the dead runner after the kill"
        )

        // the dead runner's runs were finished by the others: their nodes that had not asked the model at the kill
        // asked it afterwards, from a survivor only; each was resumed (the survivor's log says so)
        const moved = new Map<string, string>()
        for (const label of held) {
          const later = chats.filter((chat) => chat.label === label && chat.at > killedAt + 200)
          assert.isTrue(later.every((chat) => chat.runner !== victim.index), `${label}: a chat from the dead runner`)
          for (const step of modelSteps.filter((step) => !countsAtKill.has(`${label}|${step}`))) {
            assert.isAbove(
              later.filter((chat) => chat.step === step).length,
              0,
              `${label}: step ${step}, not started at the kill, never asked the model`
            )
          }
          // by one survivor, or (should its shard move again between them) by both
          const by = survivors.filter((runner) => runner.output().includes(`resuming run ${label} (coding) from step`))
          assert.isAbove(by.length, 0, `${label}: resumed by no survivor`)
          // where it finished: the runner of its last chat (the reviewer's)
          moved.set(label, runners[chatsOf(chats, label).at(-1)!.runner]!.name)
        }
        // at least one of them still had a node to run, on a survivor
        assert.isAbove(
          held.filter((label) => chats.some((chat) => chat.label === label && chat.at > killedAt + 200)).length,
          0,
          "no run of the dead runner asked the model again after the kill"
        )
        const lastMoved = Math.max(...held.map((label) => end.runs.get(label)!.updatedAt))
        const firstMovedChat = Math.min(
          ...chats.filter((chat) => held.includes(chat.label) && chat.at > killedAt + 200).map((chat) => chat.at)
        )
        const cutOff = [...counts].filter(([, n]) => n > 1)

        // teardown: the survivors stopped, and no runner process, or anything a runner started, left
        yield* Effect.forEach(survivors, LoomCluster.stop, { concurrency: "unbounded", discard: true })
        const left = runners.flatMap((runner) => [runner.pid, ...runner.started]).filter(isAlive)
        assert.deepStrictEqual(left, [], "processes left by the runners")

        const odd = oddLines(cluster.output())
        const ended = yield* Clock.currentTimeMillis
        console.log(
          `cluster: ${labels.length} runs started on ${runners.length} runners, ${
            labels.filter((label) => end.runs.get(label)?.status === "finished").length
          } finished; ${chats.length} node executions (chat requests) for ${counts.size} model-calling nodes; ` +
            `${again.length} duplicates of the ${checked.length} nodes finished before the kill; ` +
            `runner ${victim.name} killed -9 after ${finishedAtKill.length}/${RUNS * codingNodes.length} nodes ` +
            `(load A/B/C ${load.join("/")}), ${held.length} runs moved from it (${
              survivors.map((s) => `${[...moved.values()].filter((n) => n === s.name).length} to ${s.name}`).join(", ")
            }), ${cutOff.length} nodes cut off mid-chat asked again; first chat of a moved run ${
              ((firstMovedChat - killedAt) / 1000).toFixed(1)
            } s after the kill, last moved run finished ${
              ((lastMoved - killedAt) / 1000).toFixed(1)
            } s after the kill; all finished ${
              ((Math.max(...labels.map((l) => end.runs.get(l)!.updatedAt)) - killedAt) / 1000).toFixed(1)
            } s after it; test ${((ended - began) / 1000).toFixed(1)} s` +
            (odd.length > 0 ? `\n${odd.slice(0, 30).join("\n")}` : "")
        )
      }),
    300_000
  )
})
