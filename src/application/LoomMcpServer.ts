/**
 * Loom as an MCP server: the tools in Loom's registry, served to other agents over
 * streamable HTTP (`/mcp`, one SDK session per client) or stdio. A call runs through the
 * ToolExecutor (validation, retry, breaker, timeout) and a cancelled request interrupts
 * it. When the registry changes, every session is sent `tools/list_changed`.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { CallToolRequestSchema, isInitializeRequest, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js"
import type { CallToolResult, ListToolsResult } from "@modelcontextprotocol/sdk/types.js"
import { Clock, Config, Deferred, Duration, Effect, FiberSet, Schedule, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Consumers from "node:stream/consumers"
import { toolSpec } from "../domain/Chat.js"
import { toolCall } from "../domain/ToolCall.js"
import { ToolRegistry } from "../domain/ToolRegistry.js"
import type { ToolResult } from "../domain/ToolResult.js"
import { ToolExecutor } from "./ToolExecutor.js"

/** A tool result as MCP carries it: the output as JSON text (and structured), or the error with `isError`. */
export const toCallResult = (result: ToolResult): CallToolResult =>
  result.succeeded
    ? {
      content: [{ type: "text", text: JSON.stringify(result.output ?? null) }],
      ...(typeof result.output === "object" && result.output !== null && !Array.isArray(result.output)
        ? { structuredContent: result.output as Record<string, unknown> }
        : {})
    }
    : {
      content: [{
        type: "text",
        text: `${result.error?._tag ?? result.status}: ${result.error?.message ?? ""}`
      }],
      isError: true
    }

/** Interrupts when `signal` aborts (the client cancelled the request). */
const aborted = (signal: AbortSignal) =>
  Effect.async<never>((resume) => {
    const onAbort = () => resume(Effect.interrupt)
    if (signal.aborted) return onAbort()
    signal.addEventListener("abort", onAbort, { once: true })
    return Effect.sync(() => signal.removeEventListener("abort", onAbort))
  })

/** Answers a JSON-RPC error outside any session (the SDK's own shape). */
const reject = (response: Http.ServerResponse, status: number, message: string) =>
  response.writeHead(status, { "content-type": "application/json" }).end(
    JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null })
  )

/** The registry's tools as MCP lists them. */
const listOf = (registry: ToolRegistry["Type"]): Effect.Effect<ListToolsResult> =>
  Effect.map(registry.list, (tools) => ({
    tools: tools.map((tool) => {
      const spec = toolSpec(tool)
      return {
        name: spec.name,
        description: spec.description,
        inputSchema: { ...spec.parameters, type: "object" as const }
      }
    })
  }))

/** An HTTP session and when it last saw a request (Clock millis). */
interface Session {
  readonly transport: StreamableHTTPServerTransport
  lastSeen: number
}

/**
 * Handles one request to `/mcp`: an `initialize` POST opens a session, every other
 * request must name a live one (so a stray request allocates nothing).
 */
const httpHandler =
  (newServer: () => Server, sessions: Map<string, Session>) =>
  (request: Http.IncomingMessage, response: Http.ServerResponse) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.tryPromise(async () => {
        const id = request.headers["mcp-session-id"]
        if (typeof id === "string") {
          const session = sessions.get(id)
          if (session === undefined) return reject(response, 404, "unknown MCP session")
          session.lastSeen = now
          return await session.transport.handleRequest(request, response)
        }
        if (request.method !== "POST") return reject(response, 400, "no MCP session: initialize first")
        if (Number(request.headers["content-length"] ?? 0) > 1024 * 1024) {
          return reject(response, 413, "request body over 1 MiB")
        }
        const message = await Consumers.json(request)
        if (!isInitializeRequest(message)) return reject(response, 400, "no MCP session: initialize first")
        const fresh: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => Crypto.randomUUID(),
          onsessioninitialized: (sessionId) => {
            sessions.set(sessionId, { transport: fresh, lastSeen: now })
          }
        })
        fresh.onclose = () => {
          if (fresh.sessionId !== undefined) sessions.delete(fresh.sessionId)
        }
        await newServer().connect(fresh)
        await fresh.handleRequest(request, response, message)
      })).pipe(
        Effect.catchAll((error) =>
          Effect.zipRight(
            Effect.logWarning(`MCP request failed: ${error.message}`),
            Effect.sync(() => {
              if (!response.headersSent) reject(response, 400, "bad MCP request")
              else response.end()
            })
          )
        )
      )

