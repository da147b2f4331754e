/**
 * One MCP server, kept connected. A supervisor fiber opens a session (stdio child
 * process or streamable HTTP), holds it until the connection dies, then reconnects on
 * a Schedule; closing the scope closes the session (and stops a stdio server). Every
 * request goes through the server's CircuitBreaker with an Effect deadline (the SDK's
 * own timeout is switched off) and an AbortSignal, so an interrupted call is cancelled
 * on the server too. Replies are decoded with `McpWire`. A server with a `rateLimit` has
 * its tool calls spaced to it: a call over the limit waits its turn (outside its deadline)
 * rather than being refused; listings, cached by the connector, are not counted.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import { ErrorCode, McpError, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js"
import type { Duration } from "effect"
import { Deferred, Effect, FiberSet, Metric, Option, PubSub, Schedule, Schema, Stream, SubscriptionRef } from "effect"
import type { CircuitOpen, Timeout } from "../../domain/Errors.js"
import * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import * as MetricTags from "../resilience/MetricTags.js"
import * as RateLimit from "../resilience/RateLimit.js"
import * as Timeouts from "../resilience/Timeouts.js"
import type { ServerSpec } from "./McpConfig.js"
import { StdioServer } from "./McpConfig.js"
import type { ToolInfo } from "./McpWire.js"
import { CallToolResult, ListToolsResult, McpBadResponse, McpRequestFailed, McpUnavailable } from "./McpWire.js"

export type Status = "connecting" | "connected" | "disconnected"

type Session =
  | { readonly _tag: "Connecting" }
  | { readonly _tag: "Connected"; readonly client: Client; readonly transport: Transport }
  | { readonly _tag: "Failed"; readonly message: string }

export interface Options {
  readonly spec: ServerSpec
  readonly connectTimeout: Duration.DurationInput
  readonly listTimeout: Duration.DurationInput
  readonly callTimeout: Duration.DurationInput
  /** Delays between reconnection attempts. */
  readonly reconnect: Schedule.Schedule<unknown, unknown>
  readonly breaker?: Omit<CircuitBreaker.Options, "service">
}

export type RequestError = McpUnavailable | McpRequestFailed | McpBadResponse | Timeout | CircuitOpen

export interface Stats {
  readonly status: Status
  /** The stdio server's process id while connected. */
  readonly pid: number | undefined
  readonly connects: number
  readonly listRequests: number
  readonly callRequests: number
}

export interface McpConnection {
  readonly name: string
  readonly list: Effect.Effect<ReadonlyArray<ToolInfo>, RequestError>
  readonly call: (tool: string, args: Record<string, unknown>) => Effect.Effect<CallToolResult, RequestError>
  /** Emits when the server's tools may have changed: `tools/list_changed`, or a new session. */
  readonly changes: Stream.Stream<void>
  readonly stats: Effect.Effect<Stats>
  readonly breaker: CircuitBreaker.CircuitBreaker
}

export const connected = Metric.gauge("loom_mcp_connected", { description: "1 while an MCP server is connected" })

/** The SDK's own request timeout, effectively off: Effect owns every deadline. */
const NO_SDK_TIMEOUT = 2 ** 31 - 1

/** A reconnect schedule: exponential from 200 ms, at most 5 s apart, reset after a minute up. */
export const defaultReconnect: Schedule.Schedule<unknown, unknown> = Schedule.union(
  Schedule.exponential("200 millis"),
  Schedule.spaced("5 seconds")
).pipe(Schedule.resetAfter("1 minute"))

const transportFor = (spec: ServerSpec): Transport =>
  spec instanceof StdioServer
    ? new StdioClientTransport({
      command: spec.command,
      args: [...spec.args],
      env: { PATH: process.env["PATH"] ?? "", ...spec.env },
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      stderr: "ignore"
    })
    : new StreamableHTTPClientTransport(new URL(spec.url))

/** SDK failures: a JSON-RPC error from the server, or the connection going away. */
const failureOf = (server: string) => (error: unknown): McpUnavailable | McpRequestFailed =>
  error instanceof McpError && error.code !== ErrorCode.ConnectionClosed && error.code !== ErrorCode.RequestTimeout
    ? new McpRequestFailed({ server, code: error.code, message: error.message })
    : new McpUnavailable({ server, message: error instanceof Error ? error.message : String(error) })

/** A reply decoded with `schema`; a reply that does not fit is the server's bad response. */
const decodeFrom = (server: string) => <A, I>(schema: Schema.Schema<A, I>) => (reply: unknown) =>
  Schema.decodeUnknown(schema)(reply).pipe(
    Effect.mapError((error) => new McpBadResponse({ server, message: error.message }))
  )

/**
 * The live session. While a connection attempt is on its way this waits for it (up to
 * the connect deadline); when the last attempt failed it fails at once.
 */
const connectedSession = (
  session: SubscriptionRef.SubscriptionRef<Session>,
  server: string,
  connectTimeout: Duration.DurationInput
) =>
  session.changes.pipe(
    Stream.filter((s) => s._tag !== "Connecting"),
    Stream.runHead,
    Effect.flatMap((found) => {
      const s = Option.getOrUndefined(found)
      return s?._tag === "Connected"
        ? Effect.succeed(s)
        : Effect.fail(
          new McpUnavailable({
            server,
            message: s?._tag === "Failed" ? `not connected: ${s.message}` : "not connected"
          })
        )
    }),
    Effect.timeoutFail({
      duration: connectTimeout,
      onTimeout: () => new McpUnavailable({ server, message: "not connected" })
    })
  )

