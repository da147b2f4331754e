/**
 * What every request passes through: a body-size limit (413 before the body is read),
 * Retry-After on 429 and 503, and request metrics by route, method and status. Errors
 * never carry stack traces to clients: HttpApi answers defects with a bare 500, logged
 * here. (A client's mistakes HttpApi would answer with an empty 4xx are answered as JSON
 * inside it, by `ClientErrors`.)
 */
import {
  FileSystem,
  HttpApp,
  HttpIncomingMessage,
  HttpMiddleware,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { Cause, Clock, Effect, Metric, Option } from "effect"
import * as MetricTags from "../../infrastructure/resilience/MetricTags.js"
import { PayloadTooLarge, toResponse } from "./HttpErrors.js"
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

export const make = (options: { readonly maxBodyBytes: number; readonly retryAfterSeconds: number }) =>
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
      const length = Number(request.headers["content-length"] ?? 0)
      const response = length > options.maxBodyBytes
        ? toResponse(new PayloadTooLarge({ message: `request body over ${options.maxBodyBytes} bytes` }))
        // a handler's typed error becomes its response here, so it is counted and gets its headers too
        // a body without a length (chunked) is cut at the same limit while it is read
        : yield* HttpIncomingMessage.withMaxBodySize(app, Option.some(FileSystem.Size(options.maxBodyBytes))).pipe(
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Cause.isDie(cause) ? Effect.logError("request failed", cause) : Effect.void,
              Effect.map(HttpServerError.causeResponse(cause), ([response]) => response)
            )
          )
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
