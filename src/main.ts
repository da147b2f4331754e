#!/usr/bin/env node
/**
 * The composition root: typed Config -> adapters wired into the domain ports -> the
 * HTTP service (`npm start`, `loom serve`), and the CLI (`Cli.ts`) over the same layers.
 * `LOOM_LLM=simulator` runs it against the built-in Ollama simulator, offline.
 *
 * Shutdown is the scopes closing in reverse on SIGTERM/SIGINT: the HTTP server stops
 * taking connections and finishes its requests, running workflows are interrupted
 * after their last checkpoint (and resumed at the next start), pools drain, MCP
 * sessions, HTTP agents and the database close.
 */
import { FetchHttpClient, HttpApiBuilder, HttpApiSwagger, HttpServer } from "@effect/platform"
import { NodeContext, NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import {
  Config,
  Console,
  Data,
  Deferred,
  Duration,
  Effect,
  Layer,
  Logger,
  Option,
  RuntimeFlags,
  Scope,
  Stream
} from "effect"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { AgentRuntime } from "./application/AgentRuntime.js"
import * as Cli from "./application/cli/Cli.js"
import * as DemoTools from "./application/demo/DemoTools.js"
import * as Handlers from "./application/http/Handlers.js"
import * as Middleware from "./application/http/Middleware.js"
import * as LoomMcpServer from "./application/LoomMcpServer.js"
import * as RunManagerLive from "./application/RunManager.js"
import { runKind, RunManager, ShuttingDown } from "./application/RunManager.js"
import { ToolExecutor } from "./application/ToolExecutor.js"
import * as CpuTools from "./application/tools/CpuTools.js"
import { WorkflowEngine } from "./application/WorkflowEngine.js"
import * as AgentWorkflow from "./application/workflows/AgentWorkflow.js"
import * as CodingWorkflow from "./application/workflows/coding/CodingWorkflow.js"
import * as RunTests from "./application/workflows/coding/RunTests.js"
import type { Agent } from "./domain/Agent.js"
import { CheckpointStore } from "./domain/CheckpointStore.js"
import { CpuRunner } from "./domain/Cpu.js"
import { LanguageModel } from "./domain/LanguageModel.js"
import { ProcessRunner } from "./domain/Process.js"
import { ToolRegistry } from "./domain/ToolRegistry.js"
import * as NodeCpuRunner from "./infrastructure/cpu/NodeCpuRunner.js"
import { McpConnector } from "./infrastructure/mcp/McpConnector.js"
import { codingScript } from "./infrastructure/ollama/CodingScript.js"
import * as OllamaLanguageModel from "./infrastructure/ollama/OllamaLanguageModel.js"
import * as OllamaSimulator from "./infrastructure/ollama/OllamaSimulator.js"
import * as SqliteCheckpointStore from "./infrastructure/persistence/SqliteCheckpointStore.js"
import * as NodeProcessRunner from "./infrastructure/process/NodeProcessRunner.js"
import * as Timeouts from "./infrastructure/resilience/Timeouts.js"
import { Prometheus } from "./infrastructure/telemetry/Prometheus.js"
import * as PrometheusLive from "./infrastructure/telemetry/Prometheus.js"
import { ResourceMonitor } from "./infrastructure/telemetry/ResourceMonitor.js"
import * as ResourceMonitorLive from "./infrastructure/telemetry/ResourceMonitor.js"
import * as InMemoryToolRegistry from "./infrastructure/tools/InMemoryToolRegistry.js"

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a whole number of 1 or more", validation: (n) => n >= 1 }),
    Config.withDefault(fallback)
  )

