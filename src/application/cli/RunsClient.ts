/**
 * `loom runs ...`: the runs of a running service, over its HTTP API. The client is
 * derived from the same `LoomApi` the service serves, so a reply that does not match
 * the API is a typed decode error, not a guess; the event stream is read as SSE.
 */
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import { Console, Data, Effect, Option, Schema, Stream } from "effect"
import * as Usage from "../../domain/Usage.js"
import type { RunRecord } from "../../domain/Workflow.js"
import { RunNotFound, WorkflowEvent } from "../../domain/Workflow.js"
import { LoomApi } from "../http/Api.js"
import type { Multitask } from "../RunRequests.js"
import * as Progress from "./Progress.js"

/** No service answered at `url`. */
export class ServiceUnreachable extends Data.TaggedError("ServiceUnreachable")<{
  readonly url: string
  readonly reason: string
}> {
  override get message() {
    return `cannot reach Loom at ${this.url} (${this.reason}); start it with \`loom serve\` or pass --url`
  }
}

const unreachable = (url: string) => (error: HttpClientError.HttpClientError) =>
  new ServiceUnreachable({ url, reason: error.message })

const client = (url: string) => HttpApiClient.make(LoomApi, { baseUrl: url })

const seconds = (since: number, now: number) => `${Math.round((now - since) / 1000)}s`

const table = (runs: ReadonlyArray<RunRecord>) =>
  Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) =>
    Console.log(
      [
        `${"thread".padEnd(38)} ${"workflow".padEnd(10)} ${"status".padEnd(12)} ${"step".padStart(4)}  updated`,
        ...runs.map((run) =>
          `${run.threadId.padEnd(38)} ${run.workflow.padEnd(10)} ${run.status.padEnd(12)} ${
            String(run.step).padStart(4)
          }  ${seconds(run.updatedAt, now)} ago${run.error === undefined ? "" : `  ${run.error}`}`
        )
      ].join("\n")
    ))

const printJson = (value: unknown) => Console.log(JSON.stringify(value))

export const list = (url: string, json: boolean) =>
  client(url).pipe(
    Effect.flatMap((api) => api.runs.list({ urlParams: {} })),
    Effect.flatMap((runs) => json ? printJson(runs) : table(runs)),
    Effect.catchTags({ RequestError: unreachable(url) })
  )

/** One run: its row, then what it spent. */
const detail = (run: RunRecord) => Effect.zipRight(table([run]), Console.log(`usage  ${Usage.describe(run.usage)}`))

export const show = (url: string, id: string, json: boolean) =>
  client(url).pipe(
    Effect.flatMap((api) => api.runs.get({ path: { id } })),
    Effect.flatMap((run) => json ? printJson(run) : detail(run)),
    Effect.catchTags({ RequestError: unreachable(url) })
  )

export const cancel = (url: string, id: string, json: boolean) =>
  client(url).pipe(
    Effect.flatMap((api) => api.runs.cancel({ path: { id } })),
    Effect.flatMap((run) => json ? printJson(run) : Console.log(`${run.threadId} ${run.status}`)),
    Effect.catchTags({ RequestError: unreachable(url) })
  )

/** An option that should hold JSON does not. */
export class ValueNotJson
  extends Data.TaggedError("ValueNotJson")<{ readonly option: string; readonly reason: string }>
{
  override get message() {
    return `${this.option} is not JSON (${this.reason}); quote it for the shell, e.g. ${this.option} '{"field":"value"}'`
  }
}

const parseValue = (text: string, option = "--value") =>
  Effect.try({
    try: (): unknown => JSON.parse(text),
    catch: (cause) => new ValueNotJson({ option, reason: cause instanceof Error ? cause.message : String(cause) })
  })

/** Gives a waiting run the value for one of its interrupts (`interrupt`: its key, when it waits on several). */
export const resume = (url: string, id: string, value: string, interrupt: Option.Option<string>, json: boolean) =>
  Effect.gen(function*() {
    const parsed = yield* parseValue(value)
    const api = yield* client(url)
    const run = yield* api.runs.resume({
      path: { id },
      payload: Option.match(interrupt, {
        onNone: () => ({ value: parsed }),
        onSome: (key) => ({ value: parsed, interrupt: key })
      })
    })
    yield* json ? printJson(run) : Console.log(`${run.threadId} ${run.status}`)
  }).pipe(Effect.catchTags({ RequestError: unreachable(url) }))

/** A run's checkpoints: one line per step (the nodes it had next), or the whole entries as JSON. */
export const history = (url: string, id: string, json: boolean) =>
  client(url).pipe(
    Effect.flatMap((api) => api.runs.history({ path: { id } })),
    Effect.flatMap((entries) =>
      json ? printJson(entries) : Console.log(
        entries.map((entry) => `step ${String(entry.step).padStart(3)}  next: ${entry.next.join(", ") || "(end)"}`)
          .join("\n")
      )
    ),
    Effect.catchTags({ RequestError: unreachable(url) })
  )

/** A new run on the service, on `thread` when given, as `multitask` says when that thread has one already. */
export const start = (
  url: string,
  request: {
    readonly kind: "workflow" | "agent"
    readonly name: string
    readonly input: string
    readonly thread: Option.Option<string>
    readonly multitask: Option.Option<Multitask>
  },
  json: boolean
) =>
  Effect.gen(function*() {
    const api = yield* client(url)
    const started = yield* api.runs.start({
      payload: {
        kind: request.kind,
        name: request.name,
        input: request.input,
        ...Option.match(request.thread, { onNone: () => ({}), onSome: (threadId) => ({ threadId }) }),
        ...Option.match(request.multitask, { onNone: () => ({}), onSome: (multitask) => ({ multitask }) })
      }
    })
    yield* json ? printJson(started) : Console.log(started.threadId)
  }).pipe(Effect.catchTags({ RequestError: unreachable(url) }))

/** A new run from the checkpoint at `step`, with `state` (JSON) merged in. */
export const fork = (url: string, id: string, step: number, state: Option.Option<string>, json: boolean) =>
  Effect.gen(function*() {
    const update = Option.isSome(state) ? yield* parseValue(state.value, "--state") : {}
    const api = yield* client(url)
    const started = yield* api.runs.fork({ path: { id }, payload: { step, state: update } })
    yield* json ? printJson(started) : Console.log(started.threadId)
  }).pipe(Effect.catchTags({ RequestError: unreachable(url) }))

const decodeEvent = Schema.decode(Schema.parseJson(WorkflowEvent))

/** The `data:` payloads of a Server-Sent Events body, one per event. */
const sseData = <E>(bytes: Stream.Stream<Uint8Array, E>) =>
  bytes.pipe(
    Stream.decodeText(),
    Stream.splitLines,
    Stream.filter((line) => line.startsWith("data: ")),
    Stream.map((line) => line.slice("data: ".length))
  )

/** Prints a run's events as they come (history first) until the run ends. */
export const follow = (url: string, id: string, json: boolean) =>
  Effect.gen(function*() {
    const http = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)
    const since = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    const print = Progress.workflowEvent(since)
    const response = yield* http.get(`${url}/v1/runs/${encodeURIComponent(id)}/events`)
    yield* sseData(response.stream).pipe(
      Stream.runForEach((data) => json ? Console.log(data) : Effect.flatMap(decodeEvent(data), print))
    )
  }).pipe(
    Effect.scoped,
    Effect.catchTags({
      RequestError: unreachable(url),
      ResponseError: (error) =>
        error.response.status === 404
          ? Effect.fail(new RunNotFound({ threadId: id }))
          : Effect.fail(new ServiceUnreachable({ url, reason: error.message }))
    })
  )