/** How long an HTTP session may go without a request before it is closed (`LOOM_MCP_SESSION_IDLE`). */
export const sessionIdle = Config.duration("LOOM_MCP_SESSION_IDLE").pipe(Config.withDefault(Duration.minutes(30)))

const sweepEvery = (idle: Duration.Duration) => Duration.max(Duration.millis(50), Duration.unsafeDivide(idle, 4))

/** Closes the sessions that saw no request for `idle`; their transports' `onclose` forgets them. */
const closeIdle = (sessions: Map<string, Session>, idle: Duration.Duration) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.forEach(
      [...sessions.values()].filter((session) => now - session.lastSeen >= Duration.toMillis(idle)),
      (session) => Effect.promise(() => session.transport.close().catch(() => undefined)),
      { discard: true }
    ))

export const make = Effect.gen(function*() {
  const registry = yield* ToolRegistry
  const executor = yield* ToolExecutor
  const run = yield* FiberSet.makeRuntimePromise<never>()
  const servers = new Set<Server>()
  let calls = 0

  const listTools = listOf(registry)

  const callTool = (name: string, args: unknown, signal: AbortSignal): Effect.Effect<CallToolResult> =>
    Effect.suspend(() => {
      calls++
      return executor.execute(toolCall(`mcp-${calls}`, name.replace(/[^A-Za-z0-9_.-]/g, "_") || "_", args ?? {}))
    }).pipe(
      Effect.map(toCallResult),
      Effect.raceFirst(aborted(signal)),
      Effect.withSpan("LoomMcpServer.callTool", { attributes: { "loom.tool": name }, captureStackTrace: false })
    )

  /** A fresh SDK server over Loom's tools; closing the scope closes it. */
  const newServer = () => {
    const server = new Server({ name: "loom", version: "0.1.0" }, { capabilities: { tools: { listChanged: true } } })
    server.setRequestHandler(ListToolsRequestSchema, () => run(listTools))
    server.setRequestHandler(
      CallToolRequestSchema,
      (request, extra) => run(callTool(request.params.name, request.params.arguments, extra.signal))
    )
    servers.add(server)
    server.onclose = () => {
      servers.delete(server)
    }
    return server
  }

  // Tell every connected client when the tools change.
  yield* Effect.forkScoped(Stream.runForEach(registry.changes, () =>
    Effect.forEach(
      [...servers],
      (server) => Effect.tryPromise(() => server.sendToolListChanged()).pipe(Effect.ignore),
      { discard: true }
    )))
  yield* Effect.addFinalizer(() =>
    Effect.forEach([...servers], (server) => Effect.promise(() => server.close().catch(() => undefined)), {
      discard: true
    })
  )

  const sessions = new Map<string, Session>()
  const handleHttp = httpHandler(newServer, sessions)
  const idle = yield* sessionIdle
  yield* Effect.forkScoped(Effect.repeat(closeIdle(sessions, idle), Schedule.spaced(sweepEvery(idle))))

  /** Serves `/mcp` on its own HTTP server at `host:port` (port 0: any free port) while the scope is open. */
  const serveHttp = (options: { readonly host?: string; readonly port?: number } = {}) =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.async<Http.Server>((resume) => {
          const server = Http.createServer((request, response) => {
            if ((request.url ?? "").split("?")[0] !== "/mcp") {
              response.writeHead(404).end()
              return
            }
            void run(handleHttp(request, response))
          })
          server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.async<void>((resume) => {
            server.closeAllConnections()
            server.close(() => resume(Effect.void))
          })
      )
      const address = server.address() as AddressInfo
      return { url: `http://${address.address}:${address.port}/mcp` }
    })

  /** Serves one client on stdin/stdout until it disconnects. */
  const serveStdio = Effect.gen(function*() {
    const done = yield* Deferred.make<void>()
    const transport = new StdioServerTransport()
    const server = newServer()
    server.onclose = () => {
      servers.delete(server)
      void run(Deferred.succeed(done, undefined))
    }
    yield* Effect.promise(() => server.connect(transport))
    yield* Deferred.await(done)
  })

  return { listTools, handleHttp, serveHttp, serveStdio, sessions: Effect.sync(() => sessions.size) } as const
})
