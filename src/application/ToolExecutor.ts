/**
 * Runs tool calls: in parallel under a concurrency bound, in sequence, as a
 * dependency graph, or as a batch of inputs for one tool. Every call goes
 * decode input -> retry (Schedule) -> circuit breaker (per tool) -> timeout (per
 * attempt) -> the tool's work, and ends in a `ToolResult`: one call's failure never
 * fails or cancels another. Interrupting an execution interrupts every running call.
 *
 * The work goes where the tool's declared kind says: `io` on a fiber, `cpu` to the
 * `CpuRunner` (worker threads), `process` to the `ProcessRunner` (child processes). The
 * runners are requirements of `ToolExecutor.layer`, so a missing one is a type error;
 * `ToolExecutor.layerIo` is the executor for io tools alone.
 */
import type { Duration } from "effect"
import {
  Cause,
  Context,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  ParseResult,
  Schema,
  Scope
} from "effect"
import type { CpuPoolError, CpuTaskFailed } from "../domain/Cpu.js"
import { CpuRunner } from "../domain/Cpu.js"
import type { CircuitOpen, ToolError, ToolHandlerError } from "../domain/Errors.js"
import { DependencyFailed, InvalidToolInput, ToolFailed } from "../domain/Errors.js"
import type { ProcessFailed } from "../domain/Process.js"
import { ProcessRunner } from "../domain/Process.js"
import type { RetrySettings } from "../domain/RetryPolicy.js"
import { RetryPolicy } from "../domain/RetryPolicy.js"
import type { CpuTool, ProcessTool, ToolDefinition } from "../domain/Tool.js"
import { toolNameOrUnknown } from "../domain/Tool.js"
import { ToolCall, ToolCallId } from "../domain/ToolCall.js"
import { ToolRegistry } from "../domain/ToolRegistry.js"
import type { ToolStatus } from "../domain/ToolResult.js"
import { ToolResult } from "../domain/ToolResult.js"
import * as CircuitBreaker from "../infrastructure/resilience/CircuitBreaker.js"
import * as Memo from "../infrastructure/resilience/Memo.js"
import * as MetricTags from "../infrastructure/resilience/MetricTags.js"
import * as Retry from "../infrastructure/resilience/Retry.js"
import * as Timeouts from "../infrastructure/resilience/Timeouts.js"
import type * as ToolGraph from "./ToolGraph.js"

export interface Options {
  /** Calls running at once in `executeParallel`, `executeGraph` and `executeBatch` (default 8). */
  readonly concurrency?: number
  /** Retry policy for tools that declare none (default: no retries): a policy or the fields of one. */
  readonly retry?: RetryPolicy | RetrySettings
  /** Which errors are worth another attempt (default `Retry.isRetryable`). */
  readonly isRetryable?: (error: ToolError) => boolean
  /** Settings of the breaker kept per tool, or `false` for none (default: 5 failures in a row, 30 s reset). */
  readonly breaker?: Omit<CircuitBreaker.Options<ToolHandlerError>, "service"> | false
  /** Sees every call that ends failed, timed out or rejected. */
  readonly onError?: (call: ToolCall, error: ToolError) => Effect.Effect<void>
  /**
   * A span per call as well as per execution (default `false`: one span per execution).
   * A span costs about 5 µs, more than the rest of a no-op call's path.
   */
  readonly traceCalls?: boolean
}

/** Per-execution settings; they override the executor's. */
export interface CallOptions {
  readonly concurrency?: number
  /** Per-attempt deadline for tools that declare none (default `Timeouts["tool.default"]`). */
  readonly timeout?: Duration.DurationInput
  readonly onError?: (call: ToolCall, error: ToolError) => Effect.Effect<void>
  /**
   * Whether the batch gets a span of its own (default true). A caller whose own span
   * already covers the batch (an agent run's) turns it off: a span is a new Context for
   * the batch's fibers, which keeps about 4.6 KB per batch alive while its calls run
   * (10,000 agent runs at once: 43.3 KB per run with it, 38.7 without; the floor is 32.7).
   */
  readonly span?: boolean
}

