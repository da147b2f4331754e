/**
 * Double-texting over the real service (real sockets, loopback only, SQLite): runs of the
 * `review` workflow on one thread. A review waits for its two reviewers, so its thread
 * stays busy until the test answers them; each strategy is tried on it in turn, one
 * start through the CLI (`loom runs start`), and the thread's runs outlive a restart as
 * they were left: the superseded ones are never resumed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { exited, loom, service, tempDir } from "../support/Processes.js"
import * as RunPolling from "../support/RunPolling.js"
import { json, post } from "../support/Service.js"

interface Run {
  readonly threadId: string
  readonly status: string
  readonly thread?: string
  readonly turn?: number
  readonly supersededBy?: string
  readonly waiting?: ReadonlyArray<{ readonly key: string }>
}

const env = (dir: string) => ({ LOOM_DATA_DIR: dir, LOOM_LLM: "simulator" })

const keys = ["1/editor/approval/0", "1/legal/approval/0"]

const getRun = (url: string, id: string) => RunPolling.getRun<Run>(url, id)

const untilRun = (proc: RunPolling.Listening, id: string, what: string, check: (run: Run) => boolean) =>
  RunPolling.untilRun<Run>(proc, id, what, check)

const waitsOnBoth = (run: Run) =>
  run.status === "waiting" && (run.waiting ?? []).map((w) => w.key).sort().join() === keys.join()

const startOn = (url: string, input: string, multitask?: string) =>
  post(`${url}/v1/runs`, {
    kind: "workflow",
    name: "review",
    input,
    threadId: "doc-1",
    ...(multitask === undefined ? {} : { multitask })
  })

/** Starts and expects a 202 with the new run's id. */
const started = (url: string, input: string, multitask?: string) =>
  Effect.map(startOn(url, input, multitask), (answer) => {
    assert.strictEqual(answer.status, 202, JSON.stringify(answer.body))
    return (answer.body as { threadId: string }).threadId
  })

const approveBoth = (url: string, id: string) =>
  Effect.forEach(
    keys,
    (interrupt) =>
      Effect.map(post(`${url}/v1/runs/${id}/resume`, { interrupt, value: { approved: true } }), (answer) =>
        assert.strictEqual(answer.status, 200, JSON.stringify(answer.body)))
  )

const threadRuns = (url: string) =>
  Effect.map(json(`${url}/v1/runs?thread=doc-1`), (answer) => {
    assert.strictEqual(answer.status, 200, JSON.stringify(answer.body))
    return (answer.body as ReadonlyArray<Run>).map((run) => [run.threadId, run.turn, run.status])
  })

describe("double-texting, over the real service", () => {
  it.live(
    "reject, enqueue (from the CLI), interrupt and rollback on one busy thread, kept through a restart",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("loom-multitask-")
        const proc = yield* service(env(dir))
        const { url } = proc
        const first = yield* started(url, "tides")
        assert.strictEqual(first, "doc-1")
        yield* untilRun(proc, first, "the first review to wait", waitsOnBoth)

        // reject: the default, named or not
        for (const multitask of [undefined, "reject"]) {
          const refused = yield* startOn(url, "again", multitask)
          assert.strictEqual(refused.status, 409, JSON.stringify(refused.body))
          assert.strictEqual((refused.body as { _tag: string })._tag, "RunExists")
        }
        const bad = yield* startOn(url, "again", "later")
        assert.strictEqual(bad.status, 400, JSON.stringify(bad.body))
        // one issue per strategy it is not, each naming the field
        assert.deepStrictEqual(
          [...new Set((bad.body as { issues: Array<{ path: Array<string> }> }).issues.map((i) => i.path.join(".")))],
          ["multitask"]
        )

        // enqueue, from the CLI: queued behind the waiting review until that one finishes
        const cli = yield* loom(
          {},
          "runs",
          "start",
          "workflow",
          "review",
          "--input",
          "bridges",
          "--thread",
          "doc-1",
          "--multitask",
          "enqueue",
          "--url",
          url
        )
        const code = yield* exited(cli.child).pipe(Effect.timeout("30 seconds"))
        assert.strictEqual(code, 0, cli.output())
        const second = cli.stdout().trim()
        assert.notStrictEqual(second, first)
        const queued = yield* getRun(url, second)
        assert.deepStrictEqual([queued.status, queued.thread, queued.turn], ["queued", "doc-1", 2])
        yield* Effect.sleep("1 second")
        assert.strictEqual((yield* getRun(url, second)).status, "queued")
        yield* approveBoth(url, first)
        yield* untilRun(proc, first, "the first review to finish", (run) => run.status === "finished")
        yield* untilRun(proc, second, "the queued review to start and wait", waitsOnBoth)

        // interrupt: the waiting second review is kept as interrupted, for good
        const third = yield* started(url, "harbours", "interrupt")
        const interrupted = yield* getRun(url, second)
        assert.deepStrictEqual([interrupted.status, interrupted.supersededBy], ["interrupted", third])
        const late = yield* post(`${url}/v1/runs/${second}/resume`, { interrupt: keys[0], value: { approved: true } })
        assert.strictEqual(late.status, 409, JSON.stringify(late.body))
        assert.strictEqual((late.body as { _tag: string })._tag, "NotWaiting")
        yield* untilRun(proc, third, "the third review to wait", waitsOnBoth)

        // rollback: the third (waiting) and a fourth queued behind it are cancelled, their history removed
        const fourth = yield* started(url, "lighthouses", "enqueue")
        const history = yield* json(`${url}/v1/runs/${third}/history`)
        assert.isAbove((history.body as ReadonlyArray<unknown>).length, 0)
        const fifth = yield* started(url, "canals", "rollback")
        for (const id of [third, fourth]) {
          const run = yield* untilRun(proc, id, `${id} rolled back`, (run) => run.status === "cancelled")
          assert.strictEqual(run.supersededBy, fifth)
          assert.deepStrictEqual((yield* json(`${url}/v1/runs/${id}/history`)).body, [])
        }
        yield* untilRun(proc, fifth, "the fifth review to wait", waitsOnBoth)
        const expected = [
          [first, 1, "finished"],
          [second, 2, "interrupted"],
          [third, 3, "cancelled"],
          [fourth, 4, "cancelled"],
          [fifth, 5, "waiting"]
        ]
        assert.deepStrictEqual(yield* threadRuns(url), expected)

        // a restart keeps every run as it was: nothing superseded comes back
        proc.child.kill("SIGTERM")
        assert.strictEqual(yield* exited(proc.child).pipe(Effect.timeout("15 seconds")), 0, proc.output())
        const again = yield* service(env(dir))
        yield* untilRun(again, fifth, "the fifth review to wait again", waitsOnBoth)
        yield* Effect.sleep("1500 millis")
        assert.deepStrictEqual(yield* threadRuns(again.url), expected)
        yield* approveBoth(again.url, fifth)
        yield* untilRun(again, fifth, "the fifth review to finish", (run) => run.status === "finished")
        assert.strictEqual((yield* getRun(again.url, second)).status, "interrupted")
      }).pipe(Effect.scoped),
    120_000
  )
})
