/**
 * Which LanguageModel a service talks to, from `LOOM_LLM`: the Ollama hosts of
 * `OLLAMA_HOSTS` (`ollama`, the default), or the built-in Ollama simulator answering the
 * coding script (`simulator`, offline; `LOOM_SIMULATOR_LATENCY` slows each chat).
 */
import { Config, Effect, Layer, Option } from "effect"
import { codingScript } from "./CodingScript.js"
import * as OllamaLanguageModel from "./OllamaLanguageModel.js"
import * as OllamaSimulator from "./OllamaSimulator.js"

export const config = Config.all({
  llm: Config.literal("ollama", "simulator")("LOOM_LLM").pipe(Config.withDefault("ollama" as const)),
  simulatorLatency: Config.option(Config.duration("LOOM_SIMULATOR_LATENCY"))
})

export const layerConfig = Layer.unwrapScoped(Effect.gen(function*() {
  const { llm, simulatorLatency } = yield* config
  if (llm === "ollama") return OllamaLanguageModel.layerConfig
  const simulator = yield* OllamaSimulator.make({ script: codingScript })
  if (Option.isSome(simulatorLatency)) simulator.setFaults("chat", { latency: simulatorLatency.value })
  yield* Effect.logInfo(`LOOM_LLM=simulator: the built-in Ollama simulator answers at ${simulator.url}`)
  return OllamaLanguageModel.layer({ hosts: [simulator.url] })
}))
