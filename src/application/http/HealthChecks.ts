/**
 * What `/health/ready` reports: one check per part the service stands on, each bounded
 * so that one stuck dependency cannot hang the probe. The ports' checks are made here;
 * adapters add theirs (MCP servers, process resources) as `extra`.
 */
import { Context, Effect, Layer } from "effect"
import { CheckpointStore } from "../../domain/CheckpointStore.js"
import { CpuRunner } from "../../domain/Cpu.js"
import type { Check, HealthCheck } from "../../domain/Health.js"
import { ok } from "../../domain/Health.js"
import { LanguageModel } from "../../domain/LanguageModel.js"
import { ProcessRunner } from "../../domain/Process.js"
import { RunManager } from "../RunManager.js"

const bounded = (check: Effect.Effect<Check>) =>
  check.pipe(
    Effect.timeoutTo({
      duration: "2 seconds",
      onSuccess: (result) => result,
      onTimeout: (): Check => ({ status: "down", detail: "no answer within 2 s" })
    })
  )

/** The checks of the ports: the store is critical (runs cannot be kept without it), the rest inform. */
const portChecks = Effect.gen(function*() {
  const store = yield* CheckpointStore
  const llm = yield* LanguageModel
  const cpu = yield* CpuRunner
  const processes = yield* ProcessRunner
  const runs = yield* RunManager
  const checks: ReadonlyArray<HealthCheck> = [
    { name: "database", critical: true, run: Effect.map(store.listRuns, (all) => ok({ runs: all.length })) },
    {
      name: "llm",
      critical: false,
      run: llm.models.pipe(
        Effect.map((models) => ok({ models: models.map((m) => `${m.name}@${m.host}`) })),
        Effect.catchAll((error) => Effect.succeed<Check>({ status: "down", detail: error.message }))
      )
    },
    { name: "cpu_pool", critical: false, run: Effect.map(cpu.stats, ok) },
    { name: "processes", critical: false, run: Effect.map(processes.running, (running) => ok({ running })) },
    { name: "runs", critical: false, run: Effect.map(runs.running, (running) => ok({ running })) }
  ]
  return checks
})

export class HealthChecks extends Context.Tag("loom/HealthChecks")<HealthChecks, ReadonlyArray<HealthCheck>>() {
  /** The ports' checks and `extra`, each bounded in time. */
  static readonly layer = <const Extra extends ReadonlyArray<Effect.Effect<HealthCheck, never, unknown>>>(
    extra: Extra
  ): Layer.Layer<
    HealthChecks,
    never,
    Effect.Effect.Context<Extra[number]> | CheckpointStore | LanguageModel | CpuRunner | ProcessRunner | RunManager
  > =>
    Layer.effect(
      HealthChecks,
      Effect.map(
        Effect.zip(
          portChecks,
          Effect.all(extra as ReadonlyArray<Effect.Effect<HealthCheck, never, Effect.Effect.Context<Extra[number]>>>)
        ),
        ([ports, more]) => [...ports, ...more].map((check) => ({ ...check, run: bounded(check.run) }))
      )
    )
}
