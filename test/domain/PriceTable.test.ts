import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Option } from "effect"
import { TokenUsage } from "../../src/domain/Chat.js"
import * as PriceTable from "../../src/domain/PriceTable.js"
import * as Usage from "../../src/domain/Usage.js"

const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromJson(env))

describe("the price table", () => {
  it("reads model=prompt/completion entries in USD per million tokens; a bare name prices its tags", () => {
    const table = Either.getOrThrow(PriceTable.parse(" llama3.2=0.10/0.40, qwen2.5-coder:7b=0.2/0.6 ,"))
    assert.deepStrictEqual(Option.getOrThrow(PriceTable.priceOf(table, "llama3.2:3b")), {
      prompt: 0.1,
      completion: 0.4
    })
    assert.isTrue(Option.isNone(PriceTable.priceOf(table, "qwen2.5-coder")))
    assert.closeTo(Option.getOrThrow(PriceTable.cost(table, "llama3.2", 1_000_000, 500_000)), 0.3, 1e-12)
    assert.isTrue(Option.isNone(PriceTable.cost(table, "mistral", 10, 10)))
  })

  it("turns a call's tokens into a cost, and sums costs only over priced calls", () => {
    const table = Either.getOrThrow(PriceTable.parse("llama3.2=2/8"))
    const priced = Usage.ofCall("llama3.2", new TokenUsage({ prompt: 1000, completion: 250, totalMillis: 40 }), table)
    const unpriced = Usage.ofCall("mistral", new TokenUsage({ prompt: 10, completion: 5 }), table)
    assert.closeTo(priced.costUsd!, (1000 * 2 + 250 * 8) / 1e6, 1e-12)
    assert.isUndefined(unpriced.costUsd)
    const total = Usage.sum([priced, unpriced])
    assert.deepStrictEqual(
      [total.calls, total.prompt, total.completion, total.totalMillis, total.costUsd],
      [2, 1010, 255, 40, priced.costUsd]
    )
    assert.isUndefined(Usage.sum([unpriced, unpriced]).costUsd)
  })

  it.effect("LOOM_PRICES configures it; unset means no prices; a bad value names the variable and the entry", () =>
    Effect.gen(function*() {
      const table = yield* withEnv({ LOOM_PRICES: "llama3.2=0.10/0.40" })(PriceTable.config)
      assert.deepStrictEqual([...table.keys()], ["llama3.2"])
      assert.strictEqual((yield* withEnv({})(PriceTable.config)).size, 0)
      for (const bad of ["llama3.2=0.10", "llama3.2=a/b", "llama3.2=-1/2", "x=1/1,x=2/2"]) {
        const error = yield* Effect.flip(withEnv({ LOOM_PRICES: bad })(PriceTable.config))
        assert.include(String(error), "LOOM_PRICES", bad)
      }
      const error = yield* Effect.flip(withEnv({ LOOM_PRICES: "llama3.2=0.1/0.4,oops" })(PriceTable.config))
      assert.include(String(error), "\"oops\"")
    }))
})
