/**
 * Counts a fuzz boundary's cases by outcome and prints one summary line for it when its
 * file has run, e.g. `fuzz http-bodies: 1400 cases in 38.2 s; 400 MalformedBody 212, 404 RunNotFound 300, ...`.
 */
import { afterAll } from "vitest"

export interface Tally {
  /** Counts one case ending in `outcome`. */
  readonly record: (outcome: string) => void
  readonly cases: () => number
  readonly count: (outcome: string) => number
  readonly summary: () => string
}

export const make = (boundary: string): Tally => {
  const outcomes = new Map<string, number>()
  const started = performance.now()
  const cases = () => Array.from(outcomes.values()).reduce((sum, n) => sum + n, 0)
  const tally: Tally = {
    record: (outcome) => {
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    },
    cases,
    count: (outcome) => outcomes.get(outcome) ?? 0,
    summary: () => {
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      const parts = Array.from(outcomes).sort(([, a], [, b]) => b - a).map(([outcome, n]) => `${outcome} ${n}`)
      return `fuzz ${boundary}: ${cases()} cases in ${seconds} s; ${parts.join(", ")}`
    }
  }
  afterAll(() => {
    console.log(tally.summary())
  })
  return tally
}
