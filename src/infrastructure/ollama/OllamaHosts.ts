/**
 * The hosts a language model balances over. A request goes only to hosts that have its
 * model (OllamaModels), and among them to the usable host with the fewest calls
 * outstanding (ties round-robin), skipping hosts whose breaker is open; it is retried on
 * a fresh pick for transient errors, no sooner than a host's `Retry-After`. The hosts
 * share the rate budgets (OllamaRateLimits). Kept apart from the model so that every
 * request, streamed or not, is placed and retried the same way.
 */
import { Clock, Duration, Effect, Either, ExecutionStrategy, Exit, Option, Ref, Scope } from "effect"
import { CircuitOpen } from "../../domain/Errors.js"
import type { LlmError } from "../../domain/LanguageModel.js"
import type { ModelNotFound } from "../../domain/LlmErrors.js"
import type { BreakerState } from "../resilience/BreakerState.js"
import * as RetryAfter from "../resilience/RetryAfter.js"
import type { OllamaOptions } from "./OllamaConfig.js"
import * as OllamaHost from "./OllamaHost.js"
import * as OllamaModels from "./OllamaModels.js"
import * as OllamaRateLimits from "./OllamaRateLimits.js"

export interface OllamaHosts {
  readonly all: ReadonlyArray<OllamaHost.OllamaHost>
  /** The host for the next request, whatever its model; `CircuitOpen` when every breaker is open. */
  readonly pick: Effect.Effect<OllamaHost.OllamaHost, CircuitOpen>
  /**
   * `request` on the best host that has its model (`ModelNotFound`, naming every host, when
   * none has; passed on to the next when a host turns out not to have it), retried on a
   * fresh pick for transient errors. A failed
   * attempt frees its slot before the next; the one that succeeds holds its slot (and a
   * stream its request) until the scope closes.
   */
  readonly run: <A>(request: OllamaHost.Request<A>) => Effect.Effect<A, LlmError, Scope.Scope>
}

export type Options = Pick<
  OllamaOptions,
  | "hosts"
  | "numParallel"
  | "maxConnections"
  | "breakerFailures"
  | "breakerResetTimeout"
  | "retry"
  | "rateLimit"
  | "modelRateLimits"
  | "modelsTtl"
>

/** Errors another attempt may not meet: the host was unreachable, slow, or busy (5xx, 429). */
export const isTransient = (error: LlmError): boolean => error._tag === "LlmUnavailable" || error._tag === "LlmTimeout"

/** How long the host asked to be left alone before the next attempt. */
export const retryAfter = (error: LlmError): Option.Option<Duration.Duration> =>
  error._tag === "LlmUnavailable" ? Option.fromNullable(error.retryAfter) : Option.none()

/**
 * The usable host with the fewest calls outstanding, looking from `start` so that ties go
 * round-robin; when every breaker is open, `CircuitOpen` with the soonest reopening.
 */
export const choose = <H extends { readonly outstanding: number }>(
  hosts: ReadonlyArray<H>,
  states: ReadonlyArray<BreakerState>,
  start: number,
  now: number
): Either.Either<H, CircuitOpen> => {
  let best: H | undefined
  let retryAfter = Infinity
  for (let i = 0; i < hosts.length; i++) {
    const index = (start + i) % hosts.length
    const host = hosts[index]!
    const state = states[index]!
    if (state._tag === "Open" && now < state.until) {
      retryAfter = Math.min(retryAfter, state.until - now)
      continue
    }
    if (best === undefined || host.outstanding < best.outstanding) best = host
  }
  return best
    ? Either.right(best)
    : Either.left(new CircuitOpen({ service: "ollama", retryAfter: Duration.millis(retryAfter) }))
}

/**
 * Runs `self` in a scope of its own, closed at once if `self` fails (so a failed attempt
 * lets go of its host before the retry) and otherwise along with the enclosing scope.
 */
const closedOnFailure = <A, E>(self: Effect.Effect<A, E, Scope.Scope>): Effect.Effect<A, E, Scope.Scope> =>
  Effect.flatMap(
    Effect.scope,
    (outer) =>
      Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (inner) =>
        Effect.onExit(
          Scope.extend(self, inner),
          (exit) => Exit.isFailure(exit) ? Scope.close(inner, exit) : Effect.void
        ))
  )

export const make = (options: Options): Effect.Effect<OllamaHosts, never, Scope.Scope> =>
  Effect.gen(function*() {
    const limits = yield* OllamaRateLimits.make(options)
    const all = yield* Effect.forEach(options.hosts, (url) => OllamaHost.make({ ...options, url, limits }))
    const models = yield* OllamaModels.make(all.map((host) => host.client), options)
    const turn = yield* Ref.make(0)
    const retry = RetryAfter.schedule<LlmError>(options.retry, isTransient, retryAfter)
    const pickAmong = (hosts: ReadonlyArray<OllamaHost.OllamaHost>) =>
      Effect.gen(function*() {
        const states = yield* Effect.forEach(hosts, (host) => host.breaker.snapshot)
        const start = (yield* Ref.updateAndGet(turn, (n) => n + 1)) % hosts.length
        return yield* choose(hosts, states, start, yield* Clock.currentTimeMillis)
      })
    /** The best host that may have `model`, but for those that already answered they lack it. */
    const pickFor = (model: string, lacking: ReadonlySet<string>) =>
      Effect.flatMap(
        models.eligible(model),
        (urls): Effect.Effect<OllamaHost.OllamaHost, ModelNotFound | CircuitOpen> => {
          const serving = all.filter((host) => urls.includes(host.url) && !lacking.has(host.url))
          return serving.length > 0 ? pickAmong(serving) : Effect.fail(models.notFound(model))
        }
      )
    /**
     * `request` on a host that may have its model. When one answers that it lacks the model
     * after all (its listing was stale, or unknown), the request goes on to the next that
     * may have it: nothing ran, so this is routing, not a retry.
     */
    const routed = <A>(
      request: OllamaHost.Request<A>,
      lacking: ReadonlySet<string>
    ): Effect.Effect<A, LlmError, Scope.Scope> =>
      Effect.flatMap(pickFor(request.model, lacking), (host) =>
        closedOnFailure(OllamaHost.attempt(host, request)).pipe(
          Effect.catchTag(
            "ModelNotFound",
            () =>
              Effect.zipRight(models.lacks(host.url, request.model), routed(request, new Set([...lacking, host.url])))
          )
        ))
    return {
      all,
      pick: pickAmong(all),
      run: (request) => Effect.retry(routed(request, new Set()), retry)
    }
  })