/** What `executeSequential` returns: the results up to and including the first failure, and that failure. */
export interface SequentialOutcome {
  readonly results: ReadonlyArray<ToolResult>
  readonly failure: Option.Option<ToolResult>
}

export const toolCalls = MetricTags.counter("loom_tool_calls", "Tool calls by tool and final status")
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

/** A cpu or process tool called on an executor for io tools only (`layerIo`). */
const unrouted = (tool: string, port: string) =>
  new ToolFailed({ tool, message: `no ${port} is provided to run this tool (ToolExecutor.layerIo)`, retryable: false })

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

/** Where `cpu` and `process` tools run; `None` on an executor for io tools only (`layerIo`). */
interface Runners {
  readonly cpu: Option.Option<CpuRunner["Type"]>
  readonly processes: Option.Option<ProcessRunner["Type"]>
}

type AnyCpuTool = CpuTool<Schema.Schema.AnyNoContext, Schema.Schema.AnyNoContext>
type AnyProcessTool = ProcessTool<Schema.Schema.AnyNoContext, Schema.Schema.AnyNoContext>

const onThread = (runners: Runners, tool: AnyCpuTool, input: unknown) =>
  Option.match(runners.cpu, {
    onNone: () => Effect.fail(unrouted(tool.name, "CpuRunner")),
    onSome: (runner) => Effect.suspend(() => runner.run(tool.task(input))).pipe(Effect.mapError(cpuFailure(tool.name)))
  })

const inProcess = (runners: Runners, tool: AnyProcessTool, input: unknown) =>
  Option.match(runners.processes, {
    onNone: () => Effect.fail(unrouted(tool.name, "ProcessRunner")),
    onSome: (runner) =>
      Effect.suspend(() => runner.run(tool.command(input))).pipe(
        Effect.flatMap(tool.parse),
        Effect.mapError(processFailure(tool.name))
      )
  })

/** The tool's own work, where its kind says it runs. */
const work = (runners: Runners, tool: ToolDefinition, input: unknown): Effect.Effect<unknown, ToolHandlerError> => {
  switch (tool.kind) {
    case "io":
      return tool.handler(input)
    case "cpu":
      return onThread(runners, tool, input)
    case "process":
      return inProcess(runners, tool, input)
  }
}

/** What one attempt needs besides the call: where work runs, the tool's breaker, the retry defaults. */
interface Attempts {
  readonly runners: Runners
  readonly protect: (tool: string) => <A, E extends ToolHandlerError>(
    self: Effect.Effect<A, E>
  ) => Effect.Effect<A, E | CircuitOpen>
  readonly retry: RetryPolicy
  readonly isRetryable: (error: ToolError) => boolean
}

/** `Unknown`, `Any` and `Void` take any value as it is: decoding or encoding with them is a no-op. */
const acceptsAnything = (schema: Schema.Schema.Any): boolean => {
  const tag = schema.ast._tag
  return tag === "UnknownKeyword" || tag === "AnyKeyword" || tag === "VoidKeyword"
}

/** A tool's input decoder and output encoder, made once per tool: `undefined` where the schema takes anything. */
interface Codec {
  readonly decode: ((input: unknown) => Effect.Effect<unknown, InvalidToolInput>) | undefined
  readonly encode: ((output: unknown) => Effect.Effect<unknown, ToolFailed>) | undefined
}

const codecOf = Memo.perObject((tool: ToolDefinition): Codec => {
  const decode = Schema.decodeUnknown(tool.input)
  const encode = Schema.encodeUnknown(tool.output)
  return {
    decode: acceptsAnything(tool.input)
      ? undefined
      : (input) => Effect.mapError(decode(input), (error) => invalidInput(tool.name, error)),
    // the output, encoded with the tool's schema; a mismatch is the tool's failure
    encode: acceptsAnything(tool.output) ?
      undefined :
      (output) =>
        Effect.mapError(encode(output), (error) =>
          new ToolFailed({
            tool: tool.name,
            message: `output does not match the tool's schema: ${error.message}`,
            retryable: false
          }))
  }
})

