/**
 * The HTTP API, declared once: routes, payloads, replies and which error is which
 * status. The OpenAPI document (`/openapi.json`) and the docs page (`/docs`) are
 * derived from it. Bad input is a 400 naming the field (HttpApi decodes every payload
 * with its Schema; `JsonBody` refuses, as JSON, a body that does not parse or nests too
 * deep); QueueFull 429; an unknown run 404. A tool call's own failure (an open breaker
 * included) is in its ToolResult, not the status.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"
import { QueueFull } from "../../domain/Errors.js"
import { Check } from "../../domain/Health.js"
import { ToolResult } from "../../domain/ToolResult.js"
import { RunExists, RunNotFound, RunRecord } from "../../domain/Workflow.js"
import { RunRequest, UnknownRunKind } from "../RunManager.js"
import { JsonBody } from "./JsonBody.js"

const id = HttpApiSchema.param("id", Schema.String)

export const RunStarted = Schema.Struct({ threadId: Schema.String })

/** The Last-Event-ID a reconnecting EventSource sends: the seq of the last event it got. */
export const LastEventId = Schema.compose(
  Schema.String.pipe(
    Schema.pattern(/^[0-9]{1,16}$/, { message: () => "Last-Event-ID must be a non-negative decimal integer" })
  ),
  Schema.NumberFromString
).pipe(
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER, {
    message: () => `Last-Event-ID must be at most ${Number.MAX_SAFE_INTEGER}`
  })
)

/** The headers the event stream reads; a Last-Event-ID that is not an event seq is a 400, not a replay of all. */
export const EventsHeaders = Schema.Struct({ "last-event-id": Schema.optional(LastEventId) })

export class Runs extends HttpApiGroup.make("runs")
  .add(
    HttpApiEndpoint.post("start", "/v1/runs")
      .setPayload(RunRequest)
      .middleware(JsonBody)
      .addSuccess(RunStarted, { status: 202 })
      .addError(UnknownRunKind, { status: 400 })
      .addError(RunExists, { status: 409 })
      .addError(QueueFull, { status: 429 })
  )
  .add(HttpApiEndpoint.get("list", "/v1/runs").addSuccess(Schema.Array(RunRecord)))
  .add(HttpApiEndpoint.get("get")`/v1/runs/${id}`.addSuccess(RunRecord).addError(RunNotFound, { status: 404 }))
  .add(
    HttpApiEndpoint.get("events")`/v1/runs/${id}/events`
      .setHeaders(EventsHeaders)
      .addSuccess(Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" })))
      .addError(RunNotFound, { status: 404 })
  )
  .add(
    HttpApiEndpoint.post("cancel")`/v1/runs/${id}/cancel`.addSuccess(RunRecord).addError(RunNotFound, { status: 404 })
  )
{}

export const ToolInfo = Schema.Struct({
  name: Schema.String,
  description: Schema.String,
  kind: Schema.Literal("io", "cpu", "process"),
  parameters: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})

export const CallSpec = Schema.Struct({ id: Schema.NonEmptyString, tool: Schema.NonEmptyString, input: Schema.Unknown })

export const GraphNodeSpec = Schema.Struct({
  id: Schema.NonEmptyString,
  tool: Schema.NonEmptyString,
  input: Schema.Unknown,
  dependsOn: Schema.optionalWith(Schema.Array(Schema.String), { exact: true })
})

/** One request, one mode: `calls` for parallel and sequential, `nodes` for graph, `tool` + `inputs` for batch. */
export const ExecuteRequest = Schema.Union(
  Schema.Struct({
    mode: Schema.Literal("parallel", "sequential"),
    calls: Schema.Array(CallSpec),
    concurrency: Schema.optional(Schema.Int.pipe(Schema.positive()))
  }),
  Schema.Struct({
    mode: Schema.Literal("graph"),
    nodes: Schema.Array(GraphNodeSpec),
    concurrency: Schema.optional(Schema.Int.pipe(Schema.positive()))
  }),
  Schema.Struct({
    mode: Schema.Literal("batch"),
    tool: Schema.NonEmptyString,
    inputs: Schema.Array(Schema.Unknown),
    concurrency: Schema.optional(Schema.Int.pipe(Schema.positive()))
  })
)

export class InvalidGraphRequest extends Schema.TaggedError<InvalidGraphRequest>()("InvalidGraphRequest", {
  message: Schema.String,
  nodes: Schema.Array(Schema.String)
}) {}

export class Tools extends HttpApiGroup.make("tools")
  .add(HttpApiEndpoint.get("list", "/v1/tools").addSuccess(Schema.Array(ToolInfo)))
  .add(
    HttpApiEndpoint.post("execute", "/v1/tools/execute")
      .setPayload(ExecuteRequest)
      .middleware(JsonBody)
      .addSuccess(Schema.Struct({ results: Schema.Array(ToolResult) }))
      .addError(InvalidGraphRequest, { status: 400 })
  )
{}

export const Readiness = Schema.Struct({
  ready: Schema.Boolean,
  checks: Schema.Record({ key: Schema.String, value: Check })
})

export class Health extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("live", "/health/live").addSuccess(Schema.Struct({ status: Schema.Literal("ok") })))
  .add(HttpApiEndpoint.get("ready", "/health/ready").addSuccess(Readiness))
  .add(
    HttpApiEndpoint.get("metrics", "/metrics").addSuccess(
      Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/plain; version=0.0.4" }))
    )
  )
{}

export class LoomApi extends HttpApi.make("loom").add(Runs).add(Tools).add(Health) {}
