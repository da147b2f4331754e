/**
 * What SSE followers cost while nothing happens (`npm run test:load`): 200 clients follow
 * one run that is waiting on a slow LLM (so it emits nothing), and the service's CPU time
 * is read from /proc over a 15 s window. Followers of a live run wait for its next event
 * instead of polling the store, so the whole process must stay under 2% of one core.
 * The figure is printed for the README.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import { scratchDir } from "../support/Scratch.js"
import { post, service } from "../support/Service.js"

const followers = 200
const windowMs = 15_000

/** User plus system CPU time of `pid` so far, in milliseconds (from /proc, in clock ticks of 10 ms). */
const cpuMs = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** Share of one core `pid` uses over the next `ms`. */
const coresOver = (pid: number, ms: number) =>
  Effect.gen(function*() {
    const before = cpuMs(pid)
    const started = performance.now()
    yield* Effect.sleep(ms)
    return (cpuMs(pid) - before) / (performance.now() - started)
  })

/**
 * Follows a run's events (the run has stored none yet: a node's events are saved when it
 * ends); the connection stays open until the scope closes.
 */
const follower = (url: string, threadId: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const abort = new AbortController()
      const response = await fetch(`${url}/v1/runs/${threadId}/events`, {
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(30_000)])
      })
      return { abort, status: response.status, type: response.headers.get("content-type") }
    }),
    ({ abort }) => Effect.sync(() => abort.abort())
  )

describe("SSE followers of an idle run", () => {
  it.live(
    `${followers} followers cost under 2% of a core while the run emits nothing`,
    () =>
      Effect.gen(function*() {
        const { child, url } = yield* service({
          LOOM_DATA_DIR: scratchDir("loom-sse-"),
          // the run's first LLM call answers long after the measure: it stays running and quiet
          LOOM_SIMULATOR_LATENCY: "10 minutes"
        })
        const pid = child.pid!
        const started = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi" })
        assert.strictEqual(started.status, 202, JSON.stringify(started.body))
        const threadId = (started.body as { threadId: string }).threadId

        yield* Effect.sleep("5 seconds")
        const idle = yield* coresOver(pid, windowMs)

        const all = yield* Effect.forEach(Array.from({ length: followers }), () => follower(url, threadId), {
          concurrency: 50
        })
        assert.isTrue(all.every((f) => f.status === 200 && f.type === "text/event-stream"))
        // past the garbage of 200 connections opening
        yield* Effect.sleep("5 seconds")
        const followed = yield* coresOver(pid, windowMs)

        console.log(
          `SSE: ${followers} followers of an idle run: the service uses ${(followed * 100).toFixed(2)}% of a core ` +
            `(${(idle * 100).toFixed(2)}% with none) over ${windowMs / 1000} s`
        )
        assert.isBelow(followed, 0.02)
      }).pipe(Effect.scoped),
    180_000
  )
})