/** Runs one decoded call with timeout, breaker and retry, its output encoded with `encode`; counts attempts. */
const attempt = (
  context: Attempts,
  tool: ToolDefinition,
  encode: Codec["encode"],
  input: unknown,
  timeout: Duration.DurationInput,
  attempts: { count: number }
): Effect.Effect<unknown, ToolError> => {
  const protectedWork = Effect.suspend(() => {
    attempts.count++
    return work(context.runners, tool, input)
  }).pipe(
    Effect.catchAllDefect((defect) => Effect.fail(defectToFailure(tool.name, Cause.die(defect)))),
    Timeouts.within(`tool:${tool.name}`, tool.timeout ?? timeout),
    context.protect(tool.name)
  )
  const once = encode === undefined ? protectedWork : Effect.flatMap(protectedWork, encode)
  const policy = tool.retry ?? context.retry
  return policy.maxRetries === 0
    ? once
    : Effect.retry(once, Retry.schedule<ToolError>(policy, tool.isRetryable ?? context.isRetryable))
}

/** One tool's tagged metrics, built on its first call: a call then allocates no metric object. */
interface ToolMetrics {
  readonly calls: { [S in ToolStatus]?: Metric.Metric.Counter<number> }
  readonly duration: Metric.Metric.Histogram<number>
}

const metricsOf = (byTool: Map<string, ToolMetrics>, tool: string): ToolMetrics => {
  let metrics = byTool.get(tool)
  if (metrics === undefined) {
    metrics = { calls: {}, duration: Metric.tagged(toolDuration, "tool", tool) }
    byTool.set(tool, metrics)
  }
  return metrics
}

const recordMetrics = (byTool: Map<string, ToolMetrics>) => (result: ToolResult) => {
  const metrics = metricsOf(byTool, result.tool)
  const calls = metrics.calls[result.status] ??= MetricTags.tagged(toolCalls, {
    tool: result.tool,
    status: result.status
  })
  return Effect.zipRight(Metric.increment(calls), Metric.update(metrics.duration, result.durationMs))
}

