/**
 * The service's answers to requests it cannot route or read, as JSON bodies like every
 * other error it sends (`{ "_tag", "message", ... }`): a body that is not JSON or nests
 * too deep, one over the size limit, one of another media type, a path it does not
 * have, a method a path does not take. The API declares the body errors of the endpoints that take one (`JsonBody`);
 * the middleware answers the rest with `toResponse`.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Schema } from "effect"

/** The body is not JSON, or nests deeper than the service reads. */
export class MalformedBody extends Schema.TaggedError<MalformedBody>()(
  "MalformedBody",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400, description: "The body is not JSON, or nests too deep" })
) {}

/** The body is over `LOOM_MAX_BODY_BYTES`. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 413, description: "The body is over LOOM_MAX_BODY_BYTES" })
) {}

/** The body is not `application/json`, the only kind the API's payloads come in. */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 415, description: "The body is not application/json" })
) {}

/** The body did not arrive within `LOOM_REQUEST_TIMEOUT` (a `Content-Length` larger than what was sent, say). */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()(
  "RequestTimeout",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 408, description: "The body did not arrive within LOOM_REQUEST_TIMEOUT" })
) {}

/** The request could not be read (a broken or unreadable body). */
export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/** No route has this path. */
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

/** The path exists, but not with this method; `allowed` (and the `Allow` header) say which. */
export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()(
  "MethodNotAllowed",
  { message: Schema.String, allowed: Schema.Array(Schema.String) },
  HttpApiSchema.annotations({ status: 405 })
) {}

export type HttpError =
  | MalformedBody
  | PayloadTooLarge
  | UnsupportedMediaType
  | RequestTimeout
  | BadRequest
  | NotFound
  | MethodNotAllowed

const HttpError = Schema.Union(
  MalformedBody,
  PayloadTooLarge,
  UnsupportedMediaType,
  RequestTimeout,
  BadRequest,
  NotFound,
  MethodNotAllowed
)
const encode = Schema.encodeSync(HttpError)

const statusOf = (error: HttpError): number => {
  switch (error._tag) {
    case "MalformedBody":
    case "BadRequest":
      return 400
    case "NotFound":
      return 404
    case "MethodNotAllowed":
      return 405
    case "RequestTimeout":
      return 408
    case "PayloadTooLarge":
      return 413
    case "UnsupportedMediaType":
      return 415
  }
}

const headersOf = (error: HttpError): Record<string, string> => {
  switch (error._tag) {
    case "MethodNotAllowed":
      return { allow: error.allowed.join(", ") }
    // the rest of the body may still come: this connection cannot carry another request
    case "RequestTimeout":
      return { connection: "close" }
    default:
      return {}
  }
}

/** The error as the JSON reply the API would give for it (with `Allow` on a 405). */
export const toResponse = (error: HttpError): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(encode(error), { status: statusOf(error), headers: headersOf(error) })
