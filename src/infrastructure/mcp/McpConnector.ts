/**
 * MCP servers as tool sources. Each configured server is a kept-alive `McpConnection`;
 * its tools, namespaced `server.tool`, become Loom tools whose input is checked against
 * the server's JSON Schema before any call. Tool lists are cached per server with a
 * TTL and dropped when the server says `tools/list_changed` or reconnects; listing
 * asks every server at once, and a slow or dead one is reported unavailable without
 * holding up the others. Calls run as jobs on a WorkerPool (bounded, backpressure).
 */
import type { Duration, Scope } from "effect"
import { Cache, Clock, Context, Effect, Exit, Layer, Metric, Option, Schema, Stream } from "effect"
import { ToolFailed, ToolNotFound } from "../../domain/Errors.js"
import type { QueueFull, Shutdown, ToolHandlerError } from "../../domain/Errors.js"
import type { HealthCheck } from "../../domain/Health.js"
import * as Tool from "../../domain/Tool.js"
import type { ToolDefinition } from "../../domain/Tool.js"
import { ToolRegistry } from "../../domain/ToolRegistry.js"
import type * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import * as MetricTags from "../resilience/MetricTags.js"
import * as Timeouts from "../resilience/Timeouts.js"
import * as WorkerPool from "../resilience/WorkerPool.js"
import { fromJsonSchema } from "./JsonSchemaValidator.js"
import * as McpConfig from "./McpConfig.js"
import type { ServerSpec } from "./McpConfig.js"
import * as McpConnection from "./McpConnection.js"
import type { ToolInfo } from "./McpWire.js"
import type { CallToolResult } from "./McpWire.js"
import { textOf, ToolOutput } from "./McpWire.js"

export interface Options {
  readonly servers: ReadonlyArray<ServerSpec>
  /** MCP calls running at once, over all servers (default 16). */
  readonly workers?: number
  /** Calls that may wait for a worker (default 256). */
  readonly capacity?: number
  readonly overflow?: WorkerPool.Overflow
  /** How long a server's tool list is served from cache (default 5 minutes). */
  readonly toolsTtl?: Duration.DurationInput
  readonly reconnect?: McpConnection.Options["reconnect"]
  readonly breaker?: McpConnection.Options["breaker"]
}

export interface Unavailable {
  readonly server: string
  readonly message: string
}

export interface Listing {
  readonly tools: ReadonlyArray<ToolDefinition>
  readonly unavailable: ReadonlyArray<Unavailable>
}

export const listCache = MetricTags.counter(
  "loom_mcp_list_cache",
  "MCP tool-list lookups by server and outcome (hit, miss)"
)
export const calls = MetricTags.counter("loom_mcp_calls", "MCP tool calls by server and outcome")
export const callDuration = MetricTags.millisHistogram(
  "loom_mcp_call_duration_ms",
  "MCP tool call duration in milliseconds"
)

const isToolName = Schema.is(Tool.ToolName)

/** One server's state, for health reports. */
export interface ServerStatus extends McpConnection.Stats {
  readonly server: string
  readonly breaker: CircuitBreaker.BreakerStatus
}

/** The connector's contract: every server's tools as Loom tools, and how each server is doing. */
export interface Service {
  /** Every reachable server's tools; the servers that did not answer are listed, not failed. */
  readonly list: Effect.Effect<Listing>
  /** One tool by its namespaced name, `server.tool`. */
  readonly get: (name: string) => Effect.Effect<ToolDefinition, ToolNotFound>
  readonly status: Effect.Effect<ReadonlyArray<ServerStatus>>
  /** Emits when any server's tools may have changed. */
  readonly changes: Stream.Stream<void>
  readonly connection: (server: string) => Option.Option<McpConnection.McpConnection>
  /** The call pool's queue and workers. */
  readonly pool: Effect.Effect<WorkerPool.Stats>
}

/** A call's failure as the tool's: unavailability may pass with a retry, the rest will not. */
const toolError = (tool: string) => (error: McpConnection.RequestError | QueueFull | Shutdown): ToolHandlerError => {
  switch (error._tag) {
    case "McpUnavailable":
      return new ToolFailed({ tool, message: `MCP server unavailable: ${error.message}`, retryable: true })
    case "McpRequestFailed":
    case "McpBadResponse":
      return new ToolFailed({ tool, message: error.message, retryable: false })
    default:
      return error
  }
}

