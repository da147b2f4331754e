/**
 * What tokens cost, per model: the price table that turns a run's token counts into a
 * cost estimate. It is configuration, not knowledge: Loom ships no prices, and a model
 * without one simply has no cost.
 *
 * `LOOM_PRICES` holds it as comma-separated `model=prompt/completion` entries, in USD per
 * million tokens: `LOOM_PRICES="llama3.2=0.10/0.40,qwen2.5-coder=0.20/0.60"`. An entry
 * for a bare name (`llama3.2`) also prices its tags (`llama3.2:3b`) unless a tag has its own.
 */
import { Config, ConfigError, Context, Either, Layer, Option } from "effect"

/** USD per million tokens read (prompt) and written (completion). */
export interface ModelPrice {
  readonly prompt: number
  readonly completion: number
}

export type PriceTable = ReadonlyMap<string, ModelPrice>

export const empty: PriceTable = new Map()

const price = /^\s*([^\s=,]+)\s*=\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)\s*$/

/** The table written as `model=prompt/completion,...`, or what is wrong with it. */
export const parse = (text: string): Either.Either<PriceTable, string> => {
  const table = new Map<string, ModelPrice>()
  for (const entry of text.split(",").filter((entry) => entry.trim().length > 0)) {
    const [, model, prompt, completion] = price.exec(entry) ?? []
    if (model === undefined || prompt === undefined || completion === undefined) {
      return Either.left(
        `"${entry.trim()}" is not model=prompt/completion in USD per million tokens (e.g. llama3.2=0.10/0.40)`
      )
    }
    if (table.has(model)) return Either.left(`${model} is priced twice`)
    table.set(model, { prompt: Number(prompt), completion: Number(completion) })
  }
  return Either.right(table)
}

/** The price of `model`: its own entry, or the entry of its name without the tag. */
export const priceOf = (table: PriceTable, model: string): Option.Option<ModelPrice> =>
  Option.orElse(
    Option.fromNullable(table.get(model)),
    () => Option.fromNullable(table.get(model.split(":")[0] ?? model))
  )

/** USD for `prompt` and `completion` tokens of `model`, when the table prices it. */
export const cost = (table: PriceTable, model: string, prompt: number, completion: number): Option.Option<number> =>
  Option.map(priceOf(table, model), (p) => (prompt * p.prompt + completion * p.completion) / 1_000_000)

/** `LOOM_PRICES` (default: no prices); a bad entry stops start-up naming the variable and the entry. */
export const config: Config.Config<PriceTable> = Config.string("LOOM_PRICES").pipe(
  Config.mapOrFail((text) => Either.mapLeft(parse(text), (message) => ConfigError.InvalidData([], message))),
  Config.withDescription("USD per million tokens by model: model=prompt/completion,..."),
  Config.withDefault(empty)
)

/** The price table runs are costed with. */
export class Prices extends Context.Tag("loom/Prices")<Prices, PriceTable>() {
  /** From `LOOM_PRICES`. */
  static readonly layerConfig: Layer.Layer<Prices, ConfigError.ConfigError> = Layer.effect(Prices, config)
  /** A fixed table (tests, embedding apps). */
  static readonly layer = (table: PriceTable): Layer.Layer<Prices> => Layer.succeed(Prices, table)
}
