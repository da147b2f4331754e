/**
 * The bench harness: each scenario measures Loom, a baseline and, where one exists, its
 * floor (the cheapest Effect program doing the same work, `floors.ts`) in the same
 * process, warms all up, takes the median of several runs and prints one JSON line.
 */
import { performance } from "node:perf_hooks"

export interface Result {
  readonly scenario: string
  readonly loom: number
  readonly baseline: number
  readonly unit: string
  readonly ratio: number
  /** The cheapest Effect program doing the same work, in `unit`. */
  readonly floor?: number
  /** `loom / floor`. */
  readonly floorRatio?: number
  readonly better: "lower" | "higher"
  /** Figures derived from the medians, e.g. a per-node cost. */
  readonly [derived: string]: unknown
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
  /** One measurement of the floor, in `unit`. */
  readonly floor?: () => Promise<number>
  /** Extra figures from the medians, added to the JSON line. */
  readonly derive?: (medians: { readonly loom: number; readonly baseline: number }) => Record<string, number>
  readonly setup?: () => Promise<void>
  readonly teardown?: () => Promise<void>
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const round = (n: number): number => Number(n.toPrecision(4))

/** Runs a scenario, alternating Loom, baseline and floor runs so drift hits all alike. */
export const run = async (scenario: Scenario): Promise<Result> => {
  await scenario.setup?.()
  try {
    for (let i = 0; i < (scenario.warmups ?? 2); i++) {
      await scenario.loom()
      await scenario.baseline()
      await scenario.floor?.()
    }
    const loom: Array<number> = []
    const baseline: Array<number> = []
    const floor: Array<number> = []
    for (let i = 0; i < (scenario.runs ?? 7); i++) {
      loom.push(await scenario.loom())
      baseline.push(await scenario.baseline())
      if (scenario.floor) floor.push(await scenario.floor())
    }
    const l = median(loom)
    const b = median(baseline)
    const f = floor.length > 0 ? median(floor) : undefined
    const derived = scenario.derive?.({ loom: l, baseline: b }) ?? {}
    return {
      scenario: scenario.id,
      loom: round(l),
      baseline: round(b),
      unit: scenario.unit,
      ratio: round(l / b),
      ...(f === undefined ? {} : { floor: round(f), floorRatio: round(l / f) }),
      ...Object.fromEntries(Object.entries(derived).map(([key, value]) => [key, round(value)])),
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
