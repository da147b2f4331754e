/**
 * The HTTP API, declared once: routes, payloads, replies and which error is which
 * status. The OpenAPI document (`/openapi.json`) and the docs page (`/docs`) are
 * derived from it. Bad input is a 400 naming the field (HttpApi decodes every payload
 * with its Schema, refusing fields the document does not list; `JsonBody` refuses, as
 * JSON, a body that does not parse or nests too deep); QueueFull 429; an unknown run 404.
 * A tool call's own failure (an open breaker included) is in its ToolResult, not the status.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import * as Fs from "node:fs"
import { QueueFull } from "../../domain/Errors.js"
import { Check } from "../../domain/Health.js"
import { ToolResult } from "../../domain/ToolResult.js"
import { RunExists, RunNotFound, RunRecord, ThreadIdText } from "../../domain/Workflow.js"
import {
  ForkRequest,
  HistoryEntry,
  InvalidForkState,
  InvalidResumeValue,
  NotWaiting,
  ResumeRequest,
  RunRequest,
  StepNotFound,
  UnknownRunKind
} from "../RunManager.js"
import { BadRequest, MethodNotAllowed } from "./HttpErrors.js"
import { JsonBody } from "./JsonBody.js"

/** Loom's version, from its package.json (beside `src/` and `dist/` alike). */
export const version: string = (JSON.parse(
  Fs.readFileSync(new URL("../../../package.json", import.meta.url), "utf8")
) as { readonly version: string }).version

/** Payloads refuse a field the OpenAPI document does not list (it says `additionalProperties: false`). */
const strict = { parseOptions: { onExcessProperty: "error" } } as const

const id = HttpApiSchema.param(
  "id",
  Schema.String.annotations({ description: "The run's thread id (an id no run can have is a 404)" })
)

export const RunStarted = Schema.Struct({
  threadId: Schema.String.annotations({ description: "the run's id (a thread's first run has the thread's id)" })
}).annotations({ identifier: "RunStarted" })

/** `GET /v1/runs?thread=...`: one thread's runs. */
export const RunsQuery = Schema.Struct({ thread: Schema.optional(ThreadIdText) }).annotations({
  identifier: "RunsQuery"
})

/** The Last-Event-ID a reconnecting EventSource sends: the seq of the last event it got. */
export const LastEventId = Schema.compose(
  Schema.String.pipe(
    Schema.pattern(/^[0-9]{1,16}$/, {
      message: () => "Last-Event-ID must be a non-negative decimal integer",
      description: "The seq (`id:`) of the last event a reconnecting client got; only later events are sent. " +
        "A non-negative decimal integer; anything else is a 400."
    })
  ),
  Schema.NumberFromString
).pipe(
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER, {
    message: () => `Last-Event-ID must be at most ${Number.MAX_SAFE_INTEGER}`
  })
)

/** The headers the event stream reads; a Last-Event-ID that is not an event seq is a 400, not a replay of all. */
export const EventsHeaders = Schema.Struct({ "last-event-id": Schema.optional(LastEventId) })

/** An endpoint's `summary` and `description` in the OpenAPI document. */
const documented = (summary: string, description: string) => OpenApi.annotations({ summary, description })

