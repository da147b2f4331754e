/**
 * Time travel over the real service and its SQLite store: a finished coding run's
 * checkpoints (`GET /v1/runs/:id/history`), a fork from one of them with part of its
 * state changed (`POST /v1/runs/:id/fork`), which runs to the end as a run of its own
 * and leaves the original exactly as it was, the fork's refusals, and the same through
 * `loom runs history` and `loom runs fork`.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { codingNodes, finishedNodes, gapless, parseEvents } from "../support/History.js"
import { exited, loom, service, tempDir } from "../support/Processes.js"
import { json, post, until } from "../support/Service.js"

class Service extends Context.Tag("test/TimeTravelService")<Service, { readonly url: string }>() {}

interface Entry {
  readonly step: number
  readonly next: ReadonlyArray<string>
  readonly state: { readonly plan: string; readonly task: string; readonly intent: string }
}

interface Run {
  readonly threadId: string
  readonly workflow: string
  readonly status: string
  readonly step: number
  readonly updatedAt: number
}

/** The data of the SSE events these tests read. */
interface SseData {
  readonly _tag?: string
  readonly step?: number
  readonly node?: string
}

/** The body of a GET as text, exactly as it came. */
const text = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, text: await response.text() }
  })

const getRun = (url: string, id: string) => Effect.map(json(`${url}/v1/runs/${id}`), (reply) => reply.body as Run)

const finished = (url: string, id: string) =>
  until(getRun(url, id), (run) => run.status !== "running" && run.status !== "queued")

const historyOf = (url: string, id: string) =>
  Effect.map(json(`${url}/v1/runs/${id}/history`), (reply) => {
    assert.strictEqual(reply.status, 200, JSON.stringify(reply.body))
    return reply.body as ReadonlyArray<Entry>
  })

/** A coding run on the simulator under `threadId`, run to its end. */
const codingRun = (url: string, threadId: string) =>
  Effect.gen(function*() {
    const started = yield* post(`${url}/v1/runs`, {
      kind: "workflow",
      name: "coding",
      input: "Write add(a, b)",
      threadId
    })
    assert.strictEqual(started.status, 202, JSON.stringify(started.body))
    const run = yield* finished(url, threadId)
    assert.strictEqual(run.status, "finished", JSON.stringify(run))
    return run
  })

/** What a fork request gets back. */
const fork = (url: string, id: string, body: unknown) => post(`${url}/v1/runs/${id}/fork`, body)

const body = (reply: { readonly body: unknown }) =>
  reply.body as {
    _tag?: string
    message?: string
    steps?: ReadonlyArray<number>
    field?: string
    threadId?: string
    issues?: ReadonlyArray<{ _tag: string; path: ReadonlyArray<string>; message: string }>
  }

/** `loom ...args` against the service, run to its exit. */
const cli = (...args: Array<string>) =>
  Effect.gen(function*() {
    const proc = yield* loom({ LOOM_DATA_DIR: "/nonexistent" }, ...args)
    const code = yield* exited(proc.child).pipe(Effect.timeout("30 seconds"), Effect.orDie)
    return { code, stdout: proc.stdout(), stderr: proc.stderr() }
  })

const steps = (entries: ReadonlyArray<Entry>) => entries.map((entry) => entry.step)