/** Counts a call by its outcome and times it. */
const recordCall = (server: string, started: number) => <E>(exit: Exit.Exit<CallToolResult, E>) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.zipRight(
      Metric.increment(MetricTags.tagged(calls, {
        server,
        outcome: exit._tag === "Success" ? (exit.value.isError ? "tool_error" : "ok") : "failed"
      })),
      Metric.update(MetricTags.tagged(callDuration, { server }), now - started)
    ))

/** One server tool as a Loom tool: its input checked against the server's schema, its calls run on `pool`. */
const definition = (
  connection: McpConnection.McpConnection,
  info: ToolInfo,
  pool: WorkerPool.WorkerPool,
  timeout: Duration.DurationInput
): ToolDefinition => {
  const name = `${connection.name}.${info.name}`
  return Tool.make({
    name,
    description: info.description,
    input: fromJsonSchema(info.inputSchema),
    output: ToolOutput,
    timeout,
    handler: (args) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const result = yield* pool.submit(connection.call(info.name, args as Record<string, unknown>)).pipe(
          Effect.onExit(recordCall(connection.name, started)),
          Effect.mapError(toolError(name))
        )
        if (result.isError) {
          return yield* new ToolFailed({
            tool: name,
            message: textOf(result) || "the tool reported an error",
            retryable: false
          })
        }
        return result.structuredContent === undefined
          ? { content: result.content }
          : { content: result.content, structuredContent: result.structuredContent }
      })
  })
}

/**
 * `list`, asked again while a change arrived during it: the cache would otherwise keep a
 * listing from before the change (it stores a finished lookup even if invalidated meanwhile).
 */
const fresh = <A, E>(changed: ReadonlyMap<string, number>, server: string, list: Effect.Effect<A, E>) => {
  const attempt: Effect.Effect<A, E> = Effect.suspend(() => {
    const before = changed.get(server) ?? 0
    return Effect.flatMap(list, (result) => (changed.get(server) ?? 0) === before ? Effect.succeed(result) : attempt)
  })
  return attempt
}

