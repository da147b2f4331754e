/**
 * One Ollama host: its keep-alive connection pool, a semaphore sized to its parallel
 * slots, its circuit breaker, and how many calls it has outstanding (for balancing).
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import { Ollama } from "ollama"
import { Agent } from "undici"
import * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import * as OllamaFetch from "./OllamaFetch.js"

export interface OllamaHost {
  readonly url: string
  readonly semaphore: Effect.Semaphore
  readonly breaker: CircuitBreaker.CircuitBreaker
  /** A client for one call: cheap, sharing the host's sockets, aborted by `signal`. */
  readonly client: (signal: AbortSignal) => Ollama
  /** Calls started and not yet finished, waiting for a slot included. */
  outstanding: number
}

export interface Options {
  readonly url: string
  readonly numParallel: number
  readonly maxConnections: number
  readonly breaker: Omit<CircuitBreaker.Options, "service">
}

export const make = (options: Options): Effect.Effect<OllamaHost, never, Scope.Scope> =>
  Effect.gen(function*() {
    const agent = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Agent({
          connections: options.maxConnections,
          keepAliveTimeout: 30_000,
          // Effect owns every deadline: undici's own (300 s) would cut long generations.
          headersTimeout: 0,
          bodyTimeout: 0
        })
      ),
      (agent) => Effect.promise(() => agent.destroy())
    )
    const semaphore = yield* Effect.makeSemaphore(options.numParallel)
    const breaker = yield* CircuitBreaker.make({ ...options.breaker, service: `ollama:${options.url}` })
    return {
      url: options.url,
      semaphore,
      breaker,
      client: (signal) => new Ollama({ host: options.url, fetch: OllamaFetch.make(agent, signal) }),
      outstanding: 0
    }
  })
