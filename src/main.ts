#!/usr/bin/env node
/**
 * The composition root: adapters wired into the domain ports, the application on top,
 * and the CLI (`Cli.ts`) choosing what to run: the HTTP service (`npm start`,
 * `loom serve`), Loom's tools over MCP on stdio, or one command in this process.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type { Terminal } from "@effect/platform/Terminal"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Duration, Effect, Layer, Logger, Option, Redacted, RuntimeFlags, Stream } from "effect"
import { createServer } from "node:http"
import * as Path from "node:path"
import { AgentRuntime } from "./application/AgentRuntime.js"
import * as Catalog from "./application/Catalog.js"
import * as Cli from "./application/cli/Cli.js"
import { version } from "./application/http/Api.js"
import * as Handlers from "./application/http/Handlers.js"
import { HealthChecks } from "./application/http/HealthChecks.js"
import * as HttpService from "./application/http/HttpService.js"
import { cannotListen, ensureDirectory, LoomConfig, StartupFailed } from "./application/LoomConfig.js"
import * as LoomMcpServer from "./application/LoomMcpServer.js"
import { RunManager } from "./application/RunManager.js"
import * as Shutdown from "./application/Shutdown.js"
import { ToolExecutor } from "./application/ToolExecutor.js"
import { WorkflowEngine } from "./application/WorkflowEngine.js"
import { ToolRegistry } from "./domain/ToolRegistry.js"
import type { Interrupted } from "./domain/Workflow.js"
import * as DataDirLock from "./infrastructure/cluster/DataDirLock.js"
import * as EmbeddedRunner from "./infrastructure/cluster/EmbeddedRunner.js"
import * as RunnerConfig from "./infrastructure/cluster/RunnerConfig.js"
import * as SocketRunner from "./infrastructure/cluster/SocketRunner.js"
import * as NodeCpuRunner from "./infrastructure/cpu/NodeCpuRunner.js"
import { healthCheck as mcpHealth, McpConnector } from "./infrastructure/mcp/McpConnector.js"
import * as LlmBackend from "./infrastructure/ollama/LlmBackend.js"
import * as PgCheckpointStore from "./infrastructure/persistence/PgCheckpointStore.js"
import * as SqliteCheckpointStore from "./infrastructure/persistence/SqliteCheckpointStore.js"
import * as NodeProcessRunner from "./infrastructure/process/NodeProcessRunner.js"
import * as Timeouts from "./infrastructure/resilience/Timeouts.js"
import * as Prometheus from "./infrastructure/telemetry/Prometheus.js"
import * as ResourceMonitor from "./infrastructure/telemetry/ResourceMonitor.js"
import * as InMemoryToolRegistry from "./infrastructure/tools/InMemoryToolRegistry.js"

const Registry = McpConnector.layerRegistry.pipe(
  Layer.provide(InMemoryToolRegistry.layer(Catalog.localTools)),
  Layer.provideMerge(McpConnector.layerConfig)
)

const Executor = ToolExecutor.layer().pipe(
  Layer.provideMerge(Registry),
  Layer.provideMerge(Layer.merge(NodeProcessRunner.layerConfig, NodeCpuRunner.layerConfig)),
  Layer.provideMerge(Timeouts.Timeouts.layerConfig)
)

/**
 * `LOOM_DATA_DIR` checked before the database opens in it (a file there is one line naming the variable, not a
 * stack), then held by this process until it ends: a second Loom process on it is refused, naming the holder.
 */
const DataDir = Layer.scopedDiscard(Effect.gen(function*() {
  const dir = yield* SqliteCheckpointStore.dataDir
  yield* ensureDirectory(dir)
  yield* DataDirLock.hold(dir).pipe(
    Effect.mapError((error) =>
      new StartupFailed({ setting: `LOOM_DATA_DIR=${Path.resolve(dir)}`, reason: error.reason })
    )
  )
}))

/** Runs kept in the data directory (`loom.db`) and executed by one embedded runner there (`cluster.db`). */
const Embedded = Layer.merge(
  SqliteCheckpointStore.layerConfig,
  Layer.unwrapEffect(Effect.map(SqliteCheckpointStore.dataDir, EmbeddedRunner.layer))
).pipe(Layer.provide(DataDir))

/** Runs kept in Postgres and executed by this runner among the others on that database. */
const Clustered = (url: Redacted.Redacted) =>
  Layer.unwrapEffect(Effect.map(RunnerConfig.runnerAddress, (address) =>
    Layer.merge(
      PgCheckpointStore.layer.pipe(
        Layer.catchAll((error) =>
          Layer.fail(
            new StartupFailed({ setting: "LOOM_DATABASE_URL", reason: `cannot use the database: ${error.message}` })
          )
        )
      ),
      SocketRunner.layer(address).pipe(
        Layer.catchAll((error) =>
          Layer.fail(
            new StartupFailed({ setting: `LOOM_RUNNER_ADDRESS=${address.host}:${address.port}`, reason: error.message })
          )
        )
      )
    ).pipe(
      Layer.provide(
        PgClient.layer({ url, applicationName: "loom" }).pipe(
          Layer.catchAll((error) =>
            Layer.fail(new StartupFailed({ setting: "LOOM_DATABASE_URL", reason: `cannot connect: ${error.message}` }))
          )
        )
      )
    )))