/** Runs a call once the server's rate limit lets it, when it has one. */
const rateLimited = (server: string, rate: RateLimit.Rate | undefined) =>
  rate === undefined
    ? Effect.succeed(<A, E>(self: Effect.Effect<A, E>) => self)
    : Effect.map(
      RateLimit.make,
      (limiter) => <A, E>(self: Effect.Effect<A, E>) => Effect.zipRight(limiter.take(`mcp:${server}`, rate), self)
    )

/** A server's breaker: only unavailability and deadlines count against it, not its answers. */
const breakerFor = (server: string, options: Options["breaker"]) =>
  CircuitBreaker.make<Exclude<RequestError, CircuitOpen>>({
    consecutiveFailures: 3,
    resetTimeout: "5 seconds",
    ...options,
    service: `mcp:${server}`,
    isFailure: (error) => error._tag === "McpUnavailable" || error._tag === "Timeout"
  })

export const make = (options: Options) =>
  Effect.gen(function*() {
    const name = options.spec.name
    const run = yield* FiberSet.makeRuntime<never>()
    const session = yield* SubscriptionRef.make<Session>({ _tag: "Connecting" })
    const changed = yield* PubSub.unbounded<void>()
    const counts = { connects: 0, listRequests: 0, callRequests: 0 }
    const gauge = MetricTags.tagged(connected, { server: name })

    const unavailable = (message: string) => new McpUnavailable({ server: name, message })
    const failure = failureOf(name)

    const breaker = yield* breakerFor(name, options.breaker)
    const admitted = yield* rateLimited(name, options.spec.rateLimit)

    /** One session: connect, publish it, wait for the connection to die; closed on the way out. */
    const once = Effect.scoped(Effect.gen(function*() {
      yield* SubscriptionRef.set(session, { _tag: "Connecting" })
      const closed = yield* Deferred.make<void>()
      const transport = transportFor(options.spec)
      const client = new Client({ name: "loom", version: "0.1.0" }, { capabilities: {} })
      client.onclose = () => {
        run(Deferred.succeed(closed, undefined))
      }
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        run(PubSub.publish(changed, undefined))
      })
      yield* Effect.addFinalizer(() => Effect.promise(() => client.close().catch(() => undefined)))
      yield* Effect.tryPromise({
        try: (signal) => client.connect(transport, { signal, timeout: NO_SDK_TIMEOUT }),
        catch: failure
      }).pipe(
        Timeouts.within(`mcp.connect:${name}`, options.connectTimeout),
        Effect.tapError((error) => SubscriptionRef.set(session, { _tag: "Failed", message: error.message }))
      )
      counts.connects++
      yield* Metric.set(gauge, 1)
      yield* SubscriptionRef.set(session, { _tag: "Connected", client, transport })
      yield* PubSub.publish(changed, undefined)
      yield* Deferred.await(closed)
      return yield* unavailable("connection closed")
    })).pipe(
      // A session that was up drops to Connecting (the next attempt is on its way); a failed one stays Failed.
      Effect.ensuring(
        Effect.zipRight(
          SubscriptionRef.update(session, (s): Session => s._tag === "Connected" ? { _tag: "Connecting" } : s),
          Metric.set(gauge, 0)
        )
      ),
      Effect.tapError((error) => Effect.logWarning(`MCP server ${name}: ${error.message}`))
    )

    yield* Effect.forkScoped(Effect.retry(once, options.reconnect).pipe(Effect.ignore))

    const current = connectedSession(session, name, options.connectTimeout)
    const decode = decodeFrom(name)

    const listPage = (cursor: string | undefined) =>
      Effect.flatMap(current, ({ client }) => {
        counts.listRequests++
        return Effect.tryPromise({
          try: (signal) =>
            client.listTools(cursor === undefined ? undefined : { cursor }, { signal, timeout: NO_SDK_TIMEOUT }),
          catch: failure
        })
      }).pipe(Effect.flatMap(decode(ListToolsResult)))

    const list = Effect.gen(function*() {
      const tools: Array<ToolInfo> = []
      let cursor: string | undefined
      do {
        const page = yield* listPage(cursor)
        tools.push(...page.tools)
        cursor = page.nextCursor
      } while (cursor !== undefined)
      return tools
    }).pipe(
      Timeouts.within(`mcp.list:${name}`, options.listTimeout),
      breaker.protect,
      Effect.withSpan("McpConnection.list", { attributes: { "loom.mcp.server": name }, captureStackTrace: false })
    )

    const call = (tool: string, args: Record<string, unknown>) =>
      Effect.flatMap(current, ({ client }) => {
        counts.callRequests++
        return Effect.tryPromise({
          try: (signal) =>
            client.callTool({ name: tool, arguments: args }, undefined, { signal, timeout: NO_SDK_TIMEOUT }),
          catch: failure
        })
      }).pipe(
        Effect.flatMap(decode(CallToolResult)),
        Timeouts.within(`mcp.call:${name}.${tool}`, options.callTimeout),
        admitted,
        breaker.protect,
        Effect.withSpan("McpConnection.call", {
          attributes: { "loom.mcp.server": name, "loom.tool": tool },
          captureStackTrace: false
        })
      )

    const stats = Effect.map(SubscriptionRef.get(session), (s): Stats => ({
      status: s._tag === "Connected" ? "connected" : s._tag === "Connecting" ? "connecting" : "disconnected",
      pid: s._tag === "Connected" && s.transport instanceof StdioClientTransport
        ? s.transport.pid ?? undefined
        : undefined,
      ...counts
    }))

    return {
      name,
      list,
      call,
      changes: Stream.fromPubSub(changed),
      stats,
      breaker
    } satisfies McpConnection
  })
