/**
 * A request's body, read by the service itself before any route sees it, so that a body
 * it will not take still gets a JSON reply: over `LOOM_MAX_BODY_BYTES` (by its
 * `Content-Length`, or counted as it arrives when it is sent in chunks) a 413, and one
 * that does not arrive within `LOOM_REQUEST_TIMEOUT` (a `Content-Length` larger than
 * what is sent) a 408. @effect/platform's own reader destroys the connection at its size
 * limit, so the client gets a reset instead of the 413; here the rest of an oversized
 * body is read and dropped, and the reply goes out. Routes then read the body from
 * memory, through the same request (whose Node response the reply is written to). `/mcp` is left to the MCP SDK, which reads its requests itself.
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Duration, Effect, Stream } from "effect"
import * as Http from "node:http"
import { BadRequest, PayloadTooLarge, RequestTimeout } from "./HttpErrors.js"

export interface Limits {
  readonly maxBodyBytes: number
  readonly requestTimeout: Duration.Duration
}

/** Methods whose body the service reads (fetch's Request takes a body with these). */
const withBody = new Set(["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

const hasBody = (request: HttpServerRequest.HttpServerRequest) =>
  request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"] ?? 0) > 0

/** Reads `incoming` to its end, keeping at most `maxBytes`: past them, the rest is read and dropped. */
const readAll = (incoming: Http.IncomingMessage, maxBytes: number) =>
  Effect.async<Uint8Array<ArrayBuffer>, PayloadTooLarge | BadRequest>((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const cleanup = () => {
      incoming.off("data", onData)
      incoming.off("end", onEnd)
      incoming.off("error", onBroken)
      incoming.off("close", onBroken)
    }
    function onData(chunk: Buffer) {
      size += chunk.length
      if (size <= maxBytes) return void chunks.push(chunk)
      cleanup()
      // still flowing with no listener: the rest is dropped as it comes, and the 413 can be read by the client
      incoming.resume()
      resume(Effect.fail(new PayloadTooLarge({ message: `request body over ${maxBytes} bytes` })))
    }
    function onEnd() {
      cleanup()
      resume(Effect.succeed(new Uint8Array(Buffer.concat(chunks))))
    }
    function onBroken() {
      cleanup()
      resume(Effect.fail(new BadRequest({ message: "the connection closed before the whole body arrived" })))
    }
    incoming.on("data", onData)
    incoming.once("end", onEnd)
    incoming.once("error", onBroken)
    incoming.once("close", onBroken)
    return Effect.sync(cleanup)
  })

/**
 * `request` reading its body from `body`: the same request (its URL, headers and the
 * Node response its reply is written to) with the readers of the body overridden.
 */
const fromMemory = (
  request: HttpServerRequest.HttpServerRequest,
  body: Uint8Array<ArrayBuffer>
): HttpServerRequest.HttpServerRequest => {
  const text = new TextDecoder().decode(body)
  return Object.create(request, {
    text: { value: Effect.succeed(text) },
    arrayBuffer: { value: Effect.succeed(body.buffer) },
    stream: { value: Stream.succeed(body) },
    modify: { value: (options: Parameters<typeof request.modify>[0]) => fromMemory(request.modify(options), body) }
  }) as HttpServerRequest.HttpServerRequest
}

/**
 * The request for the routes: the same one when there is no body to read here, or one
 * whose body is read into memory already; a body over the limit or too slow fails.
 */
export const buffered = (
  request: HttpServerRequest.HttpServerRequest,
  limits: Limits
): Effect.Effect<HttpServerRequest.HttpServerRequest, PayloadTooLarge | RequestTimeout | BadRequest> =>
  Effect.suspend(() => {
    if (Number(request.headers["content-length"] ?? 0) > limits.maxBodyBytes) {
      return Effect.fail(new PayloadTooLarge({ message: `request body over ${limits.maxBodyBytes} bytes` }))
    }
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const path = request.url.split("?")[0]
    if (
      !(incoming instanceof Http.IncomingMessage) || !withBody.has(request.method) || !hasBody(request) ||
      path === "/mcp"
    ) {
      return Effect.succeed(request)
    }
    // the server runs a request uninterruptibly: the read must be interruptible for its deadline to cut it
    return Effect.interruptible(readAll(incoming, limits.maxBodyBytes)).pipe(
      Effect.timeoutFail({
        duration: limits.requestTimeout,
        onTimeout: () =>
          new RequestTimeout({
            message: `the request body did not arrive within ${
              Duration.format(limits.requestTimeout)
            } (LOOM_REQUEST_TIMEOUT)`
          })
      }),
      Effect.map((body) => fromMemory(request, body))
    )
  })