layer(
  Layer.scoped(
    Service,
    Effect.gen(function*() {
      const dir = yield* tempDir("loom-timetravel-")
      return yield* service({ LOOM_DATA_DIR: dir, LOOM_LLM: "simulator", TMPDIR: dir })
    })
  ),
  { excludeTestServices: true, timeout: "60 seconds" }
)("time travel: a run's history and forks from it", (it) => {
  it.effect("fork from step 2 leaves the original run's history unchanged", () =>
    Effect.gen(function*() {
      const { url } = yield* Service
      const original = "tt-original"
      yield* codingRun(url, original)

      const historyBefore = yield* text(`${url}/v1/runs/${original}/history`)
      assert.strictEqual(historyBefore.status, 200, historyBefore.text)
      const entries = JSON.parse(historyBefore.text) as ReadonlyArray<Entry>
      assert.deepStrictEqual(steps(entries), [1, 2, 3, 4, 5, 6, 7, 8])
      // each checkpoint's next is the node that ran at the following step; the last has none
      assert.deepStrictEqual(entries.map((entry) => entry.next), [...codingNodes.slice(1).map((n) => [n]), []])
      const eventsBefore = yield* text(`${url}/v1/runs/${original}/events`)
      assert.strictEqual(eventsBefore.status, 200)
      const sse = parseEvents<SseData>(eventsBefore.text)
      assert.isAbove(sse.length, 16)
      assert.isTrue(gapless(sse), "the SSE history is gapless")
      assert.deepStrictEqual(finishedNodes(sse), codingNodes)
      assert.strictEqual(sse[sse.length - 1]?.event, "WorkflowFinished")
      const recordBefore = yield* getRun(url, original)
      const step2 = entries.find((entry) => entry.step === 2)!
      assert.notStrictEqual(step2.state.plan, "a different plan")

      const forked = yield* fork(url, original, { step: 2, state: { plan: "a different plan" }, threadId: "tt-fork" })
      assert.strictEqual(forked.status, 202, JSON.stringify(forked.body))
      assert.strictEqual(body(forked).threadId, "tt-fork")
      const forkRun = yield* finished(url, "tt-fork")
      assert.strictEqual(forkRun.status, "finished", JSON.stringify(forkRun))
      assert.strictEqual(forkRun.workflow, "coding")

      const forkHistory = yield* historyOf(url, "tt-fork")
      assert.isAbove(forkHistory.length, 0)
      // it starts after step 2: its first step ran the node step 2 had next
      assert.strictEqual(forkHistory[0]!.step, 3)
      assert.deepStrictEqual(steps(forkHistory), forkHistory.map((_, i) => i + 3))
      assert.deepStrictEqual(forkHistory[forkHistory.length - 1]!.next, [])
      for (const entry of forkHistory) {
        assert.strictEqual(entry.state.plan, "a different plan", `step ${entry.step}`)
        assert.strictEqual(entry.state.task, step2.state.task)
        assert.strictEqual(entry.state.intent, step2.state.intent)
      }
      const forkEvents = parseEvents<SseData>((yield* text(`${url}/v1/runs/tt-fork/events`)).text)
      assert.isTrue(gapless(forkEvents), "the fork's SSE history is gapless")
      assert.deepStrictEqual(forkEvents[0], {
        id: 1,
        event: "NodeStarted",
        data: { _tag: "NodeStarted", step: 2, node: "test_writer" }
      })
      // it ran the nodes after step 2 only (on the simulator's script, as the original did)
      assert.deepStrictEqual(finishedNodes(forkEvents), codingNodes.slice(2))
      assert.strictEqual(forkEvents[forkEvents.length - 1]?.event, "WorkflowFinished")

      // the original, byte for byte
      const historyAfter = yield* text(`${url}/v1/runs/${original}/history`)
      assert.strictEqual(historyAfter.text, historyBefore.text)
      const eventsAfter = yield* text(`${url}/v1/runs/${original}/events`)
      assert.strictEqual(eventsAfter.text, eventsBefore.text)
      const recordAfter = yield* getRun(url, original)
      assert.deepStrictEqual(recordAfter, recordBefore)
      assert.strictEqual(recordAfter.status, "finished")
      assert.strictEqual(recordAfter.step, 8)
      assert.strictEqual(recordAfter.updatedAt, recordBefore.updatedAt)
    }))

  it.effect("a fork that cannot be: unknown step, a state that does not fit, extra or missing fields, an id in use, an unknown run", () =>
    Effect.gen(function*() {
      const { url } = yield* Service
      const original = "tt-refused"
      yield* codingRun(url, original)
      const runsBefore = (yield* json(`${url}/v1/runs`)).body as ReadonlyArray<Run>
      const recordBefore = yield* getRun(url, original)

      const noStep = yield* fork(url, original, { step: 99 })
      assert.strictEqual(noStep.status, 404, JSON.stringify(noStep.body))
      assert.strictEqual(body(noStep)._tag, "StepNotFound")
      assert.deepStrictEqual(body(noStep).steps, [1, 2, 3, 4, 5, 6, 7, 8])
      assert.include(body(noStep).message, "99")

      const misfit = yield* fork(url, original, { step: 2, state: { attempts: -1 } })
      assert.strictEqual(misfit.status, 400, JSON.stringify(misfit.body))
      assert.strictEqual(body(misfit)._tag, "InvalidForkState")
      assert.strictEqual(body(misfit).field, "state.attempts")
      assert.include(body(misfit).message, "state.attempts")

      const extra = yield* fork(url, original, { step: 2, extra: 1 })
      assert.strictEqual(extra.status, 400, JSON.stringify(extra.body))
      assert.strictEqual(body(extra)._tag, "HttpApiDecodeError")
      assert.deepStrictEqual(body(extra).issues?.map((issue) => [issue._tag, issue.path]), [["Unexpected", ["extra"]]])
      assert.include(body(extra).message, "extra")

      const missing = yield* fork(url, original, { state: { plan: "p" } })
      assert.strictEqual(missing.status, 400, JSON.stringify(missing.body))
      assert.strictEqual(body(missing)._tag, "HttpApiDecodeError")
      assert.deepStrictEqual(body(missing).issues?.map((issue) => [issue._tag, issue.path]), [["Missing", ["step"]]])
      assert.include(body(missing).message, "step")

      const taken = yield* fork(url, original, { step: 2, threadId: original })
      assert.strictEqual(taken.status, 409, JSON.stringify(taken.body))
      assert.strictEqual(body(taken)._tag, "RunExists")

      const unknown = yield* fork(url, "tt-no-such-run", { step: 2 })
      assert.strictEqual(unknown.status, 404, JSON.stringify(unknown.body))
      assert.strictEqual(body(unknown)._tag, "RunNotFound")
      const unknownHistory = yield* json(`${url}/v1/runs/tt-no-such-run/history`)
      assert.strictEqual(unknownHistory.status, 404, JSON.stringify(unknownHistory.body))
      assert.strictEqual(body(unknownHistory)._tag, "RunNotFound")

      // a refused fork starts nothing and touches nothing
      const runsAfter = (yield* json(`${url}/v1/runs`)).body as ReadonlyArray<Run>
      assert.deepStrictEqual(runsAfter.map((run) => run.threadId).sort(), runsBefore.map((run) => run.threadId).sort())
      assert.deepStrictEqual(yield* getRun(url, original), recordBefore)
    }))

  it.scoped("loom runs history and loom runs fork", () =>
    Effect.gen(function*() {
      const { url } = yield* Service
      const original = "tt-cli"
      yield* codingRun(url, original)
      const entries = yield* historyOf(url, original)

      const history = yield* cli("runs", "history", original, "--url", url)
      assert.strictEqual(history.code, 0, history.stderr)
      const lines = history.stdout.trimEnd().split("\n")
      assert.strictEqual(lines.length, 8, history.stdout)
      lines.forEach((line, i) => {
        const entry = entries[i]!
        assert.match(line, new RegExp(`^step\\s+${entry.step}\\s+next: ${entry.next.join(", ") || "\\(end\\)"}$`))
      })

      const forked = yield* cli(
        "runs",
        "fork",
        original,
        "--step",
        "3",
        "--state",
        "{\"plan\":\"x\"}",
        "--json",
        "--url",
        url
      )
      assert.strictEqual(forked.code, 0, forked.stderr)
      const { threadId } = JSON.parse(forked.stdout) as { threadId: string }
      assert.isString(threadId)
      assert.notStrictEqual(threadId, original)
      const run = yield* finished(url, threadId)
      assert.strictEqual(run.status, "finished", JSON.stringify(run))
      const forkHistory = yield* historyOf(url, threadId)
      assert.strictEqual(forkHistory[0]?.step, 4)
      assert.isTrue(forkHistory.every((entry) => entry.state.plan === "x"))

      const notJson = yield* cli("runs", "fork", original, "--step", "3", "--state", "not json", "--url", url)
      assert.strictEqual(notJson.code, 1, notJson.stdout + notJson.stderr)
      assert.include(notJson.stderr, "--state is not JSON")
    }))
})
