/**
 * What every request passes through: its body read within the size limit and the
 * request deadline (413 and 408 as JSON, `RequestBody`), Retry-After on 429 and 503, and
 * request metrics by route, method and status. Errors never carry stack traces to
 * clients: HttpApi answers defects with a bare 500, logged here at ERROR; a client that
 * went away is no error of the service's. (A client's mistakes HttpApi would answer with
 * an empty 4xx are answered as JSON inside it, by `ClientErrors`.)
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { Duration } from "effect"
import { Cause, Chunk, Clock, Effect, Metric, Option } from "effect"
import * as MetricTags from "../../infrastructure/resilience/MetricTags.js"
import { toResponse } from "./HttpErrors.js"
import * as RequestBody from "./RequestBody.js"
import { allowedMethods } from "./Routes.js"

export const httpRequests = MetricTags.counter("loom_http_requests", "HTTP requests by route, method and status")
export const httpDuration = MetricTags.millisHistogram(
  "loom_http_request_duration_ms",
  "HTTP request duration in milliseconds"
)

/**
 * The route a request belongs to, with run ids folded and every path no route has as
 * `unknown`, so series stay few whatever paths clients ask for.
 */
export const routeOf = (url: string): string => {
  const path = url.split("?")[0] ?? url
  return allowedMethods(path).length > 0 || path === "/mcp"
    ? path.replace(/^\/v1\/runs\/[^/]+/, "/v1/runs/:id")
    : "unknown"
}

/**
 * How a failed request is logged: a defect at ERROR with its cause; a client that went
 * away (499) at DEBUG; a typed error reply is the API at work, not logged. (HttpApi
 * carries the reply it chose as a defect of its own, which is no defect.)
 */
const logFailure = (cause: Cause.Cause<unknown>, response: HttpServerResponse.HttpServerResponse) => {
  const defects = Chunk.filter(Cause.defects(cause), (defect) => !HttpServerResponse.isServerResponse(defect))
  if (Chunk.isNonEmpty(defects)) return Effect.logError("request failed", cause)
  return response.status === 499 ? Effect.logDebug("the client closed the connection before the reply") : Effect.void
}

export const make = (
  options: {
    readonly maxBodyBytes: number
    readonly retryAfterSeconds: number
    readonly requestTimeout: Duration.Duration
  }
) =>
  HttpMiddleware.make((app) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      // The last word on the response: an error reply is only final after the middleware has run.
      yield* HttpApp.appendPreResponseHandler((_, response) =>
        Effect.succeed(
          response.status === 429 || response.status === 503
            ? HttpServerResponse.setHeader(response, "retry-after", String(options.retryAfterSeconds))
            : response
        )
      )
      const started = yield* Clock.currentTimeMillis
      const response = yield* RequestBody.buffered(request, options).pipe(
        Effect.matchEffect({
          onFailure: (error) => Effect.as(Effect.logDebug(`request refused: ${error.message}`), toResponse(error)),
          onSuccess: (readable) =>
            // a handler's typed error becomes its response here, so it is counted and gets its headers too
            // (routes that read the body themselves, /mcp, are cut at the same limit)
            HttpIncomingMessage.withMaxBodySize(app, Option.some(FileSystem.Size(options.maxBodyBytes))).pipe(
              Effect.provideService(HttpServerRequest.HttpServerRequest, readable),
              Effect.catchAllCause((cause) =>
                Effect.flatMap(
                  HttpServerError.causeResponse(cause),
                  ([response]) => Effect.as(logFailure(cause, response), response)
                )
              )
            )
        })
      )
      const finished = yield* Clock.currentTimeMillis
      const route = routeOf(request.url)
      yield* Metric.increment(
        MetricTags.tagged(httpRequests, { route, method: request.method, status: String(response.status) })
      )
      yield* Metric.update(MetricTags.tagged(httpDuration, { route }), finished - started)
      return response
    })
  )
