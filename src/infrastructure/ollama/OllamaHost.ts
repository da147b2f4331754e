/**
 * One Ollama host as the balancer sees it: its client, a semaphore sized to its parallel
 * slots, its circuit breaker, and how many calls it has outstanding. An attempt on a host
 * is where a request is measured, runs under the breaker and, through the gated client
 * (OllamaGate), waits for its rate budgets and holds a slot: in one place, so a chat and a
 * streamed chat get the same.
 */
import type { Duration, Exit, Scope } from "effect"
import { Cause, Clock, Effect, Metric, Option, Schema } from "effect"
import { CircuitOpen } from "../../domain/Errors.js"
import type { LlmError } from "../../domain/LanguageModel.js"
import { LlmBadResponse, LlmTimeout, LlmUnavailable, ModelNotFound } from "../../domain/LlmErrors.js"
import * as CircuitBreaker from "../resilience/CircuitBreaker.js"
import * as MetricTags from "../resilience/MetricTags.js"
import * as OllamaClient from "./OllamaClient.js"
import * as OllamaGate from "./OllamaGate.js"
import { duration, inFlight, requests } from "./OllamaMetrics.js"
import * as OllamaRateLimits from "./OllamaRateLimits.js"

export interface OllamaHost {
  readonly url: string
  /** The bare transport: no budget, no slot. */
  readonly client: OllamaClient.OllamaClient
  /** What requests are given: their rate budgets, then a slot, then the transport. */
  readonly gated: OllamaClient.OllamaClient
  readonly semaphore: Effect.Semaphore
  readonly breaker: CircuitBreaker.CircuitBreaker<LlmError>
  /** Calls started and not yet finished, waiting for a slot included. */
  outstanding: number
}

export interface Options {
  readonly url: string
  readonly numParallel: number
  readonly maxConnections: number
  /** Failures in a row that open the breaker, and how long it stays open. */
  readonly breakerFailures: number
  readonly breakerResetTimeout: Duration.Duration
  /** The rate budgets requests draw on, shared by the hosts (default: none). */
  readonly limits?: OllamaRateLimits.OllamaRateLimits
}

/** One request for an attempt: its operation and model label the metrics; `open` sends it and reads the reply. */
export interface Request<A> {
  readonly operation: OllamaClient.Operation
  readonly model: string
  /** For a stream, opening it: its request then lives as long as the scope. */
  readonly open: (client: OllamaClient.OllamaClient) => Effect.Effect<A, LlmError, Scope.Scope>
}

/** Failures that say the host is unwell. A missing model is an answer, and an open breaker is not the host's. */
export const countsAgainstHost = (error: LlmError): boolean =>
  error._tag === "LlmUnavailable" || error._tag === "LlmTimeout" || error._tag === "LlmBadResponse"

/** One of the host's parallel slots until the scope closes; waiting for it can be interrupted. */
const slot = (semaphore: Effect.Semaphore): Effect.Effect<void, never, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.zipRight(restore(semaphore.take(1)), Effect.addFinalizer(() => semaphore.release(1)))
  )

export const make = (options: Options): Effect.Effect<OllamaHost, never, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* OllamaClient.make(options)
    const semaphore = yield* Effect.makeSemaphore(options.numParallel)
    const breaker = yield* CircuitBreaker.make<LlmError>({
      service: `ollama:${options.url}`,
      consecutiveFailures: options.breakerFailures,
      resetTimeout: options.breakerResetTimeout,
      isFailure: countsAgainstHost
    })
    const gated = OllamaGate.make(client, slot(semaphore), options.limits ?? OllamaRateLimits.none)
    return { url: options.url, client, gated, semaphore, breaker, outstanding: 0 }
  })

const isLlmError = Schema.is(Schema.Union(LlmUnavailable, LlmTimeout, LlmBadResponse, ModelNotFound, CircuitOpen))

/** How a request ended, as the `outcome` tag: success, its error's tag, interrupted, or defect. */
const outcome = (exit: Exit.Exit<unknown, unknown>): string => {
  if (exit._tag === "Success") return "success"
  if (Cause.isInterruptedOnly(exit.cause)) return "interrupted"
  return Option.match(Cause.failureOption(exit.cause), {
    onNone: () => "defect",
    onSome: (error) => isLlmError(error) ? error._tag : "defect"
  })
}

/** Counts the call as outstanding (and in flight) until the scope closes, then records it with the scope's outcome. */
const track = (host: OllamaHost, request: Request<unknown>): Effect.Effect<void, never, Scope.Scope> => {
  const gauge = MetricTags.tagged(inFlight, { host: host.url })
  const tags = { model: request.model, host: host.url, operation: request.operation }
  return Effect.acquireRelease(
    Effect.zipLeft(
      Clock.currentTimeMillis,
      Effect.suspend(() => Metric.set(gauge, ++host.outstanding))
    ),
    (started, exit) =>
      Effect.suspend(() => Metric.set(gauge, --host.outstanding)).pipe(
        Effect.zipRight(Metric.increment(MetricTags.tagged(requests, { ...tags, outcome: outcome(exit) }))),
        Effect.zipRight(Clock.currentTimeMillis),
        Effect.flatMap((now) => Metric.update(MetricTags.tagged(duration, tags), now - started))
      )
  ).pipe(Effect.asVoid)
}

/**
 * One attempt on one host: outstanding and in flight, then the request under the breaker,
 * given the gated client (budgets, then a slot). What the attempt holds is held until the
 * scope closes: at once for a reply read whole, when its reader is done for a stream. A
 * half-open breaker's probe waits for its budget and slot like any request.
 */
export const attempt = <A>(host: OllamaHost, request: Request<A>): Effect.Effect<A, LlmError, Scope.Scope> =>
  Effect.zipRight(track(host, request), host.breaker.protect(request.open(host.gated)))
