/**
 * Runs tool calls: in parallel under a concurrency bound, in sequence, as a
 * dependency graph, or as a batch of inputs for one tool. Every call goes
 * decode input -> retry (Schedule) -> circuit breaker (per tool) -> timeout (per
 * attempt) -> the tool's work, and ends in a `ToolResult`: one call's failure never
 * fails or cancels another. Interrupting an execution interrupts every running call.
 *
 * The work goes where the tool's declared kind says: `io` on a fiber, `cpu` to the
 * `CpuRunner` (worker threads), `process` to the `ProcessRunner` (child processes).
 */
import type { Duration } from "effect"
import { Cache, Cause, Clock, Deferred, Effect, Exit, Layer, Metric, Option, ParseResult, Schema, Scope } from "effect"
import type { CpuPoolError, CpuTaskFailed } from "../domain/Cpu.js"
import { CpuRunner } from "../domain/Cpu.js"
import type { CircuitOpen, ToolError, ToolHandlerError } from "../domain/Errors.js"
import { DependencyFailed, InvalidToolInput, ToolFailed } from "../domain/Errors.js"
import type { ProcessFailed } from "../domain/Process.js"
import { ProcessRunner } from "../domain/Process.js"
import { RetryPolicy } from "../domain/RetryPolicy.js"
import type { CpuTool, ProcessTool, ToolDefinition } from "../domain/Tool.js"
import { toolNameOrUnknown } from "../domain/Tool.js"
import { ToolCall, ToolCallId } from "../domain/ToolCall.js"
import { ToolRegistry } from "../domain/ToolRegistry.js"
import type { ToolStatus } from "../domain/ToolResult.js"
import { ToolResult } from "../domain/ToolResult.js"
import * as CircuitBreaker from "../infrastructure/resilience/CircuitBreaker.js"
import * as MetricTags from "../infrastructure/resilience/MetricTags.js"
import * as Retry from "../infrastructure/resilience/Retry.js"
import * as Timeouts from "../infrastructure/resilience/Timeouts.js"
import type * as ToolGraph from "./ToolGraph.js"

export interface Options {
  /** Calls running at once in `executeParallel`, `executeGraph` and `executeBatch` (default 8). */
  readonly concurrency?: number
  /** Retry policy for tools that declare none (default: no retries). */
  readonly retry?: RetryPolicy
  /** Which errors are worth another attempt (default `Retry.isRetryable`). */
  readonly isRetryable?: (error: ToolError) => boolean
  /** Settings of the breaker kept per tool, or `false` for none (default: 5 failures in a row, 30 s reset). */
  readonly breaker?: Omit<CircuitBreaker.Options<ToolHandlerError>, "service"> | false
  /** Sees every call that ends failed, timed out or rejected. */
  readonly onError?: (call: ToolCall, error: ToolError) => Effect.Effect<void>
}

/** Per-execution settings; they override the executor's. */
export interface CallOptions {
  readonly concurrency?: number
  /** Per-attempt deadline for tools that declare none (default `Timeouts["tool.default"]`). */
  readonly timeout?: Duration.DurationInput
  readonly onError?: (call: ToolCall, error: ToolError) => Effect.Effect<void>
}

/** What `executeSequential` returns: the results up to and including the first failure, and that failure. */
export interface SequentialOutcome {
  readonly results: ReadonlyArray<ToolResult>
  readonly failure: Option.Option<ToolResult>
}

export const toolCalls = Metric.counter("loom_tool_calls", {
  description: "Tool calls by tool and final status",
  incremental: true
})
export const toolDuration = MetricTags.millisHistogram(
  "loom_tool_duration_ms",
  "Tool call duration in milliseconds, retries included"
)

const statusOf = (error: ToolError): ToolStatus => {
  switch (error._tag) {
    case "Timeout":
      return "timed_out"
    case "InvalidToolInput":
    case "ToolNotFound":
    case "CircuitOpen":
    case "QueueFull":
    case "Shutdown":
      return "rejected"
    case "DependencyFailed":
      return "skipped"
    case "ToolFailed":
      return "failed"
  }
}

