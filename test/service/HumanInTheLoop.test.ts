/**
 * Humans in the loop over the real service (real sockets, loopback only, SQLite): the
 * `review` workflow writes a draft on the simulator (it echoes the prompt), then waits
 * for two people at once, the `editor` and `legal` nodes each asking the `approval`
 * interrupt. Each is resumed on its own through `POST /v1/runs/:id/resume`; bad values
 * are refused by field and lose nothing; a waiting run outlives a SIGTERM and a kill -9;
 * a note sends the draft back; a follower sees the resume live.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import * as path from "node:path"
import { CheckpointStore } from "../../src/domain/CheckpointStore.js"
import { pendingInterrupts, ThreadId } from "../../src/domain/Workflow.js"
import * as SqliteCheckpointStore from "../../src/infrastructure/persistence/SqliteCheckpointStore.js"
import * as History from "../support/History.js"
import { crash, exited, service, tempDir } from "../support/Processes.js"
import * as RunPolling from "../support/RunPolling.js"
import { post } from "../support/Service.js"

interface Waiting {
  readonly _tag: "Interrupted"
  readonly step: number
  readonly node: string
  readonly name: string
  readonly key: string
  readonly payload: { readonly reviewer: string; readonly round: number; readonly draft: string }
}

interface Run {
  readonly threadId: string
  readonly status: string
  readonly step: number
  readonly waiting?: ReadonlyArray<Waiting>
}

interface Review {
  readonly round: number
  readonly reviewer: string
  readonly approved: boolean
  readonly note?: string
}

interface State {
  readonly round: number
  readonly draft: string
  readonly reviews: ReadonlyArray<Review>
}

/** The fields of the events these tests read (NodeFinished, Resumed, WorkflowFinished). */
interface EventData {
  readonly step?: number
  readonly node?: string
  readonly key?: string
  readonly state?: State
}

type Event = History.Stored<EventData>

const key = (step: number, node: string) => `${step}/${node}/approval/0`

const env = (dir: string) => ({ LOOM_DATA_DIR: dir, LOOM_LLM: "simulator" })

/** The events of an SSE text, block by block. */
const eventsOf = (text: string): Array<Event> => History.parseEvents<EventData>(text)

/** A run's whole SSE history, read to the end of the stream (the run must have ended). */
const history = (url: string, threadId: string) => History.historyOf<EventData>(url, threadId)

const getRun = (url: string, id: string) => RunPolling.getRun<Run>(url, id)

const untilRun = (proc: RunPolling.Listening, id: string, what: string, check: (run: Run) => boolean) =>
  RunPolling.untilRun<Run>(proc, id, what, check)

const keysOf = (run: Run) => (run.waiting ?? []).map((w) => w.key).sort()

/** Waiting on both reviewers of `step`. */
const waitsOnBoth = (step: number) => (run: Run) =>
  run.status === "waiting" && keysOf(run).join() === [key(step, "editor"), key(step, "legal")].join()

const startReview = (url: string, topic: string) =>
  Effect.map(post(`${url}/v1/runs`, { kind: "workflow", name: "review", input: topic }), (started) => {
    assert.strictEqual(started.status, 202, JSON.stringify(started.body))
    return (started.body as { threadId: string }).threadId
  })

const resume = (url: string, threadId: string, body: unknown) => post(`${url}/v1/runs/${threadId}/resume`, body)

/** Resumes and expects a 200 with the run record. */
const resumeOk = (url: string, threadId: string, interrupt: string, value: unknown) =>
  Effect.map(resume(url, threadId, { interrupt, value }), (answer) => {
    assert.strictEqual(answer.status, 200, JSON.stringify(answer.body))
    assert.strictEqual((answer.body as Run).threadId, threadId)
    return answer.body as Run
  })

/** What every finished history must hold: gapless ids from 1, no (step, node) finished twice, one WorkflowFinished last. */
const checkHistory = (events: ReadonlyArray<Event>) => {
  History.checkHistory("the review", events)
  assert.strictEqual(events.filter((e) => e.event === "WorkflowFinished").length, 1)
  return events[events.length - 1]!.data.state!
}

