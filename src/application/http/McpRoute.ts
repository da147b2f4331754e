/**
 * `/mcp` on the service's own port, beside the HTTP API: Loom's tools for MCP clients
 * over streamable HTTP (sessions close after `LOOM_MCP_SESSION_IDLE` without a request).
 * The SDK transport writes the Node response itself, so the route waits until that
 * response is done and hands the server an empty one, which it does not send again.
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import type * as Http from "node:http"
import * as LoomMcpServer from "../LoomMcpServer.js"

/** Completes when the response has been sent, or its connection closed (a stream the client left). */
const done = (response: Http.ServerResponse) =>
  Effect.async<void>((resume) => {
    if (response.writableEnded || response.destroyed) return resume(Effect.void)
    const finish = () => resume(Effect.void)
    response.once("close", finish)
    return Effect.sync(() => {
      response.off("close", finish)
    })
  })

export const layer = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const mcp = yield* LoomMcpServer.make
    yield* router.all(
      "/mcp",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const response = NodeHttpServerRequest.toServerResponse(request)
        yield* mcp.handleHttp(NodeHttpServerRequest.toIncomingMessage(request), response)
        yield* done(response)
        return HttpServerResponse.empty()
      })
    )
  })
)
