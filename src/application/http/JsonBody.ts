/**
 * Reads the JSON body of the endpoints that take one before HttpApi decodes it, so that a
 * body HttpApi cannot take is a client error with a JSON reply: HttpApi answers JSON
 * that does not parse with an empty 400 (a defect inside it), and formats a payload
 * error with the whole value in its message, which overflows the stack on a body nested
 * a few thousand levels deep (a 500). The body is read once: HttpApi reads the same
 * cached text after this.
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Effect, Layer, Schema } from "effect"
import { MalformedBody, PayloadTooLarge, RequestTimeout, UnsupportedMediaType } from "./HttpErrors.js"

/** How deep a body may nest. Loom's payloads nest a few levels; tool inputs get room to spare. */
export const maxDepth = 256

/**
 * Whether `text` nests more than `limit` arrays and objects deep, scanned without parsing
 * (strings skipped), so a hostile body costs one pass and no recursion.
 */
export const nestsDeeperThan = (text: string, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (inString) {
      if (code === 92) i++ // a backslash escapes the next character
      else if (code === 34) inString = false
    } else if (code === 34) {
      inString = true
    } else if (code === 91 || code === 123) {
      if (++depth > limit) return true
    } else if (code === 93 || code === 125) {
      depth--
    }
  }
  return false
}

/** Why the body could not be read: over the size limit, or a broken connection. */
const unreadable = (error: HttpServerError.RequestError): MalformedBody | PayloadTooLarge =>
  error.cause instanceof Error && error.cause.message === "maxBytes exceeded"
    ? new PayloadTooLarge({ message: "request body over the size limit (LOOM_MAX_BODY_BYTES)" })
    : new MalformedBody({ message: `could not read the request body: ${error.message}` })

/**
 * A body HttpApi reads as JSON: one that says so, or says nothing. Another media type
 * would be read as form fields, text, or multipart (which crashes on a missing boundary).
 */
const isJson = (contentType: string | undefined) =>
  contentType === undefined || contentType.toLowerCase().includes("application/json")

const check = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const contentType = request.headers["content-type"]
  if (!isJson(contentType)) {
    return yield* new UnsupportedMediaType({ message: `the body must be application/json, not ${contentType}` })
  }
  const text = yield* Effect.mapError(request.text, unreadable)
  // an empty body reads as null, which the payload's decoding reports by field
  if (text.length === 0) return
  if (nestsDeeperThan(text, maxDepth)) {
    return yield* new MalformedBody({ message: `request body nests deeper than ${maxDepth} levels` })
  }
  yield* Effect.try({
    try: () => JSON.parse(text),
    catch: (error) => new MalformedBody({ message: `request body is not valid JSON: ${String(error)}` })
  })
})

/**
 * An endpoint's body is JSON, readable, parses and is not nested too deep; else 400 (413
 * when too large, 415 when it is another media type).
 */
export class JsonBody extends HttpApiMiddleware.Tag<JsonBody>()("loom/JsonBody", {
  // RequestTimeout is the middleware's (the body is read before this runs), listed here for the document
  failure: Schema.Union(MalformedBody, PayloadTooLarge, UnsupportedMediaType, RequestTimeout)
}) {
  static readonly layer = Layer.succeed(JsonBody, check)
}