/** The service's own settings; an invalid one stops start-up with its variable named. */
const ServiceConfig = Config.all({
  host: Config.string("LOOM_HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("LOOM_PORT").pipe(
    Config.validate({ message: "must be a port number (0-65535)", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(8080)
  ),
  llm: Config.literal("ollama", "simulator")("LOOM_LLM").pipe(Config.withDefault("ollama" as const)),
  simulatorLatency: Config.option(Config.duration("LOOM_SIMULATOR_LATENCY")),
  maxRuns: positive("LOOM_MAX_RUNS", 16),
  maxBodyBytes: positive("LOOM_MAX_BODY_BYTES", 1024 * 1024),
  codingModel: Config.string("LOOM_CODING_MODEL").pipe(Config.withDefault("qwen2.5-coder")),
  agentModel: Config.string("LOOM_AGENT_MODEL").pipe(Config.withDefault("llama3.2"))
})

const localTools = [...DemoTools.all, ...CpuTools.all, RunTests.tool]

/** The agent `agent` runs may name. */
const assistant = (model: string): Agent => ({
  name: "assistant",
  model,
  systemPrompt: "You are Loom's assistant. Use the tools when they help, then answer briefly.",
  tools: localTools.map((tool) => tool.name),
  maxSteps: 6
})

const Language = Layer.unwrapScoped(Effect.gen(function*() {
  const config = yield* ServiceConfig
  if (config.llm === "ollama") return OllamaLanguageModel.layerConfig
  const simulator = yield* OllamaSimulator.make({ script: codingScript })
  if (Option.isSome(config.simulatorLatency)) simulator.setFaults("chat", { latency: config.simulatorLatency.value })
  yield* Effect.logInfo(`LOOM_LLM=simulator: the built-in Ollama simulator answers at ${simulator.url}`)
  return OllamaLanguageModel.layer({ hosts: [simulator.url] })
}))

const Registry = McpConnector.registryLayer.pipe(
  Layer.provide(InMemoryToolRegistry.layer(localTools)),
  Layer.provideMerge(McpConnector.layerConfig)
)

const Runners = Layer.merge(NodeProcessRunner.layerConfig, NodeCpuRunner.layerConfig)

const Executor = ToolExecutor.layer({}).pipe(Layer.provideMerge(Registry), Layer.provideMerge(Runners))

const Store = SqliteCheckpointStore.layerConfig

/** The runs: the coding workflow and the assistant agent; runs cut off by the last shutdown resume. */
const Runs = Layer.scoped(
  RunManager,
  Effect.gen(function*() {
    const config = yield* ServiceConfig
    const engine = yield* WorkflowEngine
    const agent = assistant(config.agentModel)
    const coding = yield* CodingWorkflow.make({ model: config.codingModel })
    const agents = yield* AgentWorkflow.make(new Map([[agent.name, agent]]))
    const manager = yield* RunManagerLive.make({
      kinds: new Map([
        ["coding", runKind(engine, coding, (_, input) => CodingWorkflow.initial(input))],
        ["agent", runKind(engine, agents, AgentWorkflow.initial)]
      ]),
      agents: new Set([agent.name]),
      maxRuns: config.maxRuns
    })
    const resumed = yield* manager.resumeCutOff
    if (resumed > 0) yield* Effect.logInfo(`resumed ${resumed} run(s) cut off by the last shutdown`)
    return manager
  }).pipe(Effect.orDie)
)

/** What /health/ready reports, each check bounded so one stuck dependency cannot hang it. */
const Checks = Layer.effect(
  Handlers.HealthChecks,
  Effect.gen(function*() {
    const store = yield* CheckpointStore
    const llm = yield* LanguageModel
    const mcp = yield* McpConnector
    const cpu = yield* CpuRunner
    const processes = yield* ProcessRunner
    const monitor = yield* ResourceMonitor
    const runs = yield* RunManager
    const bounded = (check: Effect.Effect<Handlers.Check>) =>
      check.pipe(
        Effect.timeoutTo({
          duration: "2 seconds",
          onSuccess: (result) => result,
          onTimeout: () => ({ status: "down" as const, detail: "no answer within 2 s" })
        })
      )
    const ok = (detail: unknown): Handlers.Check => ({ status: "ok", detail })
    return [
      ["database", bounded(Effect.map(store.listRuns, (all) => ok({ runs: all.length })))],
      [
        "llm",
        bounded(llm.models.pipe(
          Effect.map((models) => ok({ models: models.map((m) => `${m.name}@${m.host}`) })),
          Effect.catchAll((error) => Effect.succeed({ status: "down" as const, detail: error.message }))
        ))
      ],
      [
        "mcp",
        bounded(Effect.map(mcp.status, (servers) => ({
          status: servers.every((s) => s.status === "connected") ? "ok" as const : "degraded" as const,
          detail: servers
        })))
      ],
      ["cpu_pool", bounded(Effect.map(cpu.stats, ok))],
      ["processes", bounded(Effect.map(processes.running, (running) => ok({ running })))],
      ["runs", bounded(Effect.map(runs.running, (running) => ok({ running })))],
      ["resources", bounded(Effect.map(monitor.snapshot, ok))]
    ] as const
  })
)

const Metrics = Layer.effect(Handlers.MetricsText, Effect.map(Prometheus, (p) => p.scrape))

const Listener = Layer.unwrapEffect(
  Effect.map(ServiceConfig, (config) => NodeHttpServer.layer(createServer, { host: config.host, port: config.port }))
)

const Http = Layer.unwrapEffect(
  Effect.map(
    ServiceConfig,
    (config) =>
      HttpApiBuilder.serve(Middleware.make({ maxBodyBytes: config.maxBodyBytes, retryAfterSeconds: 1 })).pipe(
        Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
        Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
        Layer.provide(Handlers.layer)
      )
  )
).pipe(Layer.provide(Listener))

/** Says where the service listens, and whether the LLM answers. */
const Banner = Layer.effectDiscard(Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const llm = yield* LanguageModel
  const address = server.address._tag === "TcpAddress" ? `http://${server.address.hostname}:${server.address.port}` : ""
  yield* Console.log(`Loom listening on ${address} (docs at ${address}/docs)`)
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

const Infrastructure = Layer.mergeAll(
  Store,
  Language,
  ResourceMonitorLive.layer(),
  PrometheusLive.layer,
  Timeouts.Timeouts.layerConfig
)

const Application = Layer.mergeAll(AgentRuntime.Default, WorkflowEngine.Default).pipe(
  Layer.provideMerge(Executor)
)

const Service = Layer.mergeAll(Http, Banner.pipe(Layer.provide(Listener))).pipe(
  Layer.provide(Layer.mergeAll(Checks, Metrics)),
  // fiber counts (effect_fiber_active, effect_fiber_started) for /metrics
  Layer.provide(RuntimeFlags.enableRuntimeMetrics),
  Layer.provideMerge(Runs),
  Layer.provideMerge(Application),
  Layer.provideMerge(Infrastructure)
)

/** `--mcp-stdio`: Loom's tools for an MCP client on stdin/stdout (nothing else may print there). */
const McpStdio = Layer.scopedDiscard(Effect.flatMap(LoomMcpServer.make, (server) => server.serveStdio)).pipe(
  Layer.provide(Executor),
  Layer.provide(Timeouts.Timeouts.layerConfig),
  Layer.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)))
)

