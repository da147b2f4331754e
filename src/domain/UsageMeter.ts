/**
 * Counting the model calls of a piece of work without threading usage through it. A
 * meter is put around an effect (`within`); every chat made inside it, in any fiber it
 * forks, through a `metered` LanguageModel, is recorded in that meter and in every meter
 * around it. The workflow engine meters each node this way, so a node that calls a
 * model (or runs an agent that does) needs no code for its run's usage to add up.
 *
 * Meters keep calls per model, not costs: the price table belongs to whoever reads them.
 */
import { Chunk, Effect, FiberRef, List, Ref, Stream } from "effect"
import type { TokenUsage } from "./Chat.js"
import type * as LanguageModel from "./LanguageModel.js"
import type { PriceTable } from "./PriceTable.js"
import * as Usage from "./Usage.js"

/** One chat as a meter keeps it. */
export interface Call {
  readonly model: string
  readonly usage: TokenUsage
}

export interface Meter {
  readonly calls: Ref.Ref<Chunk.Chunk<Call>>
}

/** The meters around the current fiber, innermost first. */
const around = FiberRef.unsafeMake(List.empty<Meter>())

export const make: Effect.Effect<Meter> = Effect.map(Ref.make(Chunk.empty<Call>()), (calls) => ({ calls }))

/** Runs `effect` inside `meter` (and inside the meters already around it). */
export const within = (meter: Meter) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locallyWith(effect, around, List.prepend(meter))

/** Records a call in every meter around the current fiber; outside any meter (an agent run of its own) it is not kept. */
export const record = (model: string, usage: TokenUsage): Effect.Effect<void> =>
  Effect.flatMap(
    FiberRef.get(around),
    (meters) =>
      List.isNil(meters) ? Effect.void : Effect.forEach(
        meters,
        (meter) => Ref.update(meter.calls, Chunk.append({ model, usage })),
        { discard: true }
      )
  )

/** What `meter` has recorded so far, costed with `prices`. */
export const usage = (meter: Meter, prices: PriceTable): Effect.Effect<Usage.Usage> =>
  Effect.map(
    Ref.get(meter.calls),
    (calls) => Usage.sum(Chunk.map(calls, (call) => Usage.ofCall(call.model, call.usage, prices)))
  )

/** `llm`, recording every answered chat (streamed ones when their final chunk arrives) in the meters around its caller. */
export const metered = (llm: LanguageModel.Service): LanguageModel.Service => ({
  ...llm,
  chat: (request) => Effect.tap(llm.chat(request), (response) => record(response.model, response.usage)),
  chatStream: (request) =>
    Stream.tap(
      llm.chatStream(request),
      (chunk) => chunk._tag === "Done" ? record(chunk.response.model, chunk.response.usage) : Effect.void
    )
})