/** Connects every server in `options`; deadlines come from the `Timeouts` table. */
export const make = (options: Options): Effect.Effect<Service, never, Scope.Scope | Timeouts.Timeouts> =>
  Effect.gen(function*() {
    const timeouts = yield* Timeouts.Timeouts
    const connections = new Map<string, McpConnection.McpConnection>()
    for (const spec of options.servers) {
      connections.set(
        spec.name,
        yield* McpConnection.make({
          spec,
          connectTimeout: timeouts["mcp.connect"],
          listTimeout: timeouts["mcp.list"],
          callTimeout: timeouts["mcp.call"],
          reconnect: options.reconnect ?? McpConnection.defaultReconnect,
          ...(options.breaker === undefined ? {} : { breaker: options.breaker })
        })
      )
    }
    const pool = yield* WorkerPool.make({
      name: "mcp",
      workers: options.workers ?? 16,
      capacity: options.capacity ?? 256,
      overflow: options.overflow ?? "wait"
    })

    const ttl = options.toolsTtl ?? "5 minutes"
    /** Changes seen per server, so a listing that raced a change is asked again. */
    const changed = new Map<string, number>()
    // A failed listing is kept only briefly: a server that hiccups is asked again soon.
    const cache = yield* Cache.makeWith({
      capacity: 1024,
      timeToLive: (exit) => Exit.isSuccess(exit) ? ttl : "1 second",
      lookup: (server: string) => {
        const connection = connections.get(server)!
        return Effect.map(
          fresh(changed, server, connection.list),
          (infos) =>
            infos.filter((info) => isToolName(`${server}.${info.name}`)).map((info) =>
              definition(connection, info, pool, timeouts["mcp.call"])
            )
        )
      }
    })

    // A list_changed notification or a new session drops the server's cached list.
    for (const connection of connections.values()) {
      yield* Effect.forkScoped(Stream.runForEach(connection.changes, () =>
        Effect.zipRight(
          Effect.sync(() => changed.set(connection.name, (changed.get(connection.name) ?? 0) + 1)),
          cache.invalidate(connection.name)
        )))
    }

    const toolsOf = (server: string) =>
      Effect.gen(function*() {
        const hit = yield* cache.contains(server)
        yield* Metric.increment(MetricTags.tagged(listCache, { server, outcome: hit ? "hit" : "miss" }))
        return yield* cache.get(server)
      })

    /** Every server's tools, fetched at once; a server that fails or is slow is reported, not waited for. */
    const list: Effect.Effect<Listing> = Effect.forEach(
      [...connections.keys()],
      (server) => Effect.either(toolsOf(server)).pipe(Effect.map((result) => [server, result] as const)),
      { concurrency: "unbounded" }
    ).pipe(
      Effect.map((results) => ({
        tools: results.flatMap(([, result]) => result._tag === "Right" ? result.right : []),
        unavailable: results.flatMap(([server, result]) =>
          result._tag === "Left" ? [{ server, message: result.left.message }] : []
        )
      })),
      Effect.withSpan("McpConnector.list", { captureStackTrace: false })
    )

    /** The tool `server.tool`, if that server is configured and has it. */
    const get = (name: string): Effect.Effect<ToolDefinition, ToolNotFound> => {
      const dot = name.indexOf(".")
      const server = dot === -1 ? "" : name.slice(0, dot)
      if (!connections.has(server)) return Effect.fail(new ToolNotFound({ tool: name }))
      return toolsOf(server).pipe(
        Effect.orElseSucceed((): ReadonlyArray<ToolDefinition> => []),
        Effect.flatMap((tools) =>
          Option.match(Option.fromNullable(tools.find((tool) => tool.name === name)), {
            onNone: () => Effect.fail(new ToolNotFound({ tool: name })),
            onSome: Effect.succeed
          })
        )
      )
    }

    const status = Effect.forEach([...connections.values()], (connection) =>
      Effect.map(
        Effect.zip(connection.stats, connection.breaker.status),
        ([stats, breaker]): ServerStatus => ({ server: connection.name, ...stats, breaker })
      ))

    return {
      list,
      get,
      status,
      changes: Stream.mergeAll([...connections.values()].map((c) => c.changes), { concurrency: "unbounded" }),
      connection: (server: string) => Option.fromNullable(connections.get(server)),
      pool: pool.stats
    }
  })

/** Reads `LOOM_MCP_CONFIG` (none: no servers). */
export const config = Effect.map(McpConfig.servers, (servers): Options => ({ servers }))

/**
 * A ToolRegistry of `local` tools plus every MCP server's: local names first, then
 * `server.tool`. New tools are registered locally.
 */
export const registry = (local: ToolRegistry["Type"], connector: Service): ToolRegistry["Type"] =>
  ToolRegistry.of({
    get: (name) => Effect.catchTag(local.get(name), "ToolNotFound", () => connector.get(name)),
    list: Effect.zipWith(local.list, connector.list, (mine, remote) => [...mine, ...remote.tools]),
    register: local.register,
    changes: Stream.merge(local.changes, connector.changes)
  })

export class McpConnector extends Context.Tag("loom/McpConnector")<McpConnector, Service>() {
  static readonly layer = (options: Options) => Layer.scoped(McpConnector, make(options))
  /** Servers from `LOOM_MCP_CONFIG`; a bad file stops start-up naming the field. */
  static readonly layerConfig = Layer.scoped(McpConnector, Effect.flatMap(config, make))
  /**
   * Replaces the ToolRegistry with one that also holds every MCP server's tools
   * (provide the local registry below it).
   */
  static readonly layerRegistry = Layer.effect(
    ToolRegistry,
    Effect.zipWith(ToolRegistry, McpConnector, registry)
  )
}

/** Readiness: degraded while any server is not connected (the other tools still work). */
export const healthCheck = Effect.map(McpConnector, (connector): HealthCheck => ({
  name: "mcp",
  critical: false,
  run: Effect.map(connector.status, (servers) => ({
    status: servers.every((s) => s.status === "connected") ? "ok" : "degraded",
    detail: servers
  }))
}))
