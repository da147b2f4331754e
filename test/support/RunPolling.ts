/** Reading a run of a service under test over HTTP, and waiting for it (or anything it serves) to reach a state. */
import { Effect, Schedule } from "effect"
import { json } from "./Service.js"

/** A running service: where it listens, and what it has printed (shown when a wait times out). */
export interface Listening {
  readonly url: string
  readonly output: () => string
}

/** `GET /v1/runs/:id`, its body as the test's own view of a run. */
export const getRun = <Run>(url: string, id: string) =>
  Effect.map(json(`${url}/v1/runs/${id}`), (reply) => reply.body as Run)

/** Polls `effect` every 100 ms until `check` holds (up to 20 s); dies with `what`, the last value and the output. */
export const pollUntil = <A>(proc: Listening, effect: Effect.Effect<A>, what: string, check: (a: A) => boolean) => {
  let last: unknown
  return effect.pipe(
    Effect.tap((a) => Effect.sync(() => (last = a))),
    Effect.filterOrFail(check, () => "not yet"),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "timed out" }),
    Effect.catchAll(() =>
      Effect.dieMessage(
        `timed out waiting for ${what}; last seen: ${JSON.stringify(last)}\nservice output:\n${proc.output()}`
      )
    )
  )
}

/** Polls the run until `check` holds, as `pollUntil`. */
export const untilRun = <Run>(proc: Listening, id: string, what: string, check: (run: Run) => boolean) =>
  pollUntil(proc, getRun<Run>(proc.url, id), what, check)
