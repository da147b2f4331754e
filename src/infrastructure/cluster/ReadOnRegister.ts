/**
 * Sharding reads its message storage when it starts and then every
 * `entityMessagePollInterval` (10 s). Loom registers its run workflow only once the
 * service's layers are up, a moment after that first read, so the runs a crash or a
 * shutdown cut off would wait for the next poll. This reads storage again as soon as an
 * entity type registers: cut-off runs resume at start.
 */
import * as Sharding from "@effect/cluster/Sharding"
import { Effect, Layer, Stream } from "effect"

export const layer: Layer.Layer<never, never, Sharding.Sharding> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const sharding = yield* Sharding.Sharding
    yield* sharding.getRegistrationEvents.pipe(
      Stream.filter((event) => event._tag === "EntityRegistered"),
      Stream.runForEach(() => sharding.pollStorage),
      Effect.forkScoped
    )
  })
)
