import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { json, post, scratchDir, service, start, until } from "../support/Service.js"

interface Usage {
  readonly calls: number
  readonly prompt: number
  readonly completion: number
  readonly costUsd?: number
}

type Run = { readonly status: string; readonly usage: Usage }

/** The `data` of each Server-Sent Event of a finished run's stream, by event name. */
const sse = (url: string) =>
  Effect.promise(async () => {
    const text = await (await fetch(url)).text()
    return text.split("\n\n").filter((block) => block.trim().length > 0).map((block) => {
      const field = (name: string) =>
        block.split("\n").find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2)
      return { event: field("event"), data: JSON.parse(field("data") ?? "null") as { usage?: Usage } }
    })
  })

describe("usage, with the service started for real", () => {
  it.live(
    "an agent run's tokens and cost are in its record, its events and the per-model metrics",
    () =>
      Effect.gen(function*() {
        // the simulator reports prompt_eval_count / eval_count; the assistant's model is llama3.2
        const { url } = yield* service({ LOOM_DATA_DIR: scratchDir(), LOOM_PRICES: "llama3.2=0.10/0.40,other=1/1" })
        const started = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "Weather in Oslo?" })
        assert.strictEqual(started.status, 202)
        const { threadId } = started.body as { threadId: string }
        const run = yield* until(
          Effect.map(json(`${url}/v1/runs/${threadId}`), (response) => response.body as Run),
          (run) => run.status !== "running"
        )
        assert.strictEqual(run.status, "finished")
        assert.isAtLeast(run.usage.calls, 1)
        assert.isAbove(run.usage.prompt, 0)
        assert.isAbove(run.usage.completion, 0)
        assert.closeTo(run.usage.costUsd!, (run.usage.prompt * 0.1 + run.usage.completion * 0.4) / 1e6, 1e-12)

        const events = yield* sse(`${url}/v1/runs/${threadId}/events`)
        const usageOf = (name: string) => events.find((e) => e.event === name)?.data.usage
        assert.deepStrictEqual(usageOf("NodeFinished"), run.usage)
        assert.deepStrictEqual(usageOf("WorkflowFinished"), run.usage)

        const metrics = String((yield* json(`${url}/metrics`)).body)
        assert.match(metrics, /^loom_llm_prompt_tokens\w*\{[^}]*model="llama3\.2"[^}]*\} [1-9]/m)

        // a price table that does not parse stops start-up, naming the variable and the entry
        const refused = yield* Effect.flip(start({ LOOM_DATA_DIR: scratchDir(), LOOM_PRICES: "llama3.2=cheap" }))
        assert.include(refused.message, "LOOM_PRICES")
        assert.include(refused.message, "llama3.2=cheap")
      }).pipe(Effect.scoped),
    120_000
  )
})