/** Where runs are kept and who executes them: see `RunnerConfig`. */
const Runs = Layer.unwrapEffect(
  Effect.map(RunnerConfig.databaseUrl, Option.match({ onNone: () => Embedded, onSome: Clustered }))
)

const Infrastructure = Layer.mergeAll(
  Runs,
  LlmBackend.layerConfig,
  ResourceMonitor.layer(),
  Prometheus.layer,
  LoomConfig.layer
)

const Local = Layer.mergeAll(AgentRuntime.layer, WorkflowEngine.layer).pipe(
  Layer.provideMerge(Executor),
  Layer.provideMerge(Infrastructure)
)

/**
 * The listener. Node's own request deadline stays a backstop behind LOOM_REQUEST_TIMEOUT (the service answers
 * a late body with a JSON 408 first); a failure to listen names the address and why, in one line.
 */
const Listener = Layer.unwrapEffect(
  Effect.map(LoomConfig, (config) => {
    const requestTimeout = Duration.toMillis(config.requestTimeout) + 5_000
    const options = { requestTimeout, headersTimeout: Math.min(60_000, requestTimeout) }
    return NodeHttpServer.layer(() => createServer(options), { host: config.host, port: config.port }).pipe(
      Layer.catchAll((error) => Layer.fail(cannotListen(config, error.cause)))
    )
  })
)

const Service = HttpService.layer.pipe(
  Layer.provide(Listener),
  Layer.provide(HealthChecks.layer([mcpHealth, ResourceMonitor.healthCheck])),
  Layer.provide(Layer.effect(Handlers.MetricsText, Effect.map(Prometheus.Prometheus, (p) => p.scrape))),
  // fiber counts (effect_fiber_active, effect_fiber_started) for /metrics
  Layer.provide(RuntimeFlags.enableRuntimeMetrics),
  Layer.provideMerge(Catalog.layerRuns),
  Layer.provide(Local)
)

/** `--mcp-stdio`: Loom's tools for an MCP client on stdin/stdout (logs go to stderr). */
const McpStdio = Layer.scopedDiscard(Effect.flatMap(LoomMcpServer.make, (server) => server.serveStdio)).pipe(
  Layer.provide(Executor)
)

const usage = (error: Catalog.NotInCatalog) => new Cli.UsageError({ message: error.message })

const local = {
  // the stdio server ends when its client goes away, and the process with it
  serve: ({ mcpStdio }: { readonly mcpStdio: boolean }) =>
    mcpStdio ? Effect.scoped(Layer.build(McpStdio)) : Shutdown.launch(Service),
  // only the registry: listing tools opens no database and starts no thread
  tools: Effect.flatMap(ToolRegistry, (registry) => registry.list).pipe(
    Effect.provide(Registry.pipe(Layer.provide(Timeouts.Timeouts.layerConfig)))
  ),
  // a durable execution like the service's: cut off by Ctrl-C, it resumes on the next start on this data directory
  workflow: (name: string, input: string, threadId: string, answer: Cli.Answer) =>
    Stream.unwrapScoped(Effect.gen(function*() {
      yield* Catalog.workflow(name).pipe(Effect.catchTag("NotInCatalog", (e) => Effect.fail(usage(e))))
      const runs = yield* RunManager
      yield* runs.start({ kind: "workflow", name, input, threadId })
      // a run that waits for a person is answered here, asked again while the value does not fit
      const reply = (
        event: Interrupted,
        problem: Option.Option<string>
      ): Effect.Effect<void, Cli.UsageError, Terminal> =>
        Effect.flatMap(answer(event, problem), (value) =>
          runs.resume(threadId, { interrupt: event.key, value }).pipe(
            Effect.asVoid,
            Effect.catchTags({
              InvalidResumeValue: (error) => reply(event, Option.some(error.message)),
              NotWaiting: () => Effect.void,
              RunNotFound: () => Effect.void
            })
          ))
      return Stream.map(runs.follow(threadId), (stored) => stored.event).pipe(
        Stream.tap((event) => event._tag === "Interrupted" ? reply(event, Option.none()) : Effect.void)
      )
    })).pipe(
      Stream.provideSomeLayer(
        Catalog.layerRuns.pipe(Layer.provideMerge(Local))
      )
    ),
  agent: (name: string, input: string) =>
    Stream.unwrap(Effect.gen(function*() {
      const agent = yield* Catalog.agent(name).pipe(Effect.catchTag("NotInCatalog", (e) => Effect.fail(usage(e))))
      return (yield* AgentRuntime).run(agent, input)
    })).pipe(Stream.provideLayer(Local))
}

/** Logs go to stderr, so stdout carries only what a command prints (`--json` output stays parseable). */
const Logs = Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))

Cli.run(local, { version })(process.argv).pipe(
  Effect.provide(Layer.mergeAll(NodeContext.layer, FetchHttpClient.layer, Logs)),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(Cli.exitCode(exit))
  })
)
