/**
 * The bench harness: each scenario measures Loom and a baseline in the same process,
 * warms both up, takes the median of several runs and prints one JSON line.
 */
import { performance } from "node:perf_hooks"

export interface Result {
  readonly scenario: string
  readonly loom: number
  readonly baseline: number
  readonly unit: string
  readonly ratio: number
  readonly better: "lower" | "higher"
}

export interface Scenario {
  readonly id: string
  readonly unit: string
  readonly better: "lower" | "higher"
  readonly warmups?: number
  readonly runs?: number
  /** One measurement of Loom, in `unit`. */
  readonly loom: () => Promise<number>
  /** One measurement of the baseline, in `unit`. */
  readonly baseline: () => Promise<number>
  readonly setup?: () => Promise<void>
  readonly teardown?: () => Promise<void>
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const round = (n: number): number => Number(n.toPrecision(4))

/** Runs a scenario, alternating Loom and baseline runs so drift hits both alike. */
export const run = async (scenario: Scenario): Promise<Result> => {
  await scenario.setup?.()
  try {
    for (let i = 0; i < (scenario.warmups ?? 2); i++) {
      await scenario.loom()
      await scenario.baseline()
    }
    const loom: Array<number> = []
    const baseline: Array<number> = []
    for (let i = 0; i < (scenario.runs ?? 7); i++) {
      loom.push(await scenario.loom())
      baseline.push(await scenario.baseline())
    }
    const l = median(loom)
    const b = median(baseline)
    return {
      scenario: scenario.id,
      loom: round(l),
      baseline: round(b),
      unit: scenario.unit,
      ratio: round(l / b),
      better: scenario.better
    }
  } finally {
    await scenario.teardown?.()
  }
}

/** Wall-clock milliseconds of one async run. */
export const wallMs = async (f: () => Promise<unknown>): Promise<number> => {
  const start = performance.now()
  await f()
  return performance.now() - start
}