const Local = Application.pipe(Layer.provideMerge(Infrastructure))

/**
 * Runs `layer` until interrupted (SIGTERM, SIGINT), then shuts it down within
 * `LOOM_SHUTDOWN_TIMEOUT` (default: the `shutdown` entry of the Timeouts table): first
 * `ShuttingDown` is signalled (run-event streams end, so open connections let the
 * server close), then the layers close in reverse. Past the deadline the process exits
 * with a failure.
 */
const launchWithDeadline = <E>(layer: Layer.Layer<never, E>) =>
  Effect.gen(function*() {
    const timeouts = yield* Timeouts.config
    const deadline = yield* Config.duration("LOOM_SHUTDOWN_TIMEOUT").pipe(Config.withDefault(timeouts.shutdown))
    const signal = yield* Deferred.make<void>()
    return yield* Effect.acquireUseRelease(
      Scope.make(),
      (scope) =>
        Effect.zipRight(
          Layer.buildWithScope(layer.pipe(Layer.provide(Layer.succeed(ShuttingDown, signal))), scope),
          Effect.never
        ),
      (scope, exit) =>
        Deferred.succeed(signal, undefined).pipe(
          Effect.zipRight(Scope.close(scope, exit)),
          Effect.disconnect,
          Effect.timeoutFail({ duration: deadline, onTimeout: () => new ShutdownTooSlow({ deadline }) }),
          Effect.tapError((error) => Effect.logError(error.message)),
          Effect.orDie
        )
    )
  })

/** Shutting down took longer than allowed. */
class ShutdownTooSlow extends Data.TaggedError("ShutdownTooSlow")<{ readonly deadline: Duration.Duration }> {
  override get message() {
    return `shutdown took longer than ${Duration.format(this.deadline)}; exiting with work left undone`
  }
}

/** The workflows `loom run workflow <name>` knows. */
const workflowNamed = (name: string) =>
  name === "coding"
    ? Effect.flatMap(ServiceConfig, (config) => CodingWorkflow.make({ model: config.codingModel }))
    : Effect.fail(new Cli.UsageError({ message: `unknown workflow "${name}" (there is: coding)` }))

/** The agents `loom run agent <name>` knows. */
const agentNamed = (name: string) =>
  Effect.flatMap(ServiceConfig, (config) => {
    const agent = assistant(config.agentModel)
    return name === agent.name
      ? Effect.succeed(agent)
      : Effect.fail(new Cli.UsageError({ message: `unknown agent "${name}" (there is: ${agent.name})` }))
  })

const local = {
  serve: ({ mcpStdio }: { readonly mcpStdio: boolean }) =>
    mcpStdio
      // the stdio server ends when its client goes away, and the process with it
      ? Effect.scoped(Layer.build(McpStdio))
      : launchWithDeadline(Service),
  tools: Effect.flatMap(ToolRegistry, (registry) => registry.list).pipe(Effect.provide(Local)),
  workflow: (name: string, input: string) =>
    Stream.unwrap(Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const graph = yield* workflowNamed(name)
      return engine.run(graph, CodingWorkflow.initial(input))
    })).pipe(Stream.provideLayer(Local)),
  agent: (name: string, input: string) =>
    Stream.unwrap(Effect.gen(function*() {
      const runtime = yield* AgentRuntime
      return runtime.run(yield* agentNamed(name), input)
    })).pipe(Stream.provideLayer(Local))
}

const version: string = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version

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
