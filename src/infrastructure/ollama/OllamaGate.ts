/**
 * The client a request is given on its host. Each call first waits for its rate budgets
 * (OllamaRateLimits), then takes one of the host's parallel slots, then goes to the wire:
 * in that order, so a request held back by a budget holds no slot that a request for
 * another model could use. A chat's reply then settles its token count. Model listings
 * take a slot but no budget.
 */
import type { Scope } from "effect"
import { Effect, Stream } from "effect"
import type { OllamaClient } from "./OllamaClient.js"
import type * as OllamaRateLimits from "./OllamaRateLimits.js"
import { chatTokens, embedTokens } from "./OllamaRateLimits.js"
import type { ChatReply } from "./OllamaWire.js"

export const make = (
  client: OllamaClient,
  /** One of the host's slots, held until the scope closes. */
  slot: Effect.Effect<void, never, Scope.Scope>,
  limits: OllamaRateLimits.OllamaRateLimits
): OllamaClient => {
  const url = client.url
  const admit = (model: string, tokens: number) => Effect.zipRight(limits.admit(url, model, tokens), slot)
  /** Charges what a finished reply used beyond its estimate. */
  const settle = (model: string, estimate: number) => (reply: ChatReply) =>
    reply.done && limits.countsTokens
      ? limits.charge(url, model, reply.prompt_eval_count + reply.eval_count - estimate)
      : Effect.void
  const estimate = (tokens: () => number) => limits.countsTokens ? tokens() : 0

  return {
    url,
    chat: (body, timeout) => {
      const tokens = estimate(() => chatTokens(body))
      return Effect.scoped(Effect.zipRight(admit(body.model, tokens), client.chat(body, timeout))).pipe(
        Effect.tap(settle(body.model, tokens))
      )
    },
    chatStream: (body, timeout) => {
      const tokens = estimate(() => chatTokens(body))
      return Effect.zipRight(admit(body.model, tokens), client.chatStream(body, timeout)).pipe(
        Effect.map(Stream.tap(settle(body.model, tokens)))
      )
    },
    embed: (body, timeout) =>
      Effect.scoped(Effect.zipRight(admit(body.model, estimate(() => embedTokens(body))), client.embed(body, timeout))),
    list: (timeout) => Effect.scoped(Effect.zipRight(slot, client.list(timeout)))
  }
}
