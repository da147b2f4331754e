/**
 * What a step or a run spent on language models: calls, tokens, backend time and, when
 * the price table prices the models, an estimated cost. Sums of `TokenUsage`, kept in
 * events and run records, so a run's spend survives a restart and shows over HTTP.
 */
import { Option, Schema } from "effect"
import type { TokenUsage } from "./Chat.js"
import * as PriceTable from "./PriceTable.js"

export class Usage extends Schema.Class<Usage>("Usage")({
  /** Chats counted. */
  calls: Schema.NonNegativeInt,
  prompt: Schema.NonNegativeInt,
  completion: Schema.NonNegativeInt,
  /** Backend time, summed over the calls that reported it. */
  totalMillis: Schema.optional(Schema.NonNegative),
  promptMillis: Schema.optional(Schema.NonNegative),
  completionMillis: Schema.optional(Schema.NonNegative),
  /** Estimated USD, summed over the calls whose model has a price; absent when none has. */
  costUsd: Schema.optional(Schema.NonNegative)
}) {}

export const zero = new Usage({ calls: 0, prompt: 0, completion: 0 })

/** The amounts a backend or a price table may not give. */
const amounts = ["totalMillis", "promptMillis", "completionMillis", "costUsd"] as const
type Amount = typeof amounts[number]

/** The amounts `pick` gives, leaving out those it has none of (an absent amount is not a zero). */
const present = (pick: (amount: Amount) => number | undefined) => {
  const out: { -readonly [K in Amount]?: number } = {}
  for (const amount of amounts) {
    const value = pick(amount)
    if (value !== undefined) out[amount] = value
  }
  return out
}

/** Sums of checked amounts and checked token counts: constructing them again skips validation. */
const trusted = true

/** Amounts add up where present: absent on both sides stays absent. */
const plus = (a: number | undefined, b: number | undefined) => a === undefined ? b : b === undefined ? a : a + b

export const add = (a: Usage, b: Usage): Usage =>
  new Usage({
    calls: a.calls + b.calls,
    prompt: a.prompt + b.prompt,
    completion: a.completion + b.completion,
    ...present((amount) => plus(a[amount], b[amount]))
  }, trusted)

export const sum = (usages: Iterable<Usage>): Usage => Array.from(usages).reduce(add, zero)

/** One chat of `model`, costed with `prices`. */
export const ofCall = (model: string, tokens: TokenUsage, prices: PriceTable.PriceTable): Usage => {
  const costUsd = Option.getOrUndefined(PriceTable.cost(prices, model, tokens.prompt, tokens.completion))
  return new Usage({
    calls: 1,
    prompt: tokens.prompt,
    completion: tokens.completion,
    ...present((amount) => amount === "costUsd" ? costUsd : tokens[amount])
  }, trusted)
}

/** Dollars to a cent, or to two significant digits below one (a run on a cheap model costs fractions of one). */
const dollars = (usd: number) => usd === 0 || usd >= 0.01 ? usd.toFixed(2) : usd.toPrecision(2)

/** One line for people: `3 calls, 120 prompt + 45 completion tokens, 1.2s, ~$0.000030`. */
export const describe = (usage: Usage): string =>
  [
    `${usage.calls} ${usage.calls === 1 ? "call" : "calls"}`,
    `${usage.prompt} prompt + ${usage.completion} completion tokens`,
    ...(usage.totalMillis === undefined ? [] : [`${(usage.totalMillis / 1000).toFixed(1)}s`]),
    ...(usage.costUsd === undefined ? [] : [`~$${dollars(usage.costUsd)}`])
  ].join(", ")
