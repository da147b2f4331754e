/**
 * Which models each host has, so that a request goes only to hosts that can serve it.
 * Each host's `/api/tags` is cached for a TTL and asked again when it expires. A host
 * whose listing fails (or is malformed, or slow) is "unknown" and stays eligible: one
 * flaky `/api/tags` must not take a host out of rotation; an unknown listing is asked
 * again soon. Listings go to the bare client, past the host's slots (a poll must not
 * queue behind long generations) and its breaker (a failed poll is not a failed request).
 */
import { Cache, Duration, Effect, Either, Exit, Option } from "effect"
import { ModelNotFound } from "../../domain/LlmErrors.js"
import type { OllamaClient } from "./OllamaClient.js"

export interface OllamaModels {
  /**
   * The URLs of the hosts that have `model`, or whose listing is unknown. When the cached
   * listings rule out every host they are asked again first (the model may have been
   * pulled since); if still no host has it, `ModelNotFound` names every host asked.
   */
  readonly eligible: (model: string) => Effect.Effect<ReadonlyArray<string>, ModelNotFound>
  /**
   * A host answered that it lacks `model`: a cached listing that says otherwise is stale
   * and is asked again (an unknown one is asked again soon anyway).
   */
  readonly lacks: (url: string, model: string) => Effect.Effect<void>
  /** The error for a model no host has, naming every host. */
  readonly notFound: (model: string) => ModelNotFound
}

export interface Options {
  /** How long a host's listing is trusted. */
  readonly modelsTtl: Duration.Duration
}

/** A failed listing is asked again after this (or the TTL, if shorter): the host may only have hiccuped. */
const unknownTtl = Duration.seconds(5)

/** A healthy host lists its models in milliseconds; one slower than this is unknown for now. */
const listTimeout = Duration.seconds(5)

/** A model's full name: Ollama reads a name without a tag as `name:latest`. */
export const canonical = (name: string): string =>
  name.slice(name.lastIndexOf("/") + 1).includes(":") ? name : `${name}:latest`

/** A host's models by full name; none: unknown. */
type Listing = Option.Option<ReadonlySet<string>>

const serves = (listing: Listing, model: string): boolean =>
  Option.match(listing, { onNone: () => true, onSome: (names) => names.has(model) })

/**
 * One event-loop turn. undici hands a socket back to its pool on the turn after a reply
 * (`setImmediate`, in case the server closes it after all), and the request a poll routes
 * follows it at once: without the wait it would open a second connection to the host.
 */
const socketReturned: Effect.Effect<void> = Effect.async((resume) => {
  const turn = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(turn))
})

const listing = (client: OllamaClient): Effect.Effect<Listing> =>
  client.list(listTimeout).pipe(
    Effect.map((reply): ReadonlySet<string> => new Set(reply.models.map((model) => canonical(model.name)))),
    Effect.option,
    Effect.zipLeft(socketReturned)
  )

export const make = (clients: ReadonlyArray<OllamaClient>, options: Options): Effect.Effect<OllamaModels> =>
  Effect.gen(function*() {
    const byUrl = new Map(clients.map((client) => [client.url, client]))
    const urls = [...byUrl.keys()]
    const cache = yield* Cache.makeWith({
      capacity: Math.max(1, urls.length),
      lookup: (url: string) => listing(byUrl.get(url)!),
      timeToLive: (exit: Exit.Exit<Listing>) =>
        Exit.isSuccess(exit) && Option.isSome(exit.value)
          ? options.modelsTtl
          : Duration.min(unknownTtl, options.modelsTtl)
    })
    /** Every host's listing, asked at once: `Left` from the cache, `Right` just asked. */
    const listings = Effect.forEach(urls, (url) => cache.getEither(url), { concurrency: "unbounded" })
    const serving = (answers: ReadonlyArray<Either.Either<Listing, Listing>>, model: string) =>
      urls.filter((_, i) => serves(Either.merge(answers[i]!), model))

    const notFound = (model: string) => new ModelNotFound({ host: urls.join(", "), model, hosts: urls })
    const eligible = (model: string) =>
      Effect.gen(function*() {
        const name = canonical(model)
        const cached = yield* listings
        const found = serving(cached, name)
        if (found.length > 0 || cached.every(Either.isRight)) return found
        yield* Effect.forEach(urls.filter((_, i) => Either.isLeft(cached[i]!)), (url) => cache.invalidate(url))
        return serving(yield* listings, name)
      }).pipe(Effect.filterOrFail((found) => found.length > 0, () => notFound(model)))

    const lacks = (url: string, model: string) =>
      cache.invalidateWhen(url, (listing) => Option.exists(listing, (names) => names.has(canonical(model))))

    return { eligible, lacks, notFound }
  })
