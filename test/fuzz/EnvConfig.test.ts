/**
 * Boundary 5, the environment: arbitrary values for the service's variables, read
 * through the Config values the service reads them with (ConfigProvider.fromMap). Each
 * either decodes or fails with a ConfigError whose text names a variable that was set
 * (the one, when only one was); never a defect.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Effect, Exit, Option } from "effect"
import * as fc from "fast-check"
import { LoomConfig } from "../../src/application/LoomConfig.js"
import * as LoomConfigModule from "../../src/application/LoomConfig.js"
import * as LoomMcpServer from "../../src/application/LoomMcpServer.js"
import * as Shutdown from "../../src/application/Shutdown.js"
import * as PriceTable from "../../src/domain/PriceTable.js"
import * as NodeCpuRunner from "../../src/infrastructure/cpu/NodeCpuRunner.js"
import * as LlmBackend from "../../src/infrastructure/ollama/LlmBackend.js"
import * as OllamaConfig from "../../src/infrastructure/ollama/OllamaConfig.js"
import * as SqliteCheckpointStore from "../../src/infrastructure/persistence/SqliteCheckpointStore.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as Tally from "../support/Tally.js"

const tally = Tally.make("env-config")

/**
 * The Config values the service reads at start-up, with the variables each reads.
 */
const configs: ReadonlyArray<readonly [string, Config.Config<unknown>]> = [
  ["LoomConfig", LoomConfigModule.config],
  ["NodeCpuRunner", NodeCpuRunner.config],
  ["NodeProcessRunner", NodeProcessRunner.config],
  ["Timeouts", Timeouts.config],
  ["OllamaConfig", OllamaConfig.config],
  ["LlmBackend", LlmBackend.config],
  ["Shutdown", Shutdown.deadlineConfig],
  ["LoomMcpServer", LoomMcpServer.sessionIdle],
  ["PriceTable", PriceTable.config],
  ["SqliteCheckpointStore", SqliteCheckpointStore.dataDir]
]

type Kind = "integer" | "number" | "duration" | "boolean" | "hosts" | "rate" | "keepAlive" | "prices" | "text"

const variables: ReadonlyArray<readonly [string, Kind]> = [
  ["LOOM_HOST", "text"],
  ["LOOM_PORT", "integer"],
  ["LOOM_MAX_RUNS", "integer"],
  ["LOOM_MAX_BODY_BYTES", "integer"],
  ["LOOM_REQUEST_TIMEOUT", "duration"],
  ["LOOM_CODING_MODEL", "text"],
  ["LOOM_AGENT_MODEL", "text"],
  ["LOOM_SHUTDOWN_TIMEOUT", "duration"],
  ...Timeouts.operations.map((op) => [`LOOM_TIMEOUT_${op.replace(".", "_").toUpperCase()}`, "duration"] as const),
  ["MAX_WORKERS", "integer"],
  ["LOOM_CPU_QUEUE", "integer"],
  ["LOOM_CPU_OVERFLOW", "text"],
  ["MAX_PROCESSES", "integer"],
  ["LOOM_PROCESS_CPU_TIME", "duration"],
  ["OLLAMA_HOSTS", "hosts"],
  ["OLLAMA_NUM_PARALLEL", "integer"],
  ["OLLAMA_MAX_CONNECTIONS", "integer"],
  ["DEVICE_TYPE", "text"],
  ["CPU_THREADS", "integer"],
  ["LLM_EMBED_BATCH_SIZE", "integer"],
  ["LLM_EMBED_BATCH_WAIT", "duration"],
  ["LLM_EMBED_CACHE_TTL", "duration"],
  ["LLM_EMBED_CACHE_CAPACITY", "integer"],
  ["LOOM_LLM_RETRY_MAX_RETRIES", "integer"],
  ["LOOM_LLM_RETRY_INITIAL_DELAY", "duration"],
  ["LOOM_LLM_RETRY_MULTIPLIER", "number"],
  ["LOOM_LLM_RETRY_MAX_DELAY", "duration"],
  ["LOOM_LLM_RETRY_JITTER", "boolean"],
  ["LOOM_LLM_BREAKER_FAILURES", "integer"],
  ["LOOM_LLM_BREAKER_RESET", "duration"],
  ["OLLAMA_KEEP_ALIVE", "keepAlive"],
  ["OLLAMA_RATE_LIMIT", "rate"],
  ["OLLAMA_MODEL_RATE_LIMIT", "rate"],
  ["OLLAMA_MODELS_TTL", "duration"],
  ["LOOM_LLM", "text"],
  ["LOOM_SIMULATOR_LATENCY", "duration"],
  ["LOOM_MCP_SESSION_IDLE", "duration"],
  ["LOOM_PRICES", "prices"],
  ["LOOM_DATA_DIR", "text"]
]

