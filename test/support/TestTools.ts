/**
 * Tools for executor tests: each sleeps on the (test) clock and records when it
 * started and finished, so tests can assert on virtual times and overlaps.
 */
import { Clock, Effect, Layer, Ref, Schema } from "effect"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import type * as Executor from "../../src/application/ToolExecutor.js"
import { ToolFailed } from "../../src/domain/Errors.js"
import * as Tool from "../../src/domain/Tool.js"
import type { ToolDefinition } from "../../src/domain/Tool.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"

export interface Event {
  readonly id: string
  readonly kind: "start" | "end"
  readonly at: number
}

export const SleepInput = Schema.Struct({
  id: Schema.String,
  ms: Schema.NonNegativeInt,
  fail: Schema.optionalWith(Schema.Boolean, { default: () => false })
})

/** Shared probes: an event log and the peak number of tools running at once. */
export interface Probe {
  readonly events: Ref.Ref<ReadonlyArray<Event>>
  readonly running: Ref.Ref<number>
  readonly peak: Ref.Ref<number>
}

export const makeProbe = Effect.gen(function*() {
  return {
    events: yield* Ref.make<ReadonlyArray<Event>>([]),
    running: yield* Ref.make(0),
    peak: yield* Ref.make(0)
  } satisfies Probe
})

const log = (probe: Probe, id: string, kind: Event["kind"]) =>
  Effect.flatMap(Clock.currentTimeMillis, (at) => Ref.update(probe.events, (events) => [...events, { id, kind, at }]))

/** `sleep`: waits `ms`, then returns `{ id, ms }` or fails (retryable) when `fail` is set. */
export const sleepTool = (probe: Probe, name = "sleep"): ToolDefinition =>
  Tool.make({
    name,
    description: "sleeps on the clock",
    input: SleepInput,
    output: Schema.Struct({ id: Schema.String, ms: Schema.Number }),
    handler: ({ fail, id, ms }) =>
      Effect.gen(function*() {
        yield* log(probe, id, "start")
        const now = yield* Ref.updateAndGet(probe.running, (n) => n + 1)
        yield* Ref.update(probe.peak, (peak) => Math.max(peak, now))
        yield* Effect.sleep(ms)
        if (fail) return yield* new ToolFailed({ tool: name, message: `${id} failed` })
        return { id, ms }
      }).pipe(Effect.ensuring(Effect.zipRight(Ref.update(probe.running, (n) => n - 1), log(probe, id, "end"))))
  })

/** `flaky`: fails the first `failures` attempts, then answers `"ok"`. */
export const flakyTool = (failures: number) =>
  Effect.map(Ref.make(0), (attempts) =>
    Tool.make({
      name: "flaky",
      description: "fails, then succeeds",
      input: Schema.Struct({}),
      output: Schema.Literal("ok"),
      handler: () =>
        Effect.flatMap(Ref.getAndUpdate(attempts, (n) => n + 1), (n) =>
          n < failures
            ? Effect.fail(new ToolFailed({ tool: "flaky", message: `attempt ${n + 1} failed` }))
            : Effect.succeed("ok" as const))
    }))

/** An executor for io tools over `tools` with `options`, default deadlines. */
export const executorLayer = (tools: ReadonlyArray<ToolDefinition>, options: Executor.Options = {}) =>
  ToolExecutor.layerIo(options).pipe(Layer.provide([InMemoryToolRegistry.layer(tools), Timeouts.Timeouts.Default]))

/** Runs `self` and pairs its result with the clock time at which it finished. */
export const finishedAt = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.zip(self, Clock.currentTimeMillis)

/** Runs `body` with an executor over `tools`. */
export const withExecutor = <A, E>(
  tools: ReadonlyArray<ToolDefinition>,
  body: (executor: Executor.Service) => Effect.Effect<A, E>,
  options: Executor.Options = {}
): Effect.Effect<A, E> => Effect.flatMap(ToolExecutor, body).pipe(Effect.provide(executorLayer(tools, options)))
