/**
 * Rate limits on the traffic Loom sends Ollama, per host and per model, so that load is
 * shaped before it reaches a host rather than refused by it. Each limit is a budget of
 * requests, of tokens, or of both, per interval: a token bucket, so bursts up to the limit
 * and then an even rate (`60/minute` lets 60 through at once, then one a second).
 *
 * What counts: every chat or embed attempt sent to a host (a retry is another request;
 * model listings are not counted). Tokens: before a request, an estimate of its prompt is
 * reserved (4 characters a token, over message contents, tool calls and tool definitions,
 * or over the texts to embed); after a chat, the tokens its reply reports
 * (`prompt_eval_count + eval_count`) beyond that estimate are charged, so the next
 * requests wait for them. An embed reply reports no counts, so its estimate stands.
 * A host's budget is its own; a model's is shared by every host.
 *
 * Written as `OLLAMA_RATE_LIMIT=60/minute,100000 tokens/minute` for each host and
 * `OLLAMA_MODEL_RATE_LIMIT=llama3.2=30/minute,llama3.2=20000 tokens/minute,qwen2.5-coder=10/second`.
 */
import { Config, ConfigError, Duration, Effect, Either, Option } from "effect"
import type { EmbedRequest } from "ollama"
import * as RateLimit from "../resilience/RateLimit.js"
import type { ChatBody } from "./OllamaClient.js"
import { canonical } from "./OllamaModels.js"

export interface Limits {
  readonly requests: Option.Option<RateLimit.Rate>
  readonly tokens: Option.Option<RateLimit.Rate>
}

export const unlimited: Limits = { requests: Option.none(), tokens: Option.none() }

export interface Options {
  /** Each host's budgets. */
  readonly rateLimit: Limits
  /** Budgets per model (by full name, see `OllamaModels.canonical`), shared by all hosts. */
  readonly modelRateLimits: ReadonlyMap<string, Limits>
}

export interface OllamaRateLimits {
  /** Whether any budget counts tokens: if not, no estimate need be made. */
  readonly countsTokens: boolean
  /** Reserves a request and `tokens` tokens on `host` and on `model`, then waits until they are there. */
  readonly admit: (host: string, model: string, tokens: number) => Effect.Effect<void>
  /** Charges `tokens` more, without waiting: the next requests wait for them. */
  readonly charge: (host: string, model: string, tokens: number) => Effect.Effect<void>
}

/** No budgets: admits everything at once. */
export const none: OllamaRateLimits = { countsTokens: false, admit: () => Effect.void, charge: () => Effect.void }

/** About four characters a token for English under common tokenizers; only a reservation, the reply settles it. */
const charsPerToken = 4

/** The estimated prompt tokens of a chat. */
export const chatTokens = (body: ChatBody): number => {
  const messages = (body.messages ?? []).reduce(
    (chars, message) =>
      chars + message.content.length + (message.tool_calls ? JSON.stringify(message.tool_calls).length : 0),
    0
  )
  const tools = body.tools ? JSON.stringify(body.tools).length : 0
  return Math.ceil((messages + tools) / charsPerToken)
}

/** The estimated tokens of the texts to embed. */
export const embedTokens = (body: EmbedRequest): number => {
  const texts = typeof body.input === "string" ? [body.input] : body.input
  return Math.ceil(texts.reduce((chars, text) => chars + text.length, 0) / charsPerToken)
}

/** One limit: its unit and rate. */
type Limit = readonly ["requests" | "tokens", RateLimit.Rate]

/** `<count>/<interval>` or `<count> tokens/<interval>` (`requests` may be written too). */
const parseLimit = (text: string): Either.Either<Limit, string> => {
  const match = /^\s*(\d+)\s*(requests?|tokens?)?\s*\/(.*)$/.exec(text)
  if (!match) return Either.left(`expected <count>/<interval> or <count> tokens/<interval>, got "${text.trim()}"`)
  const unit = match[2]?.startsWith("token") ? "tokens" : "requests"
  return Either.map(RateLimit.parse(`${match[1]}/${match[3]}`), (rate) => [unit, rate] as const)
}

/** Adds one limit to `limits`; a second of the same unit is a mistake. */
const withLimit = (limits: Limits, [unit, rate]: Limit): Either.Either<Limits, string> =>
  Option.isSome(limits[unit])
    ? Either.left(`more than one ${unit} limit`)
    : Either.right({ ...limits, [unit]: Option.some(rate) })

const entries = (text: string) => text.split(",").map((part) => part.trim()).filter((part) => part.length > 0)

/** A host's limits: comma-separated, at most one of each unit. */
export const parseLimits = (text: string): Either.Either<Limits, string> =>
  Either.gen(function*() {
    let limits = unlimited
    for (const entry of entries(text)) limits = yield* withLimit(limits, yield* parseLimit(entry))
    return limits
  })

/** Models' limits: comma-separated `<model>=<limit>`, a model named again for its other unit. */
export const parseModelLimits = (text: string): Either.Either<ReadonlyMap<string, Limits>, string> =>
  Either.gen(function*() {
    const models = new Map<string, Limits>()
    for (const entry of entries(text)) {
      const at = entry.lastIndexOf("=")
      const model = entry.slice(0, at).trim()
      if (at < 0 || model.length === 0) return yield* Either.left(`expected <model>=<limit>, got "${entry}"`)
      const limit = yield* parseLimit(entry.slice(at + 1))
      const key = canonical(model)
      const limits = withLimit(models.get(key) ?? unlimited, limit)
      models.set(key, yield* Either.mapLeft(limits, (message) => `${model}: ${message}`))
    }
    return models
  })

/** `read` over the variable `name`, its errors naming it. */
const fromText = <A>(name: string, read: (text: string) => Either.Either<A, string>): Config.Config<A> =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => Either.mapLeft(read(text), (message) => ConfigError.InvalidData([name], message)))
  )

export const hostConfig = (name: string): Config.Config<Limits> => fromText(name, parseLimits)
export const modelConfig = (name: string): Config.Config<ReadonlyMap<string, Limits>> =>
  fromText(name, parseModelLimits)

export const make = (options: Options): Effect.Effect<OllamaRateLimits> =>
  Effect.map(RateLimit.make, (limiter) => {
    const countsTokens = [options.rateLimit, ...options.modelRateLimits.values()].some((limits) =>
      Option.isSome(limits.tokens)
    )
    /** The budgets a request on `host` for `model` draws on, by key. */
    const budgets = (host: string, model: string): ReadonlyArray<readonly [string, Limits]> => [
      [`host:${host}`, options.rateLimit],
      [`model:${canonical(model)}`, options.modelRateLimits.get(canonical(model)) ?? unlimited]
    ]
    /** Reserves `requests` and `tokens` in every budget that counts them; the delays until each is there. */
    const reserve = (host: string, model: string, requests: number, tokens: number) =>
      Effect.all(
        budgets(host, model).flatMap(([key, limits]) => [
          ...Option.toArray(Option.map(limits.requests, (rate) => limiter.reserve(`${key}:requests`, rate, requests))),
          ...Option.toArray(Option.map(limits.tokens, (rate) => limiter.reserve(`${key}:tokens`, rate, tokens)))
        ])
      )
    return {
      countsTokens,
      admit: (host, model, tokens) =>
        Effect.flatMap(
          reserve(host, model, 1, tokens),
          (delays) => RateLimit.wait(delays.reduce((longest, delay) => Duration.max(longest, delay), Duration.zero))
        ),
      charge: (host, model, tokens) => Effect.asVoid(reserve(host, model, 0, tokens))
    }
  })
