/**
 * Readiness: each part of the service answers one check. The check says whether the
 * service can do its work without that part (`critical`), so readiness is decided by a
 * field, not by matching a check's name.
 */
import type { Effect } from "effect"
import { Schema } from "effect"

export const Check = Schema.Struct({
  status: Schema.Literal("ok", "degraded", "down"),
  detail: Schema.Unknown
})
export type Check = typeof Check.Type

/** The parts a Loom service reports on. */
export const CheckName = Schema.Literal("database", "llm", "mcp", "cpu_pool", "processes", "runs", "resources")
export type CheckName = typeof CheckName.Type

export interface HealthCheck {
  readonly name: CheckName
  /** Down means the service is not ready (503): its runs could not be kept. */
  readonly critical: boolean
  readonly run: Effect.Effect<Check>
}

export const ok = (detail: unknown): Check => ({ status: "ok", detail })
