import { assert, describe, it } from "@effect/vitest"
import {
  Chunk,
  ConfigProvider,
  Duration,
  Effect,
  Fiber,
  Metric,
  MetricState,
  Option,
  Schema,
  Stream,
  TestClock
} from "effect"
import { ChatMessage, ChatRequest, toolSpec } from "../../../src/domain/Chat.js"
import { RetryPolicy } from "../../../src/domain/RetryPolicy.js"
import * as Tool from "../../../src/domain/Tool.js"
import * as OllamaConfig from "../../../src/infrastructure/ollama/OllamaConfig.js"
import * as OllamaLanguageModel from "../../../src/infrastructure/ollama/OllamaLanguageModel.js"
import * as OllamaSimulator from "../../../src/infrastructure/ollama/OllamaSimulator.js"
import { eventually } from "../../support/Eventually.js"
import { quickRetry } from "./SimulatedModel.js"

const weather = Tool.make({
  name: "weather",
  description: "Current weather for a city",
  input: Schema.Struct({ city: Schema.String }),
  output: Schema.Struct({ celsius: Schema.Number }),
  handler: () => Effect.succeed({ celsius: 20 })
})

const ask = (content: string, model = "llama3.2", tools = [toolSpec(weather)]) =>
  new ChatRequest({ model, messages: [new ChatMessage({ role: "user", content })], tools })

const noRetry = RetryPolicy.none

/** The value of the metric `name` summed over every series carrying `tags` (whatever other tags it has). */
const metricValue = (name: string, tags: Readonly<Record<string, string>>) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs
      .filter(({ metricKey }) =>
        metricKey.name === name &&
        Object.entries(tags).every(([key, value]) =>
          metricKey.tags.some((tag) => tag.key === key && tag.value === value)
        )
      )
      .reduce((total, { metricState }) => {
        if (MetricState.isCounterState(metricState)) return total + Number(metricState.count)
        if (MetricState.isHistogramState(metricState)) return total + metricState.count
        return MetricState.isGaugeState(metricState) ? total + Number(metricState.value) : total
      }, 0))

/** A language model over the given simulators, with test-friendly settings. */
const model = (urls: ReadonlyArray<string>, overrides: Partial<OllamaConfig.OllamaOptions> = {}) =>
  OllamaLanguageModel.make({
    ...OllamaConfig.defaults,
    hosts: urls,
    retry: noRetry,
    chatTimeout: Duration.seconds(5),
    ...overrides
  })