const count = (events: ReadonlyArray<Event>, tag: string) => events.filter((e) => e.event === tag).length

/** The run as loom.db holds it (the service must be stopped), with what it waits on. */
const saved = (dir: string, threadId: string) =>
  Effect.gen(function*() {
    const store = yield* CheckpointStore
    const run = yield* store.getRun(ThreadId.make(threadId))
    const events = yield* store.events(ThreadId.make(threadId))
    return { status: run.status, waiting: pendingInterrupts(events.map((e) => e.event)).map((i) => i.key).sort() }
  }).pipe(Effect.provide(SqliteCheckpointStore.layer(path.join(dir, "loom.db"))), Effect.orDie)

describe("humans in the loop, over the real service", () => {
  it.live(
    "a run waits for its reviewers and each is resumed on its own, in reverse order",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("loom-hitl-")
        const proc = yield* service(env(dir))
        const threadId = yield* startReview(proc.url, "tides")
        const waiting = yield* untilRun(proc, threadId, "both reviewers", waitsOnBoth(1))
        for (const asked of waiting.waiting!) {
          assert.strictEqual(asked._tag, "Interrupted")
          assert.strictEqual(asked.name, "approval")
          assert.strictEqual(asked.step, 1)
          assert.strictEqual(asked.payload.reviewer, asked.node)
          assert.strictEqual(asked.payload.round, 1)
          assert.include(asked.payload.draft, "tides")
        }

        const afterLegal = yield* resumeOk(proc.url, threadId, key(1, "legal"), { approved: true })
        // the answer may come before the run has gone back to waiting: it never waits on legal again
        assert.notInclude(keysOf(afterLegal), key(1, "legal"))
        const onEditor = yield* untilRun(
          proc,
          threadId,
          "the editor alone",
          (run) => run.status === "waiting" && keysOf(run).join() === key(1, "editor")
        )
        assert.strictEqual(onEditor.waiting![0]!.node, "editor")

        yield* resumeOk(proc.url, threadId, key(1, "editor"), { approved: true })
        const done = yield* untilRun(proc, threadId, "the run to finish", (run) => run.status === "finished")
        assert.isUndefined(done.waiting)

        const events = yield* history(proc.url, threadId)
        const state = checkHistory(events)
        assert.strictEqual(count(events, "Interrupted"), 2, events.map((e) => e.event).join(", "))
        assert.strictEqual(count(events, "Resumed"), 2)
        assert.deepStrictEqual(
          events.filter((e) => e.event === "Resumed").map((e) => e.data.key),
          [key(1, "legal"), key(1, "editor")]
        )
        assert.strictEqual(state.round, 1)
        assert.sameDeepMembers([...state.reviews], [
          { round: 1, reviewer: "editor", approved: true },
          { round: 1, reviewer: "legal", approved: true }
        ])
        // a second resume of a finished run: not waiting, nothing changes
        const late = yield* resume(proc.url, threadId, { interrupt: key(1, "editor"), value: { approved: true } })
        assert.strictEqual(late.status, 409, JSON.stringify(late.body))
        assert.deepStrictEqual((late.body as { waiting: Array<string> }).waiting, [])
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a bad value is a 400 naming the field, and loses nothing",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("loom-hitl-")
        const proc = yield* service(env(dir))
        const threadId = yield* startReview(proc.url, "bridges")
        yield* untilRun(proc, threadId, "both reviewers", waitsOnBoth(1))

        const wrongType = yield* resume(proc.url, threadId, {
          interrupt: key(1, "editor"),
          value: { approved: "yes" }
        })
        assert.strictEqual(wrongType.status, 400, JSON.stringify(wrongType.body))
        const invalid = wrongType.body as { _tag: string; field: string; key: string; message: string }
        assert.strictEqual(invalid._tag, "InvalidResumeValue")
        assert.strictEqual(invalid.field, "value.approved")
        assert.strictEqual(invalid.key, key(1, "editor"))

        const missing = yield* resume(proc.url, threadId, { interrupt: key(1, "legal"), value: {} })
        assert.strictEqual(missing.status, 400, JSON.stringify(missing.body))
        assert.strictEqual((missing.body as { field: string }).field, "value.approved")

        const unnamed = yield* resume(proc.url, threadId, { value: { approved: true } })
        assert.strictEqual(unnamed.status, 409, JSON.stringify(unnamed.body))
        assert.strictEqual((unnamed.body as { _tag: string })._tag, "NotWaiting")
        assert.sameMembers([...(unnamed.body as { waiting: Array<string> }).waiting], [
          key(1, "editor"),
          key(1, "legal")
        ])

        const unknown = yield* resume(proc.url, threadId, {
          interrupt: "1/editor/approval/7",
          value: { approved: true }
        })
        assert.strictEqual(unknown.status, 409, JSON.stringify(unknown.body))
        assert.strictEqual((unknown.body as { _tag: string })._tag, "NotWaiting")
        assert.sameMembers([...(unknown.body as { waiting: Array<string> }).waiting], [
          key(1, "editor"),
          key(1, "legal")
        ])

        const extra = yield* resume(proc.url, threadId, {
          interrupt: key(1, "editor"),
          value: { approved: true },
          extra: 1
        })
        assert.strictEqual(extra.status, 400, JSON.stringify(extra.body))
        const refused = extra.body as { _tag: string; issues: Array<{ path: Array<string> }> }
        assert.strictEqual(refused._tag, "HttpApiDecodeError")
        assert.deepStrictEqual(refused.issues.map((issue) => issue.path), [["extra"]])

        const noRun = yield* resume(proc.url, "no-such-run", { interrupt: key(1, "editor"), value: { approved: true } })
        assert.strictEqual(noRun.status, 404, JSON.stringify(noRun.body))

        // nothing lost: still waiting on both, no Resumed stored
        const still = yield* getRun(proc.url, threadId)
        assert.isTrue(waitsOnBoth(1)(still), JSON.stringify(still))
        yield* Effect.sleep("300 millis")
        assert.isTrue(waitsOnBoth(1)(yield* getRun(proc.url, threadId)))

        yield* resumeOk(proc.url, threadId, key(1, "editor"), { approved: true })
        yield* resumeOk(proc.url, threadId, key(1, "legal"), { approved: true })
        yield* untilRun(proc, threadId, "the run to finish", (run) => run.status === "finished")
        const events = yield* history(proc.url, threadId)
        const state = checkHistory(events)
        assert.strictEqual(count(events, "Interrupted"), 2)
        assert.strictEqual(count(events, "Resumed"), 2)
        assert.deepStrictEqual(
          [...state.reviews].map((r) => [r.reviewer, r.approved]).sort(),
          [["editor", true], ["legal", true]]
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a waiting run survives a restart, and a note sends the draft back",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("loom-hitl-")
        const first = yield* service(env(dir))
        const threadId = yield* startReview(first.url, "harbours")
        yield* untilRun(first, threadId, "both reviewers", waitsOnBoth(1))

        first.child.kill("SIGTERM")
        const code = yield* exited(first.child).pipe(Effect.timeout("15 seconds"))
        assert.strictEqual(code, 0, first.output())
        assert.deepStrictEqual(yield* saved(dir, threadId), {
          status: "waiting",
          waiting: [key(1, "editor"), key(1, "legal")]
        })

        const second = yield* service(env(dir))
        assert.isTrue(waitsOnBoth(1)(yield* getRun(second.url, threadId)))
        yield* resumeOk(second.url, threadId, key(1, "editor"), { approved: false, note: "shorter" })
        yield* resumeOk(second.url, threadId, key(1, "legal"), { approved: true })
        const again = yield* untilRun(second, threadId, "the second round's reviewers", waitsOnBoth(3))
        for (const asked of again.waiting!) {
          assert.strictEqual(asked.step, 3)
          assert.strictEqual(asked.payload.round, 2)
          assert.include(asked.payload.draft, "shorter", "the simulator echoes the editor's note into the draft")
        }

        // kill -9 while it waits again: nothing is lost either
        yield* crash(second)
        assert.deepStrictEqual(yield* saved(dir, threadId), {
          status: "waiting",
          waiting: [key(3, "editor"), key(3, "legal")]
        })
        const third = yield* service(env(dir))
        assert.isTrue(waitsOnBoth(3)(yield* getRun(third.url, threadId)))
        yield* resumeOk(third.url, threadId, key(3, "legal"), { approved: true })
        yield* resumeOk(third.url, threadId, key(3, "editor"), { approved: true })
        yield* untilRun(third, threadId, "the run to finish", (run) => run.status === "finished")

        const events = yield* history(third.url, threadId)
        const state = checkHistory(events)
        assert.strictEqual(count(events, "Interrupted"), 4, events.map((e) => e.event).join(", "))
        assert.strictEqual(count(events, "Resumed"), 4)
        assert.deepStrictEqual(
          events.filter((e) => e.event === "NodeFinished" && e.data.node === "draft").map((e) => e.data.step),
          [0, 2]
        )
        assert.strictEqual(state.round, 2)
        assert.include(state.draft, "shorter")
        assert.sameDeepMembers([...state.reviews], [
          { round: 1, reviewer: "editor", approved: false, note: "shorter" },
          { round: 1, reviewer: "legal", approved: true },
          { round: 2, reviewer: "editor", approved: true },
          { round: 2, reviewer: "legal", approved: true }
        ])
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a follower connected while the run waits gets the resume and what follows, live",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("loom-hitl-")
        const proc = yield* service(env(dir))
        const threadId = yield* startReview(proc.url, "lighthouses")
        yield* untilRun(proc, threadId, "both reviewers", waitsOnBoth(1))

        // the follower's text as it arrives, and what it held when the resumes were sent
        let text = ""
        const following = yield* Effect.fork(Effect.promise(async (signal) => {
          const response = await fetch(`${proc.url}/v1/runs/${threadId}/events`, { signal })
          const reader = response.body!.getReader()
          const decoder = new TextDecoder()
          for (;;) {
            const { done, value } = await reader.read()
            if (done) break
            text += decoder.decode(value, { stream: true })
          }
          return response.headers.get("content-type")
        }))
        yield* Effect.suspend(() => count(eventsOf(text), "Interrupted") === 2 ? Effect.void : Effect.fail("not yet"))
          .pipe(Effect.retry(Schedule.spaced("50 millis")), Effect.timeout("10 seconds"), Effect.orDie)
        // the stream stays open while the run waits
        yield* Effect.sleep("1500 millis")
        const before = eventsOf(text)
        assert.isNull(following.unsafePoll(), "the stream ended while the run waits")
        assert.strictEqual(count(before, "Resumed"), 0)
        assert.notInclude(before.map((e) => e.event), "WorkflowFinished")

        yield* resumeOk(proc.url, threadId, key(1, "editor"), { approved: true })
        yield* resumeOk(proc.url, threadId, key(1, "legal"), { approved: true })
        const type = yield* Fiber.join(following).pipe(
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => `no end of stream; got:\n${text}` }),
          Effect.orDie
        )
        assert.strictEqual(type, "text/event-stream")
        const live = eventsOf(text)
        const after = live.slice(before.length)
        assert.strictEqual(after[0]?.event, "Resumed", "the first live event is the resume")
        assert.deepStrictEqual(
          after.filter((e) => e.event === "Resumed").map((e) => e.data.key),
          [key(1, "editor"), key(1, "legal")]
        )
        assert.include(after.map((e) => e.event), "NodeFinished")
        checkHistory(live)
        // what the follower saw is the stored history
        assert.deepStrictEqual(live, yield* history(proc.url, threadId))
      }).pipe(Effect.scoped),
    60_000
  )
})
