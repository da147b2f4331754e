/**
 * A client's mistakes that HttpApi itself would answer with an empty reply, answered as
 * JSON instead, from inside HttpApi (the server sends its own reply to an error before
 * the outer middleware sees it): a path no route has (404), a method a known path does
 * not take (405 with `Allow`), a body that cannot be read (400, or 413 over the size
 * limit). They are logged at DEBUG, not as the service's errors.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerError from "@effect/platform/HttpServerError"
import { Cause, Effect, Option } from "effect"
import type { HttpError } from "./HttpErrors.js"
import { BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, toResponse } from "./HttpErrors.js"
import { allowedMethods } from "./Routes.js"

/**
 * No route answered: the path does not take this method, or it is unknown (the router
 * also refuses a path parameter over 100 characters, which no run id is).
 */
const notRouted = (method: string, url: string): NotFound | MethodNotAllowed => {
  const path = url.split("?")[0] ?? url
  const allowed = allowedMethods(path)
  return allowed.length === 0 || allowed.includes(method)
    ? new NotFound({ message: `no route for ${method} ${path}` })
    : new MethodNotAllowed({ message: `${path} does not take ${method}; it takes ${allowed.join(", ")}`, allowed })
}

/** A body that could not be read: over the size limit, or cut off or garbled on the way. */
const unreadable = (error: HttpServerError.RequestError, maxBodyBytes: number): BadRequest | PayloadTooLarge =>
  error.cause instanceof Error && error.cause.message === "maxBytes exceeded"
    ? new PayloadTooLarge({ message: `request body over ${maxBodyBytes} bytes` })
    : new BadRequest({ message: `could not read the request: ${error.description ?? String(error.cause)}` })

/** The client's mistake behind `cause`, if that is what it is. */
export const clientError = (cause: Cause.Cause<unknown>, maxBodyBytes: number): Option.Option<HttpError> => {
  const error = Cause.squash(cause)
  if (!HttpServerError.isServerError(error)) return Option.none()
  switch (error._tag) {
    case "RouteNotFound":
      return Option.some(notRouted(error.request.method, error.request.url))
    case "RequestError":
      return Option.some(unreadable(error, maxBodyBytes))
    default:
      return Option.none()
  }
}

/** The HttpApi middleware: the client's mistakes become their JSON replies; every other failure passes on. */
export const layer = (options: { readonly maxBodyBytes: number }) =>
  HttpApiBuilder.middleware((app) =>
    Effect.catchAllCause(app, (cause) =>
      Option.match(clientError(cause, options.maxBodyBytes), {
        onNone: () => Effect.failCause(cause),
        onSome: (error) => Effect.as(Effect.logDebug(`request refused: ${error.message}`), toResponse(error))
      }))
  )