export class Runs extends HttpApiGroup.make("runs")
  .add(
    HttpApiEndpoint.post("start", "/v1/runs")
      .setPayload(RunRequest)
      .middleware(JsonBody)
      .addSuccess(RunStarted, { status: 202 })
      .addError(UnknownRunKind, { status: 400 })
      .addError(RunExists, { status: 409 })
      .addError(QueueFull, { status: 429 })
      .annotateContext(documented(
        "Start a run",
        "Starts the coding workflow or the assistant agent in the background and answers once it has begun, with " +
          "the run's id (a thread's first run has the thread's id). A thread id already in use is a 409 unless " +
          "`multitask` says otherwise: `enqueue` queues the run behind the thread's runs, `interrupt` stops them " +
          "(kept as interrupted) and `rollback` cancels them and removes their checkpoints, the new run starting at " +
          "once. More runs than LOOM_MAX_RUNS at once is a 429 with Retry-After."
      ))
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/runs").setUrlParams(RunsQuery).addSuccess(Schema.Array(RunRecord)).annotateContext(
      documented(
        "List runs",
        "Every run the service has, with its status, step and usage; with `thread`, that thread's runs in turn order."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("get")`/v1/runs/${id}`.addSuccess(RunRecord).addError(RunNotFound, { status: 404 })
      .annotateContext(
        documented(
          "Show a run",
          "One run: its workflow, status (running, waiting, finished, failed, interrupted, cancelled), step and " +
            "usage; a waiting run lists the interrupts it waits on."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("events")`/v1/runs/${id}/events`
      .setHeaders(EventsHeaders)
      .addSuccess(Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" })))
      .addError(RunNotFound, { status: 404 })
      .annotateContext(documented(
        "Follow a run's events",
        "Server-Sent Events: the run's stored events (after Last-Event-ID, when a client reconnects), then each new " +
          "one as it happens, until the run ends or the service shuts down. A client that disconnects cancels nothing."
      ))
  )
  .add(
    HttpApiEndpoint.post("resume")`/v1/runs/${id}/resume`
      .setPayload(ResumeRequest)
      .middleware(JsonBody)
      .addSuccess(RunRecord)
      .addError(RunNotFound, { status: 404 })
      .addError(NotWaiting, { status: 409 })
      .addError(InvalidResumeValue, { status: 400 })
      .annotateContext(documented(
        "Resume a waiting run",
        "Gives a run that waits for a person (status waiting, its interrupts in `waiting`) the value for one " +
          "interrupt: `interrupt` names its key, and may be left out when the run waits on one only. The value must " +
          "decode with the interrupt's resume schema (a 400 naming the field otherwise); the run then goes on, on " +
          "whichever runner holds it. A run not waiting on that interrupt is a 409 listing what it waits on."
      ))
  )
  .add(
    HttpApiEndpoint.get("history")`/v1/runs/${id}/history`
      .addSuccess(Schema.Array(HistoryEntry))
      .addError(RunNotFound, { status: 404 })
      .annotateContext(documented(
        "A run's checkpoints",
        "Time travel: after each step of the run, oldest first, the state and the nodes it was to run next. Any of " +
          "them can start a new run (fork)."
      ))
  )
  .add(
    HttpApiEndpoint.post("fork")`/v1/runs/${id}/fork`
      .setPayload(ForkRequest)
      .middleware(JsonBody)
      .addSuccess(RunStarted, { status: 202 })
      .addError(RunNotFound, { status: 404 })
      .addError(StepNotFound, { status: 404 })
      .addError(InvalidForkState, { status: 400 })
      .addError(RunExists, { status: 409 })
      .addError(QueueFull, { status: 429 })
      .annotateContext(documented(
        "Fork a run",
        "Starts a new run from the checkpoint at `step`, with `state` (some of its fields) merged into that " +
          "checkpoint's state through the workflow's reducers; it runs the nodes that checkpoint had next. The " +
          "original run and its history are left as they are. A state that does not fit is a 400 naming the field."
      ))
  )
  .add(
    HttpApiEndpoint.post("cancel")`/v1/runs/${id}/cancel`.addSuccess(RunRecord).addError(RunNotFound, { status: 404 })
      .annotateContext(
        documented("Cancel a run", "Stops a run for good: it stays cancelled, and a restart does not resume it.")
      )
  )
  .annotateContext(OpenApi.annotations({ description: "Runs of the coding workflow and the assistant agent" }))
{}

export const ToolInfo = Schema.Struct({
  name: Schema.String,
  description: Schema.String,
  kind: Schema.Literal("io", "cpu", "process"),
  parameters: Schema.Record({ key: Schema.String, value: Schema.Unknown })
}).annotations({
  identifier: "ToolInfo",
  description: "A tool: its name, what it does, where it runs, its JSON Schema"
})

const PositiveInt = Schema.Int.pipe(Schema.positive()).annotations({
  identifier: "PositiveInt",
  description: "a whole number of 1 or more"
})

/** Tool inputs are free here: each is checked against its tool's schema, and a bad one fails that call alone. */
const ToolInput = Schema.Unknown.annotations({ description: "the tool's input, checked against its parameters" })

export const CallSpec = Schema.Struct({ id: Schema.NonEmptyString, tool: Schema.NonEmptyString, input: ToolInput })
  .annotations({ identifier: "CallSpec", ...strict })

/** Calls whose ids are all different: results are matched to calls by id. */
const Calls = Schema.Array(CallSpec).pipe(
  Schema.filter((calls) => {
    const seen = new Set<string>()
    for (const [index, call] of calls.entries()) {
      if (seen.has(call.id)) return { path: [index, "id"], message: `call id "${call.id}" is used twice` }
      seen.add(call.id)
    }
    return true
  }, { description: "calls with distinct ids" })
)

export const GraphNodeSpec = Schema.Struct({
  id: Schema.NonEmptyString,
  tool: Schema.NonEmptyString,
  input: ToolInput,
  dependsOn: Schema.optionalWith(Schema.Array(Schema.String), { exact: true })
}).annotations({ identifier: "GraphNodeSpec", ...strict })

/**
 * A request's `mode`: text, then one of `modes`. Effect's union of structs looks its
 * members up by the literal under `mode` with `String(input.mode)`, which throws on a
 * value such as `[{"toString":0}]` (a 500, found by the HTTP fuzz). Decoding the text
 * first keeps that lookup out: any other `mode` is a 400 naming it. The OpenAPI document
 * still lists the modes.
 */
const Mode = <const L extends ReadonlyArray<string>>(...modes: L) =>
  Schema.compose(Schema.String, Schema.Literal(...modes)).annotations({ jsonSchema: { type: "string", enum: modes } })

/** One request, one mode: `calls` for parallel and sequential, `nodes` for graph, `tool` + `inputs` for batch. */
export const ExecuteRequest = Schema.Union(
  Schema.Struct({
    mode: Mode("parallel", "sequential"),
    calls: Calls,
    concurrency: Schema.optional(PositiveInt)
  }).annotations({ identifier: "ExecuteCalls", ...strict }),
  Schema.Struct({
    mode: Mode("graph"),
    nodes: Schema.Array(GraphNodeSpec),
    concurrency: Schema.optional(PositiveInt)
  }).annotations({ identifier: "ExecuteGraph", ...strict }),
  Schema.Struct({
    mode: Mode("batch"),
    tool: Schema.NonEmptyString,
    inputs: Schema.Array(ToolInput),
    concurrency: Schema.optional(PositiveInt)
  }).annotations({ identifier: "ExecuteBatch", ...strict })
)

export class InvalidGraphRequest extends Schema.TaggedError<InvalidGraphRequest>()("InvalidGraphRequest", {
  message: Schema.String,
  nodes: Schema.Array(Schema.String)
}) {}

export class Tools extends HttpApiGroup.make("tools")
  .add(
    HttpApiEndpoint.get("list", "/v1/tools").addSuccess(Schema.Array(ToolInfo)).annotateContext(
      documented("List tools", "The local tools and every MCP server's, with the JSON Schema of their input.")
    )
  )
  .add(
    HttpApiEndpoint.post("execute", "/v1/tools/execute")
      .setPayload(ExecuteRequest)
      .middleware(JsonBody)
      .addSuccess(Schema.Struct({ results: Schema.Array(ToolResult) }))
      .addError(InvalidGraphRequest, { status: 400 })
      .annotateContext(documented(
        "Execute tool calls",
        "Runs calls in parallel or in sequence, as a graph (a node starts once its dependencies are done), or one " +
          "tool over many inputs. Results come in call order; a call's own failure (bad input, a timeout, an open " +
          "breaker) is in its result, never the status."
      ))
  )
  .annotateContext(OpenApi.annotations({ description: "Tools, and executing calls to them" }))
{}

export const Readiness = Schema.Struct({
  ready: Schema.Boolean,
  checks: Schema.Record({ key: Schema.String, value: Check })
}).annotations({ identifier: "Readiness" })

/** `/health/ready` when not ready: the same body, with status 503. */
const NotReady = Readiness.annotations({ identifier: "NotReady", description: "A critical check is down, or shutdown" })

export class Health extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("live", "/health/live").addSuccess(Schema.Struct({ status: Schema.Literal("ok") }))
      .annotateContext(
        documented("Liveness", "200 while the process serves requests.")
      )
  )
  .add(
    HttpApiEndpoint.get("ready", "/health/ready").addSuccess(Readiness).addError(NotReady, { status: 503 })
      .annotateContext(
        documented(
          "Readiness",
          "Each check (database, LLM, MCP servers, CPU pool, processes, runs, resources) with its status; 503 while " +
            "a critical one is down or the service is shutting down."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("metrics", "/metrics").addSuccess(
      Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/plain; version=0.0.4" }))
    ).annotateContext(documented("Metrics", "Every metric in Prometheus text format."))
  )
  .annotateContext(OpenApi.annotations({ description: "Health probes and metrics" }))
{}

const retryAfter = {
  "Retry-After": { description: "Seconds to wait before trying again", schema: { type: "integer", minimum: 1 } }
}

const allow = { Allow: { description: "The methods the path takes", schema: { type: "string" } } }

type Json = Record<string, unknown>

/** `value` as a JSON object, or an empty one (the document's parts are read loosely: only its shape is known). */
const object = (value: unknown): Json =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? value as Json : {}

/**
 * The finishing touches of the generated document: response headers the middleware sets
 * (Allow, Retry-After), component titles that are their names (Effect titles both Int
 * and NonNegativeInt "int"), and no security section (there is no auth, and an empty one
 * shows an Authorize button on the docs page).
 */
const finish = (spec: Json): Json => {
  delete spec["security"]
  const components = object(spec["components"])
  if (Object.keys(object(components["securitySchemes"])).length === 0) delete components["securitySchemes"]
  for (const [name, schema] of Object.entries(object(components["schemas"]))) object(schema)["title"] = name
  for (const operations of Object.values(object(spec["paths"]))) {
    for (const value of Object.values(object(operations))) {
      const operation = object(value)
      if (Array.isArray(operation["security"]) && operation["security"].length === 0) delete operation["security"]
      const responses = object(operation["responses"])
      if ("405" in responses) object(responses["405"])["headers"] = allow
      for (const status of ["429", "503"]) if (status in responses) object(responses[status])["headers"] = retryAfter
    }
  }
  return spec
}

export class LoomApi extends HttpApi.make("loom")
  .add(Runs)
  .add(Tools)
  .add(Health)
  .addError(MethodNotAllowed, { status: 405 })
  .addError(BadRequest, { status: 400 })
  .annotateContext(OpenApi.annotations({
    title: "Loom",
    version,
    description: "Agents and workflows on Effect: start and follow runs, execute tools, probe health. " +
      "Every error is a JSON body with `_tag` and `message`; bad input is a 400 naming the field.",
    transform: finish
  }))
{}