/** Names the first offending field of a parse error, e.g. `query` or `filters.0.limit`. */
export const invalidInput = (tool: string, error: ParseResult.ParseError): InvalidToolInput => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  return new InvalidToolInput({
    tool,
    field: first ? first.path.map(String).join(".") : "",
    message: issues.map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "input"}: ${issue.message}`)
      .join("; ")
  })
}

/** Results are built from values the executor made itself: skip re-validating them on the hot path. */
const trusted = { disableValidation: true } as const

/** The result of a graph node that never started: skipped behind a failed dependency, or rejected. */
const unstarted = (node: ToolGraph.Node, error: DependencyFailed | InvalidToolInput): ToolResult =>
  new ToolResult({
    callId: ToolCallId.make(node.id),
    tool: toolNameOrUnknown(node.tool),
    status: statusOf(error),
    error,
    attempts: 0,
    durationMs: 0
  }, trusted)

/** A cpu or process tool called where no runner was provided. */
const unrouted = (tool: string, port: string) =>
  new ToolFailed({ tool, message: `no ${port} is provided to run this tool`, retryable: false })

/** What went wrong on the worker thread, as the tool's failure (queueing and deadlines pass through). */
const cpuFailure = (tool: string) => (error: CpuPoolError | CpuTaskFailed) => {
  switch (error._tag) {
    case "CpuTaskFailed":
      return new ToolFailed({ tool, message: error.message, retryable: false })
    case "CpuWorkerCrashed":
      return new ToolFailed({ tool, message: `worker thread crashed: ${error.message}`, retryable: false })
    case "CpuProtocolError":
      return new ToolFailed({
        tool,
        message: `bad message across the thread boundary: ${error.message}`,
        retryable: false
      })
    default:
      return error
  }
}

const processFailure = (tool: string) => (error: ProcessFailed | ToolHandlerError): ToolHandlerError =>
  error._tag === "ProcessFailed"
    ? new ToolFailed({ tool, message: `could not start ${error.command}: ${error.message}`, retryable: false })
    : error

/** A defect in a handler becomes a non-retryable `ToolFailed`: the caller sees a result, not a crash. */
const defectToFailure = (tool: string, cause: Cause.Cause<never>): ToolFailed =>
  new ToolFailed({ tool, message: `tool crashed: ${Cause.pretty(cause).split("\n")[0]}`, retryable: false })

export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const registry = yield* ToolRegistry
    const cpu = yield* Effect.serviceOption(CpuRunner)
    const processes = yield* Effect.serviceOption(ProcessRunner)
    const timeouts = Option.getOrElse(yield* Effect.serviceOption(Timeouts.Timeouts), () => Timeouts.defaults)
    const scope = yield* Effect.scope
    const defaultConcurrency = options.concurrency ?? 8
    const defaultRetry = options.retry ?? RetryPolicy.none
    const isRetryable = options.isRetryable ?? Retry.isRetryable
    const breakerOptions = options.breaker

    const breakers = yield* Cache.make({
      capacity: 10_000,
      timeToLive: Infinity,
      lookup: (tool: string) =>
        CircuitBreaker.make<ToolHandlerError>({
          consecutiveFailures: 5,
          resetTimeout: "30 seconds",
          ...breakerOptions,
          service: `tool:${tool}`,
          isFailure: (error) => error._tag === "ToolFailed" || error._tag === "Timeout"
        }).pipe(Scope.extend(scope))
    })

    const recordMetrics = (result: ToolResult) =>
      Effect.zipRight(
        Metric.increment(MetricTags.tagged(toolCalls, { tool: result.tool, status: result.status })),
        Metric.update(MetricTags.tagged(toolDuration, { tool: result.tool }), result.durationMs)
      )

    const protect =
      (tool: string) => <A, E extends ToolHandlerError>(self: Effect.Effect<A, E>): Effect.Effect<A, E | CircuitOpen> =>
        breakerOptions === false ? self : Effect.flatMap(breakers.get(tool), (breaker) => breaker.protect(self))

    const onThread = (tool: CpuTool<Schema.Schema.AnyNoContext, Schema.Schema.AnyNoContext>, input: unknown) =>
      Option.match(cpu, {
        onNone: () => Effect.fail(unrouted(tool.name, "CpuRunner")),
        onSome: (runner) =>
          Effect.suspend(() => runner.run(tool.task(input))).pipe(Effect.mapError(cpuFailure(tool.name)))
      })

    const inProcess = (tool: ProcessTool<Schema.Schema.AnyNoContext, Schema.Schema.AnyNoContext>, input: unknown) =>
      Option.match(processes, {
        onNone: () => Effect.fail(unrouted(tool.name, "ProcessRunner")),
        onSome: (runner) =>
          Effect.suspend(() => runner.run(tool.command(input))).pipe(
            Effect.flatMap(tool.parse),
            Effect.mapError(processFailure(tool.name))
          )
      })

    /** The tool's own work, where its kind says it runs. */
    const work = (tool: ToolDefinition, input: unknown): Effect.Effect<unknown, ToolHandlerError> => {
      switch (tool.kind) {
        case "io":
          return tool.handler(input)
        case "cpu":
          return onThread(tool, input)
        case "process":
          return inProcess(tool, input)
      }
    }

    /** Runs one decoded call with timeout, breaker and retry; counts attempts. */
    const attempt = (
      tool: ToolDefinition,
      input: unknown,
      timeout: Duration.DurationInput,
      attempts: { count: number }
    ): Effect.Effect<unknown, ToolError> => {
      const once = Effect.suspend(() => {
        attempts.count++
        return work(tool, input)
      }).pipe(
        Effect.catchAllDefect((defect) => Effect.fail(defectToFailure(tool.name, Cause.die(defect)))),
        Timeouts.within(`tool:${tool.name}`, tool.timeout ?? timeout),
        protect(tool.name),
        Effect.flatMap((output) =>
          Schema.encodeUnknown(tool.output)(output).pipe(
            Effect.mapError((error) =>
              new ToolFailed({
                tool: tool.name,
                message: `output does not match the tool's schema: ${error.message}`,
                retryable: false
              })
            )
          )
        )
      )
      const policy = tool.retry ?? defaultRetry
      return policy.maxRetries === 0 ? once : Effect.retry(once, Retry.schedule<ToolError>(policy, isRetryable))
    }

    const execute = (call: ToolCall, callOptions: CallOptions = {}): Effect.Effect<ToolResult> =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const attempts = { count: 0 }
        const exit = yield* registry.get(call.tool).pipe(
          Effect.flatMap((tool) =>
            Schema.decodeUnknown(tool.input)(call.input).pipe(
              Effect.mapError((error) => invalidInput(tool.name, error)),
              Effect.flatMap((input) => attempt(tool, input, callOptions.timeout ?? timeouts["tool.default"], attempts))
            )
          ),
          Effect.exit
        )
        const finished = yield* Clock.currentTimeMillis
        const fields = { callId: call.id, tool: call.tool, attempts: attempts.count, durationMs: finished - started }
        if (Exit.isSuccess(exit)) {
          return new ToolResult({ ...fields, status: "succeeded", output: exit.value }, trusted)
        }
        if (Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
        const error = Option.getOrElse(
          Cause.failureOption(exit.cause),
          () => defectToFailure(call.tool, exit.cause as Cause.Cause<never>)
        )
        const onError = callOptions.onError ?? options.onError
        if (onError) yield* onError(call, error)
        return new ToolResult({ ...fields, status: statusOf(error), error }, trusted)
      }).pipe(
        Effect.tap((result) => recordMetrics(result)),
        Effect.withSpan("ToolExecutor.execute", {
          attributes: { "loom.tool": call.tool, "loom.call_id": call.id },
          // a stack trace per call is costly on the hot path; the span name and attributes locate it
          captureStackTrace: false
        })
      )

    const executeParallel = (
      calls: Iterable<ToolCall>,
      callOptions: CallOptions = {}
    ): Effect.Effect<ReadonlyArray<ToolResult>> =>
      Effect.forEach(calls, (call) => execute(call, callOptions), {
        concurrency: callOptions.concurrency ?? defaultConcurrency
      }).pipe(Effect.withSpan("ToolExecutor.executeParallel", { captureStackTrace: false }))

    const executeSequential = (
      calls: Iterable<ToolCall>,
      callOptions: CallOptions = {}
    ): Effect.Effect<SequentialOutcome> =>
      Effect.gen(function*() {
        const results: Array<ToolResult> = []
        for (const call of calls) {
          const result = yield* execute(call, callOptions)
          results.push(result)
          if (!result.succeeded) return { results, failure: Option.some(result) }
        }
        return { results, failure: Option.none() }
      }).pipe(Effect.withSpan("ToolExecutor.executeSequential", { captureStackTrace: false }))

    const executeGraph = (
      graph: ToolGraph.ToolGraph,
      callOptions: CallOptions = {}
    ): Effect.Effect<ReadonlyArray<ToolResult>> =>
      Effect.gen(function*() {
        const semaphore = yield* Effect.makeSemaphore(callOptions.concurrency ?? defaultConcurrency)
        const done = new Map<string, Deferred.Deferred<ToolResult>>()
        for (const node of graph.nodes) done.set(node.id, yield* Deferred.make<ToolResult>())
        const finished = (id: string) => Deferred.await(done.get(id)!)

        const runNode = (node: ToolGraph.Node): Effect.Effect<ToolResult> =>
          Effect.gen(function*() {
            const dependsOn = node.dependsOn ?? []
            const upstream = yield* Effect.forEach(dependsOn, finished)
            const blocker = upstream.find((result) => !result.succeeded)
            if (blocker) return unstarted(node, new DependencyFailed({ node: node.id, dependency: blocker.callId }))
            const outputs = Object.fromEntries(upstream.map((result) => [result.callId, result.output]))
            const input = node.inputFrom ? yield* Effect.try(() => node.inputFrom!(outputs)) : node.input
            return yield* semaphore.withPermits(1)(
              execute(
                new ToolCall({ id: ToolCallId.make(node.id), tool: toolNameOrUnknown(node.tool), input }),
                callOptions
              )
            )
          }).pipe(
            Effect.catchTag("UnknownException", (error) =>
              Effect.succeed(
                unstarted(node, new InvalidToolInput({ tool: node.tool, field: "", message: String(error.error) }))
              )),
            Effect.tap((result) => Deferred.succeed(done.get(node.id)!, result))
          )

        return yield* Effect.forEach(graph.nodes, runNode, { concurrency: "unbounded" })
      }).pipe(Effect.withSpan("ToolExecutor.executeGraph", { captureStackTrace: false }))

    const executeBatch = (
      tool: string,
      inputs: Iterable<unknown>,
      callOptions: CallOptions = {}
    ): Effect.Effect<ReadonlyArray<ToolResult>> =>
      executeParallel(
        Array.from(
          inputs,
          (input, i) => new ToolCall({ id: ToolCallId.make(`${tool}#${i}`), tool: toolNameOrUnknown(tool), input })
        ),
        callOptions
      ).pipe(
        Effect.withSpan("ToolExecutor.executeBatch", { attributes: { "loom.tool": tool }, captureStackTrace: false })
      )

    return {
      execute,
      executeParallel,
      executeSequential,
      executeGraph,
      executeBatch,
      /** The breaker guarding `tool`, for health reports. */
      breaker: (tool: string) => breakers.get(tool)
    } as const
  })

/** The tool executor. Needs a `ToolRegistry`; deadlines come from `Timeouts` when provided. */
export class ToolExecutor extends Effect.Service<ToolExecutor>()("loom/ToolExecutor", {
  scoped: make()
}) {
  /** An executor with its own settings (build it once: each build has its own breakers). */
  static readonly layer = (options: Options): Layer.Layer<ToolExecutor, never, ToolRegistry> =>
    Layer.scoped(ToolExecutor, Effect.map(make(options), (service) => ToolExecutor.make(service)))
}