const anyText = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom("", " ", "\t", "\n", "\u0000", "=", ",", "/", "NaN", "Infinity", "-Infinity", "null", "undefined")
)

const numberText = fc.oneof(
  fc.integer().map(String),
  fc.integer({ min: -2, max: 70_000 }).map(String),
  fc.double().map(String),
  fc.constantFrom(
    "0",
    "-0",
    "+5",
    "1e3",
    "1e400",
    "0x10",
    "0b11",
    "1.5",
    " 7 ",
    "12abc",
    "٣",
    "1_000",
    "99999999999999999999",
    "9007199254740993"
  )
)

const unit = fc.constantFrom(
  "nanos",
  "micros",
  "millis",
  "seconds",
  "minutes",
  "hours",
  "days",
  "weeks",
  "second",
  "ms",
  "s",
  "m",
  "lightyears",
  ""
)

const durationText = fc.oneof(
  fc.tuple(numberText, unit).map(([n, u]) => `${n} ${u}`),
  fc.tuple(fc.nat(1000), unit).map(([n, u]) => `${n}${u}`),
  fc.constantFrom("Infinity", "Infinity seconds", "-1 seconds", "5", "1 hour 2 minutes", "0 millis")
)

const hostText = fc.oneof(
  fc.constantFrom("http://127.0.0.1:11434", "https://h", "ftp://x", "localhost:11434", "http://", "http://[::1]:1", ""),
  fc.webUrl()
)

const rateText = fc.oneof(
  fc.tuple(numberText, fc.constantFrom("", " tokens", " requests", " bananas"), unit).map(([n, k, u]) =>
    `${n}${k}/${u}`
  ),
  fc.tuple(fc.constantFrom("llama3.2", "", "a:b", "="), fc.nat(100), unit).map(([m, n, u]) => `${m}=${n}/${u}`),
  fc.constantFrom("10/second", "100 tokens/minute", "1/0 seconds", "1/-1 seconds", "/", "1/")
)

const keepAliveText = fc.oneof(
  durationText,
  fc.tuple(fc.constantFrom("llama3.2", "", "a:b"), durationText).map(([m, d]) => `${m}=${d}`),
  fc.constantFrom("-1", "0", "5m", "5m,llama3.2=30m", "=5m", "x=")
)

const pricesText = fc.oneof(
  fc.tuple(fc.constantFrom("llama3.2", "", "a:b"), numberText, numberText).map(([m, p, c]) => `${m}=${p}/${c}`),
  fc.constantFrom("a=1/2,b=3/4", "a=1", "=1/2", "a=/", ",,")
)

const list = (item: fc.Arbitrary<string>) =>
  fc.array(item, { minLength: 1, maxLength: 3 }).map((items) => items.join(","))

const valueOf = (kind: Kind): fc.Arbitrary<string> => {
  switch (kind) {
    case "integer":
    case "number":
      return fc.oneof({ weight: 4, arbitrary: numberText }, { weight: 1, arbitrary: anyText })
    case "duration":
      return fc.oneof({ weight: 4, arbitrary: durationText }, { weight: 1, arbitrary: anyText })
    case "boolean":
      return fc.oneof(fc.constantFrom("true", "false", "yes", "no", "on", "off", "1", "0", "TRUE"), anyText)
    case "hosts":
      return fc.oneof({ weight: 4, arbitrary: list(hostText) }, { weight: 1, arbitrary: anyText })
    case "rate":
      return fc.oneof({ weight: 4, arbitrary: list(rateText) }, { weight: 1, arbitrary: anyText })
    case "keepAlive":
      return fc.oneof({ weight: 4, arbitrary: list(keepAliveText) }, { weight: 1, arbitrary: anyText })
    case "prices":
      return fc.oneof({ weight: 4, arbitrary: list(pricesText) }, { weight: 1, arbitrary: anyText })
    case "text":
      return fc.oneof(
        fc.constantFrom("wait", "reject", "auto", "cpu", "gpu", "ollama", "simulator", "0.0.0.0"),
        anyText
      )
  }
}

type Environment = ReadonlyArray<readonly [string, string]>

/**
 * The known defect below: Config.integer takes any integral number (Number(text)), and
 * Retry.config hands one past 2^53 to RetryPolicy.make, which throws.
 */
