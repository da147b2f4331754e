/** Reading a run of a service under test over HTTP, and waiting for it to reach a state. */
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

/** Polls the run every 100 ms until `check` holds (up to 20 s); dies with the last record and the service's output. */
export const untilRun = <Run>(proc: Listening, id: string, what: string, check: (run: Run) => boolean) => {
  let last: unknown
  return getRun<Run>(proc.url, id).pipe(
    Effect.tap((run) => Effect.sync(() => (last = run))),
    Effect.filterOrFail(check, () => "not yet"),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "timed out" }),
    Effect.catchAll(() =>
      Effect.dieMessage(
        `timed out waiting for ${what}; last record: ${JSON.stringify(last)}\nservice output:\n${proc.output()}`
      )
    )
  )
}
