/**
 * 100 agent runs against the Ollama simulator over real sockets, each with one fault
 * class injected at random (hang, reset mid-stream, malformed JSON, 500s, trickle, or
 * none). Every run must end `finished` or with a typed error within its deadline (no
 * hang), and once the faults stop the host's breaker lets calls through again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Random, Schema } from "effect"
import { AgentRuntime } from "../../src/application/AgentRuntime.js"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import type { Agent } from "../../src/domain/Agent.js"
import { AgentError } from "../../src/domain/Agent.js"
import { RetryPolicy } from "../../src/domain/RetryPolicy.js"
import * as Tool from "../../src/domain/Tool.js"
import * as OllamaLanguageModel from "../../src/infrastructure/ollama/OllamaLanguageModel.js"
import * as OllamaSimulator from "../../src/infrastructure/ollama/OllamaSimulator.js"
import type { Faults } from "../../src/infrastructure/ollama/OllamaSimulator.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"

const weather = Tool.make({
  name: "weather",
  description: "Current weather for a city",
  input: Schema.Struct({ city: Schema.String }),
  output: Schema.Struct({ celsius: Schema.Number }),
  handler: ({ city }) => Effect.succeed({ celsius: city.length })
})

const faultClasses: ReadonlyArray<readonly [string, Faults]> = [
  ["none", {}],
  ["hang", { hang: true }],
  ["reset", { resetMidStream: true }],
  ["malformed", { malformed: true }],
  ["500s", { errorRate: 1, status: 500 }],
  ["trickle", { trickle: "30 millis" }]
]

const deadline = Duration.seconds(3)
const isAgentError = Schema.is(AgentError)

describe("chaos: LLM faults during agent runs", () => {
  it.live(
    "100 runs with random faults each end finished or with a typed error, none past its deadline",
    () =>
      Effect.gen(function*() {
        const simulator = yield* OllamaSimulator.make()
        const services = AgentRuntime.layer.pipe(
          Layer.provideMerge(
            ToolExecutor.layerIo().pipe(
              Layer.provideMerge(InMemoryToolRegistry.layer([weather])),
              Layer.provide(Timeouts.Timeouts.Default)
            )
          ),
          Layer.provide(OllamaLanguageModel.layer({
            hosts: [simulator.url],
            chatTimeout: Duration.seconds(1),
            retry: RetryPolicy.from({ maxRetries: 1, initialDelay: "20 millis", jitter: false }),
            breakerFailures: 5,
            breakerResetTimeout: Duration.millis(200)
          }))
        )
        // built in the test's scope, so the hosts' connections live as long as the runs
        const runtime = Context.get(yield* Layer.build(services), AgentRuntime)
        const counts = new Map<string, Map<string, number>>()
        for (let run = 0; run < 100; run++) {
          const [name, faults] = faultClasses[yield* Random.nextIntBetween(0, faultClasses.length)]!
          simulator.setFaults("chat", faults)
          const agent: Agent = {
            name: "chaos",
            model: "llama3.2",
            systemPrompt: "Answer with the tools.",
            tools: ["weather"],
            deadline,
            stream: run % 2 === 0
          }
          const outcome = yield* runtime.answer(agent, `use weather {"city": "Oslo ${run}"}`).pipe(
            Effect.map(() => "finished"),
            Effect.catchAll((error) => Effect.succeed(isAgentError(error) ? error._tag : `untyped ${String(error)}`)),
            // a run that outlives its own deadline (plus scheduling slack) is a hang
            Effect.timeoutFail({ duration: Duration.sum(deadline, Duration.seconds(2)), onTimeout: () => "hung" })
          )
          // a pause longer than the breaker's reset: the next run meets its own fault, or a probe
          yield* Effect.sleep("250 millis")
          const byOutcome = counts.get(name) ?? new Map<string, number>()
          byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1)
          counts.set(name, byOutcome)
        }
        for (const [name, byOutcome] of counts) {
          console.log(`chaos llm ${name}: ${[...byOutcome].map(([outcome, n]) => `${outcome} ${n}`).join(", ")}`)
          for (const outcome of byOutcome.keys()) assert.notMatch(outcome, /^untyped/, `${name}: ${outcome}`)
        }
        // the faults stop: after the reset timeout the breaker lets a probe through and closes again
        simulator.clearFaults()
        yield* Effect.sleep("400 millis")
        const after = yield* runtime.answer(
          { name: "after", model: "llama3.2", systemPrompt: "", tools: ["weather"], deadline },
          "use weather {\"city\": \"Rome\"}"
        )
        assert.include(after, "Based on the tool results")
      }).pipe(Effect.scoped),
    600_000
  )
})