const hitsUnsafeRetries = (env: Environment) =>
  env.some(([name, value]) =>
    name === "LOOM_LLM_RETRY_MAX_RETRIES" && Number.isInteger(Number(value)) && !Number.isSafeInteger(Number(value))
  )

/** One to three variables, each with a value of its kind (or any text). */
const environment: fc.Arbitrary<Environment> = fc.uniqueArray(fc.constantFrom(...variables), {
  minLength: 1,
  maxLength: 3,
  selector: ([name]) => name
}).chain((chosen) => fc.tuple(...chosen.map(([name, kind]) => valueOf(kind).map((value) => [name, value] as const))))
  .filter((env) => !hitsUnsafeRetries(env))

describe("fuzzed environment variables", () => {
  it.effect.prop(
    "every Config the service reads decodes, or fails with a ConfigError naming a variable that was set",
    [environment],
    ([env]) =>
      Effect.gen(function*() {
        const names = env.map(([name]) => name)
        const provider = ConfigProvider.fromMap(new Map(env))
        const failed: Array<string> = []
        for (const [label, config] of configs) {
          const exit = yield* Effect.exit(Effect.withConfigProvider(config, provider))
          if (Exit.isSuccess(exit)) continue
          const where = `${label} with ${JSON.stringify(env)}`
          assert.isFalse(Cause.isDie(exit.cause), `a defect: ${Cause.pretty(exit.cause)} (${where})`)
          const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
          const text = String(error)
          const named = names.filter((name) => text.includes(name))
          assert.isAbove(named.length, 0, `the error names no variable that was set: ${text} (${where})`)
          failed.push(label)
        }
        tally.record(failed.length === 0 ? "decoded everywhere" : "ConfigError naming the variable")
      }),
    { timeout: 120_000, fastCheck: { numRuns: 1_500 } }
  )

  /** Found by this suite in src/infrastructure/resilience/Retry.ts (not its to fix); when fixed, this fails: make it plain. */
  it.effect.fails(
    "KNOWN DEFECT: LOOM_LLM_RETRY_MAX_RETRIES past 2^53 is a defect (RetryPolicy.make throws), not a ConfigError",
    () =>
      Effect.gen(function*() {
        const provider = ConfigProvider.fromMap(new Map([["LOOM_LLM_RETRY_MAX_RETRIES", "99999999999999999999"]]))
        const exit = yield* Effect.exit(Effect.withConfigProvider(OllamaConfig.config, provider))
        assert.isFalse(Exit.isFailure(exit) && Cause.isDie(exit.cause), "a defect")
      })
  )

  it.effect("values that decoded to nonsense are refused naming their variable (they were accepted)", () =>
    Effect.gen(function*() {
      const refused: ReadonlyArray<readonly [string, string, Config.Config<unknown>]> = [
        ["LOOM_SHUTDOWN_TIMEOUT", "-1 seconds", Shutdown.deadlineConfig],
        ["LOOM_SHUTDOWN_TIMEOUT", "0 seconds", Shutdown.deadlineConfig],
        ["LOOM_REQUEST_TIMEOUT", "-5 seconds", LoomConfigModule.config],
        ["LOOM_HOST", "999.1.1.1", LoomConfigModule.config],
        ["LOOM_HOST", "not a host", LoomConfigModule.config]
      ]
      for (const [name, value, config] of refused) {
        const exit = yield* Effect.exit(
          Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map([[name, value]])))
        )
        assert.isTrue(Exit.isFailure(exit) && !Cause.isDie(exit.cause), `${name}=${value} was accepted`)
        assert.include(String(Exit.isFailure(exit) && Option.getOrUndefined(Cause.failureOption(exit.cause))), name)
      }
      for (const host of ["0.0.0.0", "::", "localhost", "loom.internal", "10.1.2.3"]) {
        const exit = yield* Effect.exit(
          Effect.withConfigProvider(LoomConfigModule.config, ConfigProvider.fromMap(new Map([["LOOM_HOST", host]])))
        )
        assert.isTrue(Exit.isSuccess(exit), host)
      }
    }))

  it.effect("the defaults decode", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(new Map())
      for (const [label, config] of configs) {
        const exit = yield* Effect.exit(Effect.withConfigProvider(config, provider))
        assert.isTrue(Exit.isSuccess(exit), label)
      }
      const settings = yield* Effect.withConfigProvider(LoomConfig, provider).pipe(Effect.provide(LoomConfig.layer))
      assert.strictEqual(settings.maxBodyBytes, 1024 * 1024)
    }))
})