/** A graph's nodes, each started the moment its own dependencies have finished. */
const runGraph = (
  execute: Service["execute"],
  graph: ToolGraph.ToolGraph,
  concurrency: number,
  callOptions: CallOptions
): Effect.Effect<ReadonlyArray<ToolResult>> =>
  Effect.gen(function*() {
    const semaphore = yield* Effect.makeSemaphore(concurrency)
    const done = new Map<string, Deferred.Deferred<ToolResult>>()
    for (const node of graph.nodes) done.set(node.id, yield* Deferred.make<ToolResult>())
    const finished = (id: string) => Deferred.await(done.get(id)!)

    const runNode = (node: ToolGraph.Node): Effect.Effect<ToolResult> =>
      Effect.gen(function*() {
        const upstream = yield* Effect.forEach(node.dependsOn ?? [], finished)
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
  })

/** The executor's contract. Every method answers with results; a call's failure is in its `ToolResult`. */
export interface Service {
  /** One call: decode input, then retry, breaker and deadline around the tool's work. */
  readonly execute: (call: ToolCall, options?: CallOptions) => Effect.Effect<ToolResult>
  /** Calls at once under a bound; results in call order; one failure never fails or cancels another. */
  readonly executeParallel: (
    calls: Iterable<ToolCall>,
    options?: CallOptions
  ) => Effect.Effect<ReadonlyArray<ToolResult>>
  /** Calls one after another, stopping at the first that does not succeed. */
  readonly executeSequential: (calls: Iterable<ToolCall>, options?: CallOptions) => Effect.Effect<SequentialOutcome>
  /** A DAG: each node starts when its dependencies finish; a failed node's dependents are skipped. */
  readonly executeGraph: (graph: ToolGraph.ToolGraph, options?: CallOptions) => Effect.Effect<ReadonlyArray<ToolResult>>
  /** One tool over many inputs, in parallel; call ids are `tool#index`. */
  readonly executeBatch: (
    tool: string,
    inputs: Iterable<unknown>,
    options?: CallOptions
  ) => Effect.Effect<ReadonlyArray<ToolResult>>
  /** The breaker guarding `tool`, for health reports. */
  readonly breaker: (tool: string) => Effect.Effect<CircuitBreaker.CircuitBreaker<ToolHandlerError>>
}

const makeWith = (options: Options, runners: Runners) =>
  Effect.gen(function*() {
    const registry = yield* ToolRegistry
    const timeouts = yield* Timeouts.Timeouts
    const scope = yield* Effect.scope
    const defaultConcurrency = options.concurrency ?? 8
    const breakerOptions = options.breaker

    const breakers = new Map<string, CircuitBreaker.CircuitBreaker<ToolHandlerError>>()
    /** The tool's breaker, made on its first call and kept for the executor's lifetime. */
    const breakerOf = (tool: string): Effect.Effect<CircuitBreaker.CircuitBreaker<ToolHandlerError>> =>
      Effect.suspend(() => {
        const known = breakers.get(tool)
        if (known !== undefined) return Effect.succeed(known)
        return CircuitBreaker.make<ToolHandlerError>({
          consecutiveFailures: 5,
          resetTimeout: "30 seconds",
          // by default only the tool's own failures and deadlines count; a user's predicate replaces that
          isFailure: (error) => error._tag === "ToolFailed" || error._tag === "Timeout",
          ...breakerOptions,
          service: `tool:${tool}`
        }).pipe(
          Scope.extend(scope),
          // two first calls at once may both build one: the first kept wins
          Effect.map((made) => {
            const kept = breakers.get(tool) ?? made
            breakers.set(tool, kept)
            return kept
          })
        )
      })

    const context: Attempts = {
      runners,
      protect: (tool) => (self) =>
        breakerOptions === false ? self : Effect.flatMap(breakerOf(tool), (breaker) => breaker.protect(self)),
      retry: options.retry === undefined ? RetryPolicy.none : RetryPolicy.from(options.retry),
      isRetryable: options.isRetryable ?? Retry.isRetryable
    }
    const metrics = recordMetrics(new Map())

    /** Decode, then the attempts: the tool's output, or why there is none. */
    const run = (call: ToolCall, timeout: Duration.DurationInput, attempts: { count: number }) =>
      Effect.flatMap(registry.get(call.tool), (tool) => {
        const { decode, encode } = codecOf(tool)
        return decode === undefined
          ? attempt(context, tool, encode, call.input, timeout, attempts)
          : Effect.flatMap(decode(call.input), (input) => attempt(context, tool, encode, input, timeout, attempts))
      })

    const execute = (call: ToolCall, callOptions: CallOptions = {}): Effect.Effect<ToolResult> => {
      const timeout = callOptions.timeout ?? timeouts["tool.default"]
      const result = Effect.clockWith((clock) => {
        const started = clock.unsafeCurrentTimeMillis()
        const attempts = { count: 0 }
        return Effect.flatMap(Effect.exit(run(call, timeout, attempts)), (exit): Effect.Effect<ToolResult> => {
          const fields = {
            callId: call.id,
            tool: call.tool,
            attempts: attempts.count,
            durationMs: clock.unsafeCurrentTimeMillis() - started
          }
          if (Exit.isSuccess(exit)) {
            return Effect.succeed(new ToolResult({ ...fields, status: "succeeded", output: exit.value }, trusted))
          }
          if (Cause.isInterruptedOnly(exit.cause)) return Effect.interrupt
          const error = Option.getOrElse(
            Cause.failureOption(exit.cause),
            () => defectToFailure(call.tool, exit.cause as Cause.Cause<never>)
          )
          const failed = new ToolResult({ ...fields, status: statusOf(error), error }, trusted)
          const onError = callOptions.onError ?? options.onError
          return onError ? Effect.as(onError(call, error), failed) : Effect.succeed(failed)
        })
      }).pipe(Effect.tap(metrics))
      return options.traceCalls === true
        ? Effect.withSpan(result, "ToolExecutor.execute", {
          attributes: { "loom.tool": call.tool, "loom.call_id": call.id },
          captureStackTrace: false
        })
        : result
    }

    /**
     * One call runs on the caller's fiber; calls within the bound fork one fiber each, awaited
     * in order; more calls than the bound go through `Effect.forEach`'s bounded workers.
     */
    const executeParallel: Service["executeParallel"] = (calls, callOptions = {}) => {
      const all = Array.isArray(calls) ? calls as ReadonlyArray<ToolCall> : Array.from(calls)
      const bound = callOptions.concurrency ?? defaultConcurrency
      const results: Effect.Effect<ReadonlyArray<ToolResult>> = all.length === 0
        ? Effect.succeed([])
        : all.length === 1
        ? Effect.map(execute(all[0]!, callOptions), (result) => [result])
        : all.length <= bound
        ? Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            Effect.forEach(all, (call) => Effect.fork(restore(execute(call, callOptions)))),
            (fibers) =>
              // awaited, not joined: a call's FiberRef changes stay in it (isolation), and no join walks them
              restore(Effect.forEach(fibers, (fiber) => Effect.flatten(Fiber.await(fiber)))).pipe(
                Effect.onInterrupt(() => Fiber.interruptAll(fibers))
              )
          )
        )
        : Effect.forEach(all, (call) => execute(call, callOptions), { concurrency: bound })
      return callOptions.span === false ? results : Effect.withSpan(results, "ToolExecutor.executeParallel", {
        attributes: { "loom.calls": all.length },
        captureStackTrace: false
      })
    }

    const executeSequential: Service["executeSequential"] = Effect.fn("ToolExecutor.executeSequential")(
      function*(calls: Iterable<ToolCall>, callOptions: CallOptions = {}) {
        const results: Array<ToolResult> = []
        for (const call of calls) {
          const result = yield* execute(call, callOptions)
          results.push(result)
          if (!result.succeeded) return { results, failure: Option.some<ToolResult>(result) }
        }
        return { results, failure: Option.none<ToolResult>() }
      }
    )

    return ToolExecutor.of({
      execute,
      executeParallel,
      executeSequential,
      executeGraph: (graph, callOptions = {}) =>
        runGraph(execute, graph, callOptions.concurrency ?? defaultConcurrency, callOptions).pipe(
          Effect.withSpan("ToolExecutor.executeGraph", { captureStackTrace: false })
        ),
      executeBatch: (tool, inputs, callOptions = {}) =>
        executeParallel(
          Array.from(
            inputs,
            (input, i) => new ToolCall({ id: ToolCallId.make(`${tool}#${i}`), tool: toolNameOrUnknown(tool), input })
          ),
          callOptions
        ).pipe(
          Effect.withSpan("ToolExecutor.executeBatch", { attributes: { "loom.tool": tool }, captureStackTrace: false })
        ),
      breaker: breakerOf
    })
  })

