/** LLM transport scenarios against the Ollama simulator over real loopback sockets. */
import { Duration, Effect, Exit, Scope } from "effect"
import { Chat, OllamaConfig, OllamaLanguageModel, OllamaSimulator, RetryPolicy } from "loom"
import type { LanguageModel } from "loom"
import { performance } from "node:perf_hooks"
import { Ollama } from "ollama"
import * as floors from "./floors.js"
import type { Scenario } from "./Scenario.js"
import { wallMs } from "./Scenario.js"

interface Setup {
  readonly scope: Scope.CloseableScope
  readonly sim: OllamaSimulator.OllamaSimulator
  readonly llm: LanguageModel.Service
}

const setup = (): Promise<Setup> =>
  Effect.runPromise(Effect.gen(function*() {
    const scope = yield* Scope.make()
    const sim = yield* OllamaSimulator.make().pipe(Scope.extend(scope))
    const llm = yield* OllamaLanguageModel.make({
      ...OllamaConfig.defaults,
      hosts: [sim.url],
      numParallel: 64,
      maxConnections: 16,
      embedBatchSize: 100,
      embedBatchWait: Duration.millis(5),
      retry: RetryPolicy.RetryPolicy.none
    }).pipe(Scope.extend(scope))
    return { scope, sim, llm }
  }))

let state: Setup | undefined
const current = (): Setup => {
  if (!state) throw new Error("bench setup did not run")
  return state
}
const start = async () => {
  state = await setup()
}
const stop = async () => {
  if (state) await Effect.runPromise(Scope.close(state.scope, Exit.void))
  state = undefined
}

const ask = (content: string) =>
  new Chat.ChatRequest({ model: "llama3.2", messages: [new Chat.ChatMessage({ role: "user", content })] })

let round = 0

export const embedBatched: Scenario = {
  id: "llm.embed-batched-1000",
  unit: "ms",
  better: "lower",
  runs: 5,
  setup: async () => {
    await start()
    current().sim.setFaults("embed", { latency: "5 millis" })
  },
  // fresh texts every run, so the cache never answers
  loom: () => {
    const texts = Array.from({ length: 1000 }, (_, i) => `run ${round} text ${i}`)
    round++
    return wallMs(() =>
      Effect.runPromise(
        Effect.forEach(texts, (text) => current().llm.embed("nomic-embed-text", [text]), { concurrency: "unbounded" })
      )
    )
  },
  baseline: () => {
    const client = new Ollama({ host: current().sim.url })
    const texts = Array.from({ length: 1000 }, (_, i) => `baseline text ${i}`)
    return wallMs(() => Promise.all(texts.map((text) => client.embed({ model: "nomic-embed-text", input: text }))))
  },
  floor: () => {
    const texts = Array.from({ length: 1000 }, (_, i) => `floor ${round} text ${i}`)
    return wallMs(() => Effect.runPromise(floors.embedBatched(current().sim.url, "nomic-embed-text", texts, 100, 5)))
  },
  teardown: stop
}

export const chatKeepAlive: Scenario = {
  id: "llm.chat-keepalive-2000",
  unit: "req/s",
  better: "higher",
  runs: 3,
  warmups: 1,
  setup: start,
  loom: async () => {
    const request = ask("hi")
    const ms = await wallMs(() =>
      Effect.runPromise(
        Effect.forEach(Array.from({ length: 2000 }), () => current().llm.chat(request), { discard: true })
      )
    )
    return 2000 / (ms / 1000)
  },
  baseline: async () => {
    const body = JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: "hi" }], stream: false })
    const url = `${current().sim.url}/api/chat`
    const ms = await wallMs(async () => {
      for (let i = 0; i < 2000; i++) {
        const response = await fetch(url, { method: "POST", body, headers: { connection: "close" } })
        await response.json()
      }
    })
    return 2000 / (ms / 1000)
  },
  teardown: stop
}

const p99 = (samples: Array<number>): number => {
  const sorted = samples.sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!
}

export const chatOverhead: Scenario = {
  id: "llm.chat-overhead-p99",
  unit: "ms",
  better: "lower",
  runs: 5,
  setup: start,
  loom: async () => {
    const request = ask("hi")
    const samples: Array<number> = []
    for (let i = 0; i < 300; i++) {
      const t = performance.now()
      await Effect.runPromise(current().llm.chat(request))
      samples.push(performance.now() - t)
    }
    return p99(samples)
  },
  baseline: async () => {
    const client = new Ollama({ host: current().sim.url })
    const samples: Array<number> = []
    for (let i = 0; i < 300; i++) {
      const t = performance.now()
      await client.chat({ model: "llama3.2", messages: [{ role: "user", content: "hi" }], stream: false })
      samples.push(performance.now() - t)
    }
    return p99(samples)
  },
  teardown: stop
}