describe("OllamaLanguageModel over the simulator", () => {
  it.scoped("chat round-trips, including a tool call with its arguments and token counts", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url])
      const response = yield* llm.chat(ask("please use weather {\"city\": \"Paris\"}"))
      assert.strictEqual(response.host, sim.url)
      assert.strictEqual(response.message.toolCalls.length, 1)
      assert.strictEqual(response.message.toolCalls[0]?.name, "weather")
      assert.deepStrictEqual(response.message.toolCalls[0]?.arguments, { city: "Paris" })
      assert.isAbove(response.usage.prompt, 0)
      const sent = sim.lastBody("chat") as { tools: Array<{ function: { name: string; parameters: unknown } }> }
      assert.strictEqual(sent.tools[0]?.function.name, "weather")
      assert.deepInclude(sent.tools[0]?.function.parameters as object, { required: ["city"] })
      const plain = yield* llm.chat(ask("hello there"))
      assert.strictEqual(plain.message.content, "echo: hello there")
      assert.deepStrictEqual(plain.message.toolCalls, [])
    }))

  it.scoped("streaming chat yields deltas, then one Done with the whole message", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url])
      const chunks = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.chatStream(ask("hello big world"))))
      const deltas = chunks.flatMap((c) => c._tag === "Delta" ? [c.content] : [])
      assert.strictEqual(deltas.join(""), "echo: hello big world")
      const last = chunks[chunks.length - 1]
      assert.strictEqual(last?._tag, "Done")
      assert.strictEqual(last?._tag === "Done" && last.response.message.content, "echo: hello big world")
      assert.isTrue(last?._tag === "Done" && last.response.usage.completion > 0)
      const tool = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.chatStream(ask("weather {\"city\": \"Oslo\"}"))))
      const done = tool.find((c) => c._tag === "Done")
      assert.deepStrictEqual(done?._tag === "Done" && done.response.message.toolCalls[0]?.arguments, { city: "Oslo" })
    }))

  it.scoped("100 concurrent embeds become at most ceil(100 / maxBatch) requests, each caller its own vector", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make({ dimensions: 4 })
      const llm = yield* model([sim.url], { embedBatchSize: 16, embedBatchWait: Duration.millis(20) })
      const texts = Array.from({ length: 100 }, (_, i) => `text number ${i}`)
      const fiber = yield* Effect.fork(
        Effect.forEach(texts, (text) => llm.embed("nomic-embed-text", [text]), { concurrency: "unbounded" })
      )
      yield* eventually(() => sim.requests("embed") >= 6, "six full batches")
      yield* TestClock.adjust("20 millis")
      const vectors = yield* Fiber.join(fiber)
      assert.isAtMost(sim.requests("embed"), Math.ceil(100 / 16))
      vectors.forEach(([vector], i) => assert.deepStrictEqual(vector, OllamaSimulator.embedding(texts[i]!, 4)))
    }))

  it.scoped("a repeated embed is a cache hit and makes no request", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url], { embedBatchWait: Duration.zero })
      const hits = Metric.tagged(OllamaLanguageModel.embedCache, "result", "hit")
      const before = (yield* Metric.value(hits)).count
      const first = yield* llm.embed("nomic-embed-text", ["the same text"])
      const second = yield* llm.embed("nomic-embed-text", ["the same text"])
      assert.deepStrictEqual(first, second)
      assert.strictEqual(sim.requests("embed"), 1)
      assert.strictEqual((yield* Metric.value(hits)).count - before, 1)
    }))

  it.live("a host answering 500 trips its breaker and traffic moves to the healthy host", () =>
    Effect.scoped(Effect.gen(function*() {
      const sick = yield* OllamaSimulator.make()
      const healthy = yield* OllamaSimulator.make()
      sick.setFaults("chat", { errorRate: 1, status: 500 })
      const llm = yield* model([sick.url, healthy.url], {
        breakerFailures: 2,
        breakerResetTimeout: Duration.minutes(1),
        retry: quickRetry
      })
      const answers = yield* Effect.forEach(Array.from({ length: 10 }), (_, i) => llm.chat(ask(`question ${i}`)))
      assert.isTrue(answers.every((answer) => answer.host === healthy.url))
      assert.strictEqual(sick.requests("chat"), 2, "the sick host saw only the calls that tripped it")
      assert.strictEqual(healthy.requests("chat"), 10)
    })))

  it.scoped("with every host down calls fail fast with CircuitOpen, and recover through half-open", () =>
    Effect.gen(function*() {
      const a = yield* OllamaSimulator.make()
      const b = yield* OllamaSimulator.make()
      a.setFaults("chat", { errorRate: 1, status: 503 })
      b.setFaults("chat", { errorRate: 1, status: 503 })
      const llm = yield* model([a.url, b.url], { breakerFailures: 1, breakerResetTimeout: Duration.seconds(10) })
      for (let i = 0; i < 2; i++) {
        const error = yield* Effect.flip(llm.chat(ask("anyone?")))
        assert.strictEqual(error._tag, "LlmUnavailable")
      }
      const seen = a.requests("chat") + b.requests("chat")
      const open = yield* Effect.flip(llm.chat(ask("anyone?")))
      assert.strictEqual(open._tag, "CircuitOpen")
      assert.isTrue(open._tag === "CircuitOpen" && Duration.lessThanOrEqualTo(open.retryAfter, Duration.seconds(10)))
      assert.strictEqual(a.requests("chat") + b.requests("chat"), seen, "no request was made")
      a.clearFaults()
      b.clearFaults()
      yield* TestClock.adjust("10 seconds")
      const answer = yield* llm.chat(ask("back?"))
      assert.strictEqual(answer.message.content, "echo: back?")
    }))

  it.scoped("a hung host hits LlmTimeout and the request is aborted (the connection closes)", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      sim.setFaults("chat", { hang: true })
      const llm = yield* model([sim.url], { chatTimeout: Duration.seconds(30) })
      const fiber = yield* Effect.fork(Effect.flip(llm.chat(ask("hello?"))))
      yield* eventually(() => sim.requests("chat") === 1 && sim.connections().open === 1, "the request to arrive")
      yield* TestClock.adjust("30 seconds")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "LlmTimeout")
      yield* eventually(() => sim.connections().open === 0, "the connection to close")
    }))

  it.scoped("malformed JSON, malformed NDJSON and undecodable tool-call arguments give LlmBadResponse", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url])
      sim.setFaults("chat", { malformed: true })
      const json = yield* Effect.flip(llm.chat(ask("hi")))
      assert.strictEqual(json._tag, "LlmBadResponse")
      assert.isTrue(json._tag === "LlmBadResponse" && json.message.includes("malformed JSON"))
      assert.isTrue(json._tag === "LlmBadResponse" && json.raw.includes("broken"))
      const ndjson = yield* Effect.flip(Stream.runDrain(llm.chatStream(ask("hi there"))))
      assert.strictEqual(ndjson._tag, "LlmBadResponse")
      assert.isTrue(ndjson._tag === "LlmBadResponse" && ndjson.raw.includes("tru"))
      sim.clearFaults()
      sim.setScript(() => ({ content: "", toolCalls: [{ name: "weather", arguments: "{city: Paris" }] }))
      const args = yield* Effect.flip(llm.chat(ask("weather")))
      assert.strictEqual(args._tag, "LlmBadResponse")
      assert.isTrue(args._tag === "LlmBadResponse" && args.message.includes("\"weather\""))
      assert.isTrue(args._tag === "LlmBadResponse" && args.raw === "{city: Paris")
      sim.setScript(() => ({ content: "", toolCalls: [{ name: "weather", arguments: "{\"city\": \"Rome\"}" }] }))
      const stringly = yield* llm.chat(ask("weather"))
      assert.deepStrictEqual(stringly.message.toolCalls[0]?.arguments, { city: "Rome" })
    }))

  it.scoped("an unknown model is ModelNotFound and does not count against the host", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url], { breakerFailures: 1 })
      const error = yield* Effect.flip(llm.chat(ask("hi", "no-such-model")))
      assert.strictEqual(error._tag, "ModelNotFound")
      assert.strictEqual((yield* llm.chat(ask("still up"))).message.content, "echo: still up")
      const names = (yield* llm.models).map((m) => m.name)
      assert.includeMembers(names, ["llama3.2", "nomic-embed-text"])
    }))

  it.scoped("keep-alive: 50 sequential chats reuse at most maxConnections sockets", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url], { maxConnections: 2 })
      for (let i = 0; i < 50; i++) yield* llm.chat(ask(`n${i}`))
      assert.strictEqual(sim.requests("chat"), 50)
      assert.isAtMost(sim.connections().opened, 2)
    }))

  it.scoped("interrupting a stream mid-way aborts the request and closes the connection", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      sim.setFaults("chat", { trickle: "1 second" })
      const llm = yield* model([sim.url], { chatTimeout: Duration.minutes(1) })
      const first = yield* Effect.fork(Stream.runHead(llm.chatStream(ask("one two three four five"))))
      yield* eventually(() => sim.connections().open === 1, "the stream to start")
      yield* TestClock.adjust("1 second")
      const head = yield* Fiber.join(first)
      assert.isTrue(Option.isSome(head))
      yield* eventually(() => sim.connections().open === 0, "the connection to close")
    }))

  it.live("a stream whose opening fails transiently is retried on a fresh pick, each attempt counted", () =>
    Effect.scoped(Effect.gen(function*() {
      const sick = yield* OllamaSimulator.make()
      const healthy = yield* OllamaSimulator.make()
      sick.setFaults("chat", { errorRate: 1, status: 503 })
      const llm = yield* model([sick.url, healthy.url], { retry: quickRetry })
      // two streams in a row: round-robin sends one of them to the sick host first
      for (let i = 0; i < 2; i++) {
        const chunks = yield* Stream.runCollect(llm.chatStream(ask(`question ${i}`)))
        const done = Chunk.last(chunks).pipe(Option.getOrUndefined)
        assert.strictEqual(done?._tag === "Done" && done.response.host, healthy.url)
        assert.strictEqual(done?._tag === "Done" && done.response.message.content, `echo: question ${i}`)
      }
      assert.isAtLeast(sick.requests("chat"), 1)
      const failed = yield* metricValue("loom_llm_requests", {
        host: sick.url,
        operation: "chat",
        outcome: "LlmUnavailable"
      })
      assert.strictEqual(failed, sick.requests("chat"), "every failed opening is a request with its outcome")
      const succeeded = yield* metricValue("loom_llm_requests", {
        host: healthy.url,
        operation: "chat",
        outcome: "success"
      })
      assert.strictEqual(succeeded, 2)
    })))

  it.scoped("a stream is counted in loom_llm_requests and loom_llm_duration_ms, and leaves no request in flight", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url])
      yield* Stream.runDrain(llm.chatStream(ask("count me")))
      const head = yield* Stream.runHead(llm.chatStream(ask("close me early")))
      assert.isTrue(Option.isSome(head))
      const chats = { host: sim.url, operation: "chat" }
      assert.strictEqual(yield* metricValue("loom_llm_requests", { ...chats, outcome: "success" }), 2)
      assert.strictEqual(yield* metricValue("loom_llm_duration_ms", chats), 2)
      assert.strictEqual(yield* metricValue("loom_llm_in_flight", { host: sim.url }), 0)
    }))

  it.scoped("device settings reach Ollama's options", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url], { device: "cpu", cpuThreads: Option.some(6) })
      yield* llm.chat(ask("hi"))
      assert.deepInclude((sim.lastBody("chat") as { options: object }).options, { num_gpu: 0, num_thread: 6 })
    }))
})

describe("OllamaConfig", () => {
  const read = (env: Record<string, string>) =>
    Effect.withConfigProvider(OllamaConfig.config, ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect("reads hosts and device settings", () =>
    Effect.gen(function*() {
      const options = yield* read({
        OLLAMA_HOSTS: "http://127.0.0.1:1/, http://127.0.0.1:2",
        DEVICE_TYPE: "gpu",
        OLLAMA_NUM_PARALLEL: "2"
      })
      assert.deepStrictEqual(options.hosts, ["http://127.0.0.1:1", "http://127.0.0.1:2"])
      assert.deepStrictEqual(OllamaConfig.deviceOptions(options), { num_gpu: 999 })
      assert.strictEqual(options.numParallel, 2)
    }))

  it.effect("an invalid variable is named in the error", () =>
    Effect.gen(function*() {
      for (
        const [name, value] of [
          ["OLLAMA_HOSTS", "ftp://x"],
          ["DEVICE_TYPE", "tpu"],
          ["CPU_THREADS", "0"],
          ["OLLAMA_NUM_PARALLEL", "many"]
        ] as const
      ) {
        const error = yield* Effect.flip(read({ [name]: value }))
        assert.include(String(error), name)
      }
    }))
})