/** An executor that routes every kind of tool: `cpu` to the CpuRunner, `process` to the ProcessRunner. */
export const make = (options: Options = {}) =>
  Effect.flatMap(
    Effect.all({ cpu: CpuRunner, processes: ProcessRunner }),
    ({ cpu, processes }) => makeWith(options, { cpu: Option.some(cpu), processes: Option.some(processes) })
  )

/** An executor for `io` tools only: a `cpu` or `process` tool fails its call with `ToolFailed`. */
export const makeIo = (options: Options = {}) => makeWith(options, { cpu: Option.none(), processes: Option.none() })

/** The tool executor; its layers say what it needs. */
export class ToolExecutor extends Context.Tag("loom/ToolExecutor")<ToolExecutor, Service>() {
  /** Every kind of tool; needs the registry, the deadlines table and both runners. Build it once: each build has its own breakers. */
  static readonly layer = (
    options: Options = {}
  ): Layer.Layer<ToolExecutor, never, ToolRegistry | Timeouts.Timeouts | CpuRunner | ProcessRunner> =>
    Layer.scoped(ToolExecutor, make(options))
  /** `io` tools only; needs the registry and the deadlines table. */
  static readonly layerIo = (
    options: Options = {}
  ): Layer.Layer<ToolExecutor, never, ToolRegistry | Timeouts.Timeouts> => Layer.scoped(ToolExecutor, makeIo(options))
}
