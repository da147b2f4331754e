/**
 * The service killed and stopped at random moments while coding runs go (`npm run
 * test:chaos`). Each kill -9 or SIGTERM is followed by a restart on the same data
 * directory; at the end every run must be `finished`, no node of a run may have finished
 * twice (a finished node is never run again), and each run's SSE history must be gapless.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Random } from "effect"
import { historyOf, verdict } from "../support/History.js"
import { isAlive } from "../support/Pids.js"
import { scratchDir } from "../support/Scratch.js"
import { exited, json, post, start, until } from "../support/Service.js"
import type { Running } from "../support/Service.js"

const env = (dir: string) => ({
  LOOM_DATA_DIR: dir,
  // the test runner's scratch files (a process killed with the service cannot remove them) stay in `dir`
  TMPDIR: dir,
  LOOM_SIMULATOR_LATENCY: "60 millis",
  LOOM_MAX_RUNS: "64",
  LOOM_SHUTDOWN_TIMEOUT: "10 seconds"
})

const startRuns = (url: string, n: number) =>
  Effect.forEach(Array.from({ length: n }), (_, i) =>
    Effect.map(
      post(`${url}/v1/runs`, { kind: "workflow", name: "coding", input: `Write add(a, b) #${i}` }),
      (reply) => (reply.body as { threadId: string }).threadId
    ))

/** Waits until every run is `finished` (or gives up, and the test fails on the statuses). */
const allFinished = (url: string, ids: ReadonlyArray<string>) =>
  until(
    Effect.forEach(ids, (id) => Effect.map(json(`${url}/v1/runs/${id}`), (r) => (r.body as { status: string }).status)),
    (statuses) => statuses.every((status) => status === "finished")
  )

const stop = (running: Running, signal: NodeJS.Signals) =>
  Effect.suspend(() => {
    running.child.kill(signal)
    return exited(running.child)
  })

describe("chaos: the service killed and stopped mid-run", () => {
  it.live(
    "20 kill -9 at random moments: every run finishes, no node finishes twice, SSE history gapless",
    () =>
      Effect.gen(function*() {
        const dir = scratchDir("loom-chaos-")
        const ids: Array<string> = []
        let running = yield* start(env(dir))
        for (let kill = 0; kill < 20; kill++) {
          ids.push(...(yield* startRuns(running.url, 2)))
          yield* Effect.sleep(yield* Random.nextIntBetween(50, 1200))
          const pid = running.child.pid!
          yield* stop(running, "SIGKILL")
          assert.isFalse(isAlive(pid))
          running = yield* start(env(dir))
        }
        yield* allFinished(running.url, ids)
        let twice = 0
        let gaps = 0
        for (const id of ids) {
          const result = verdict(yield* historyOf(running.url, id))
          twice += result.twice.length
          if (!result.gapless) gaps++
        }
        yield* stop(running, "SIGTERM")
        console.log(`chaos kill -9: 20 kills, ${ids.length} runs finished, ${twice} nodes finished twice, ${gaps} gaps`)
        assert.strictEqual(twice, 0)
        assert.strictEqual(gaps, 0)
      }),
    600_000
  )

  it.live(
    "10 SIGTERMs mid-run: each exits 0 within LOOM_SHUTDOWN_TIMEOUT and the runs resume and finish",
    () =>
      Effect.gen(function*() {
        const dir = scratchDir("loom-chaos-")
        const ids: Array<string> = []
        const codes: Array<number | null> = []
        let running = yield* start(env(dir))
        for (let stopAt = 0; stopAt < 10; stopAt++) {
          ids.push(...(yield* startRuns(running.url, 2)))
          yield* Effect.sleep(yield* Random.nextIntBetween(50, 1200))
          // exited within the 10 s shutdown deadline, or the timeout fails the test
          codes.push(yield* stop(running, "SIGTERM").pipe(Effect.timeout("12 seconds"), Effect.orDie))
          running = yield* start(env(dir))
        }
        yield* allFinished(running.url, ids)
        const twice = (yield* Effect.forEach(ids, (id) => historyOf(running.url, id)))
          .reduce((n, events) => n + verdict(events).twice.length, 0)
        yield* stop(running, "SIGTERM")
        console.log(`chaos SIGTERM: 10 stops, exit codes ${[...new Set(codes)].join(",")}, ${ids.length} runs finished`)
        assert.deepStrictEqual(codes, Array.from({ length: 10 }, () => 0))
        assert.strictEqual(twice, 0)
      }),
    600_000
  )
})
