/**
 * The HTTP service: the API's handlers behind the middleware (body limit, 429/503 with
 * Retry-After, JSON replies to the client's mistakes), Loom's MCP server at `/mcp`, the OpenAPI document and its docs page, and a
 * banner that says where it listens and whether the LLM answers. The listener itself is
 * the composition root's.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiSwagger from "@effect/platform/HttpApiSwagger"
import * as HttpServer from "@effect/platform/HttpServer"
import { Console, Effect, Layer } from "effect"
import { LanguageModel } from "../../domain/LanguageModel.js"
import { LoomConfig } from "../LoomConfig.js"
import * as ClientErrors from "./ClientErrors.js"
import * as Handlers from "./Handlers.js"
import * as McpRoute from "./McpRoute.js"
import * as Middleware from "./Middleware.js"

const Api = Layer.unwrapEffect(
  Effect.map(
    LoomConfig,
    (config) =>
      HttpApiBuilder.serve(
        Middleware.make({
          maxBodyBytes: config.maxBodyBytes,
          requestTimeout: config.requestTimeout,
          retryAfterSeconds: 1
        })
      ).pipe(
        Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
        Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
        Layer.provide(Handlers.layer),
        Layer.provide(ClientErrors.layer({ maxBodyBytes: config.maxBodyBytes })),
        Layer.provide(McpRoute.layer)
      )
  )
)

/** Says where the service listens, and whether the LLM answers (the service runs without it). */
const Banner = Layer.effectDiscard(Effect.gen(function*() {
  yield* HttpServer.addressFormattedWith((address) =>
    Console.log(`Loom listening on ${address} (docs at ${address}/docs)`)
  )
  const llm = yield* LanguageModel
  yield* llm.models.pipe(
    Effect.timeout("3 seconds"),
    Effect.tap(() => Effect.logInfo("LLM reachable")),
    Effect.catchAll((error) =>
      Effect.logWarning(
        `No Ollama reachable (${error.message}); the service runs without it. Set OLLAMA_HOSTS, or LOOM_LLM=simulator to try Loom offline.`
      )
    )
  )
}))

export const layer = Layer.merge(Api, Banner)
