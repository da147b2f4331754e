/**
 * Settings of the Ollama adapter, read from the environment. An invalid value stops
 * start-up with an error naming the variable.
 */
import { Config, ConfigError, Duration, Either, Option } from "effect"
import type { RetryPolicy } from "../../domain/RetryPolicy.js"
import * as Retry from "../resilience/Retry.js"
import * as Timeouts from "../resilience/Timeouts.js"
import * as OllamaKeepAlive from "./OllamaKeepAlive.js"
import * as OllamaRateLimits from "./OllamaRateLimits.js"

export type DeviceType = "auto" | "cpu" | "gpu"

export interface OllamaOptions {
  /** Base URLs of the Ollama hosts to balance over. */
  readonly hosts: ReadonlyArray<string>
  /** Requests Loom sends one host at once: its parallel slots, so Loom never queues inside Ollama. */
  readonly numParallel: number
  /** Keep-alive sockets per host. */
  readonly maxConnections: number
  readonly device: DeviceType
  readonly cpuThreads: Option.Option<number>
  readonly embedBatchSize: number
  readonly embedBatchWait: Duration.Duration
  readonly embedCacheTtl: Duration.Duration
  readonly embedCacheCapacity: number
  readonly chatTimeout: Duration.Duration
  readonly embedTimeout: Duration.Duration
  readonly retry: RetryPolicy
  /** Failures in a row that open a host's breaker, and how long it stays open. */
  readonly breakerFailures: number
  readonly breakerResetTimeout: Duration.Duration
  /** How long Ollama keeps each model loaded after a request (`OLLAMA_KEEP_ALIVE`, see OllamaKeepAlive). */
  readonly keepAlive: OllamaKeepAlive.KeepAlive
  /** Each host's request and token budgets (`OLLAMA_RATE_LIMIT`, see OllamaRateLimits); none by default. */
  readonly rateLimit: OllamaRateLimits.Limits
  /** Budgets per model, shared by all hosts (`OLLAMA_MODEL_RATE_LIMIT`); none by default. */
  readonly modelRateLimits: ReadonlyMap<string, OllamaRateLimits.Limits>
  /** How long a host's model listing is trusted for routing (`OLLAMA_MODELS_TTL`, see OllamaModels). */
  readonly modelsTtl: Duration.Duration
}

export const defaults: OllamaOptions = {
  hosts: ["http://127.0.0.1:11434"],
  numParallel: 4,
  maxConnections: 8,
  device: "auto",
  cpuThreads: Option.none(),
  embedBatchSize: 64,
  embedBatchWait: Duration.millis(5),
  embedCacheTtl: Duration.minutes(10),
  embedCacheCapacity: 10_000,
  chatTimeout: Timeouts.defaults["llm.chat"],
  embedTimeout: Timeouts.defaults["llm.embed"],
  retry: Retry.defaultLlmPolicy,
  breakerFailures: 5,
  breakerResetTimeout: Duration.seconds(10),
  keepAlive: OllamaKeepAlive.defaults,
  rateLimit: OllamaRateLimits.unlimited,
  modelRateLimits: new Map(),
  modelsTtl: Duration.minutes(1)
}

/** A comma-separated list of http(s) URLs, each checked. */
const hostList = (name: string): Config.Config<ReadonlyArray<string>> =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => {
      const hosts = raw.split(",").map((host) => host.trim().replace(/\/+$/, "")).filter((host) => host.length > 0)
      const bad = hosts.find((host) => {
        try {
          const url = new URL(host)
          return url.protocol !== "http:" && url.protocol !== "https:"
        } catch {
          return true
        }
      })
      if (hosts.length === 0) return Either.left(ConfigError.InvalidData([name], "expected at least one URL"))
      return bad === undefined
        ? Either.right(hosts)
        : Either.left(ConfigError.InvalidData([name], `not an http(s) URL: ${bad}`))
    })
  )

const positive = (name: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a whole number of 1 or more", validation: (n) => n >= 1 })
  )

export const config: Config.Config<OllamaOptions> = Config.all({
  hosts: hostList("OLLAMA_HOSTS").pipe(Config.withDefault(defaults.hosts)),
  numParallel: positive("OLLAMA_NUM_PARALLEL").pipe(Config.withDefault(defaults.numParallel)),
  maxConnections: positive("OLLAMA_MAX_CONNECTIONS").pipe(Config.withDefault(defaults.maxConnections)),
  device: Config.literal("auto", "cpu", "gpu")("DEVICE_TYPE").pipe(Config.withDefault(defaults.device)),
  cpuThreads: Config.option(positive("CPU_THREADS")),
  embedBatchSize: positive("LLM_EMBED_BATCH_SIZE").pipe(Config.withDefault(defaults.embedBatchSize)),
  embedBatchWait: Config.duration("LLM_EMBED_BATCH_WAIT").pipe(Config.withDefault(defaults.embedBatchWait)),
  embedCacheTtl: Config.duration("LLM_EMBED_CACHE_TTL").pipe(Config.withDefault(defaults.embedCacheTtl)),
  embedCacheCapacity: positive("LLM_EMBED_CACHE_CAPACITY").pipe(Config.withDefault(defaults.embedCacheCapacity)),
  chatTimeout: Config.map(Timeouts.config, (table) => table["llm.chat"]),
  embedTimeout: Config.map(Timeouts.config, (table) => table["llm.embed"]),
  retry: Retry.config("LOOM_LLM_RETRY", defaults.retry),
  breakerFailures: positive("LOOM_LLM_BREAKER_FAILURES").pipe(Config.withDefault(defaults.breakerFailures)),
  breakerResetTimeout: Config.duration("LOOM_LLM_BREAKER_RESET").pipe(Config.withDefault(defaults.breakerResetTimeout)),
  keepAlive: OllamaKeepAlive.config("OLLAMA_KEEP_ALIVE").pipe(Config.withDefault(defaults.keepAlive)),
  rateLimit: OllamaRateLimits.hostConfig("OLLAMA_RATE_LIMIT").pipe(Config.withDefault(defaults.rateLimit)),
  modelRateLimits: OllamaRateLimits.modelConfig("OLLAMA_MODEL_RATE_LIMIT").pipe(
    Config.withDefault(defaults.modelRateLimits)
  ),
  modelsTtl: Config.duration("OLLAMA_MODELS_TTL").pipe(
    Config.validate({
      message: "must be longer than zero",
      validation: (ttl) => Duration.greaterThan(ttl, Duration.zero)
    }),
    Config.withDefault(defaults.modelsTtl)
  )
})

/** Ollama `options` for the device strategy: CPU only, or every layer on the GPU, and a thread count. */
export const deviceOptions = (options: Pick<OllamaOptions, "device" | "cpuThreads">): Record<string, number> => ({
  ...(options.device === "cpu" ? { num_gpu: 0 } : options.device === "gpu" ? { num_gpu: 999 } : {}),
  ...Option.match(options.cpuThreads, { onNone: () => ({}), onSome: (n) => ({ num_thread: n }) })
})
