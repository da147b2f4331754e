/**
 * The handlers of the HTTP API. Run events go out as Server-Sent Events: the stored
 * history first, then each new event as it is saved, until the run ends; a client
 * that goes away stops only its own stream.
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Context, Deferred, Effect, Layer, Schema, Stream } from "effect"
import type * as Http from "node:http"
import { toolSpec } from "../../domain/Chat.js"
import { toolNameOrUnknown } from "../../domain/Tool.js"
import { ToolCall, ToolCallId } from "../../domain/ToolCall.js"
import { ToolRegistry } from "../../domain/ToolRegistry.js"
import { WorkflowEvent } from "../../domain/Workflow.js"
import { RunManager } from "../RunManager.js"
import { ShuttingDown } from "../Shutdown.js"
import { ToolExecutor } from "../ToolExecutor.js"
import * as ToolGraph from "../ToolGraph.js"
import { InvalidGraphRequest, LoomApi } from "./Api.js"
import { HealthChecks } from "./HealthChecks.js"
import { JsonBody } from "./JsonBody.js"

/** The metrics in Prometheus text format (main.ts wires the exporter in). */
export class MetricsText extends Context.Tag("loom/MetricsText")<MetricsText, Effect.Effect<string>>() {}

const encodeEvent = Schema.encodeSync(WorkflowEvent)
const encoder = new TextEncoder()

/**
 * Sends a response's headers before its first body chunk (Node holds them until then): a
 * follower of a quiet run sees its stream open at once, not a request that hangs.
 */
const flushHeaders = (request: HttpServerRequest.HttpServerRequest) =>
  Stream.drain(Stream.fromEffect(Effect.sync(() => {
    const response: Partial<Http.ServerResponse> | undefined = NodeHttpServerRequest.toServerResponse(request)
    // `headersSent` is already true here (the head is written, not yet sent); flushing sends it
    response?.flushHeaders?.()
  })))

const RunsLive = HttpApiBuilder.group(LoomApi, "runs", (handlers) =>
  Effect.gen(function*() {
    const runs = yield* RunManager
    return handlers
      .handle("start", ({ payload }) => Effect.map(runs.start(payload), (threadId) => ({ threadId })))
      .handle("list", ({ urlParams }) => urlParams.thread === undefined ? runs.list : runs.thread(urlParams.thread))
      .handle("get", ({ path }) => runs.get(path.id))
      .handle("resume", ({ path, payload }) => runs.resume(path.id, payload))
      .handle("history", ({ path }) => runs.history(path.id))
      .handle("fork", ({ path, payload }) => Effect.map(runs.fork(path.id, payload), (threadId) => ({ threadId })))
      .handle("cancel", ({ path }) => runs.cancel(path.id))
      .handleRaw("events", ({ headers, path, request }) =>
        Effect.gen(function*() {
          yield* runs.get(path.id)
          // an EventSource that reconnects says where it got to; it gets only what came after
          const events = runs.follow(path.id, headers["last-event-id"] ?? 0).pipe(
            Stream.map((stored) =>
              encoder.encode(
                `id: ${stored.seq}\nevent: ${stored.event._tag}\ndata: ${JSON.stringify(encodeEvent(stored.event))}\n\n`
              )
            ),
            Stream.catchAll(() => Stream.empty)
          )
          return HttpServerResponse.stream(Stream.concat(flushHeaders(request), events), {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-cache", connection: "keep-alive" }
          })
        }))
  }))

const ToolsLive = HttpApiBuilder.group(LoomApi, "tools", (handlers) =>
  Effect.gen(function*() {
    const registry = yield* ToolRegistry
    const executor = yield* ToolExecutor
    const call = (spec: { readonly id: string; readonly tool: string; readonly input: unknown }) =>
      new ToolCall({ id: ToolCallId.make(spec.id), tool: toolNameOrUnknown(spec.tool), input: spec.input }, true)
    return handlers
      .handle("list", () =>
        Effect.map(registry.list, (tools) =>
          tools.map((tool) => {
            const spec = toolSpec(tool)
            return { name: spec.name, description: spec.description, kind: tool.kind, parameters: spec.parameters }
          })))
      .handle("execute", ({ payload }) => {
        const options = payload.concurrency === undefined ? {} : { concurrency: payload.concurrency }
        switch (payload.mode) {
          case "parallel":
            return Effect.map(executor.executeParallel(payload.calls.map(call), options), (results) => ({ results }))
          case "sequential":
            return Effect.map(executor.executeSequential(payload.calls.map(call), options), ({ results }) => ({
              results
            }))
          case "graph":
            return ToolGraph.make(payload.nodes).pipe(
              Effect.mapError((error) => new InvalidGraphRequest({ message: error.message, nodes: error.nodes })),
              Effect.flatMap((graph) => executor.executeGraph(graph, options)),
              Effect.map((results) => ({ results }))
            )
          case "batch":
            return Effect.map(executor.executeBatch(payload.tool, payload.inputs, options), (results) => ({ results }))
        }
      })
  }))

const HealthLive = HttpApiBuilder.group(LoomApi, "health", (handlers) =>
  Effect.gen(function*() {
    const checks = yield* HealthChecks
    const metrics = yield* MetricsText
    const shutdown = yield* ShuttingDown
    return handlers
      .handle("live", () => Effect.succeed({ status: "ok" as const }))
      // 503 when not ready (a critical check is down, or the service is shutting down), for probes that read the status
      .handleRaw("ready", () =>
        Effect.gen(function*() {
          const results = yield* Effect.forEach(
            checks,
            (check) => Effect.map(check.run, (result) => [check.name, result, check.critical] as const),
            { concurrency: "unbounded" }
          )
          const stopping = yield* Deferred.isDone(shutdown)
          const ready = !stopping && results.every(([, result, critical]) => !critical || result.status !== "down")
          const body = {
            ready,
            checks: Object.fromEntries([
              ...results.map(([name, result]) => [name, result] as const),
              ...(stopping ? [["shutdown", { status: "down", detail: "shutting down" }] as const] : [])
            ])
          }
          return yield* HttpServerResponse.json(body, { status: ready ? 200 : 503 }).pipe(Effect.orDie)
        }))
      .handle("metrics", () => metrics)
  }))

/** Every handler; needs the RunManager, ToolRegistry, ToolExecutor, HealthChecks, MetricsText and ShuttingDown. */
export const layer = HttpApiBuilder.api(LoomApi).pipe(
  Layer.provide([RunsLive, ToolsLive, HealthLive]),
  Layer.provide(JsonBody.layer)
)
