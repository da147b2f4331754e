/**
 * Three I/O-shaped tools for the offline demo: each waits as a network call would,
 * so running them in parallel shows what the executor buys.
 */
import { Effect, Schema } from "effect"
import { ToolFailed } from "../../domain/Errors.js"
import * as Tool from "../../domain/Tool.js"

export const weather = Tool.make({
  name: "weather",
  description: "Current weather for a city",
  input: Schema.Struct({ city: Schema.NonEmptyString }),
  output: Schema.Struct({ city: Schema.String, celsius: Schema.Number }),
  handler: ({ city }) => Effect.as(Effect.sleep("120 millis"), { city, celsius: 10 + (city.length % 15) })
})

export const search = Tool.make({
  name: "search",
  description: "Searches a small built-in corpus",
  input: Schema.Struct({
    query: Schema.NonEmptyString,
    /** How many results at most (1-100, default 3); `-5` is refused naming `limit`, not taken as "all but 5". */
    limit: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 100)), { default: () => 3 })
  }),
  output: Schema.Array(Schema.String),
  handler: ({ limit, query }) =>
    Effect.as(
      Effect.sleep("150 millis"),
      ["effect fibers", "structured concurrency", "circuit breakers", "backpressure"]
        .filter((doc) => doc.includes(query.toLowerCase()) || query === "*")
        .slice(0, limit)
    )
})

export const translate = Tool.make({
  name: "translate",
  description: "Translates a short text (demo: reverses the words)",
  input: Schema.Struct({ text: Schema.String, to: Schema.Literal("en", "fr", "de") }),
  output: Schema.Struct({ text: Schema.String }),
  handler: ({ text, to }) =>
    text.length > 500
      ? Effect.fail(new ToolFailed({ tool: "translate", message: "text too long", retryable: false }))
      : Effect.as(Effect.sleep("100 millis"), { text: `[${to}] ${text.split(" ").reverse().join(" ")}` })
})

export const all = [weather, search, translate]
