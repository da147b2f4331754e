import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import * as path from "node:path"
import { CheckpointStore } from "../../src/domain/CheckpointStore.js"
import { ThreadId } from "../../src/domain/Workflow.js"
import * as SqliteCheckpointStore from "../../src/infrastructure/persistence/SqliteCheckpointStore.js"
import { exited, json, post, scratchDir, service, start, until } from "../support/Service.js"

type Run = { threadId: string; status: string; step: number }

/** The nodes of a coding run on the simulator, in order: its first code fails the tests, the second passes. */
const codingNodes = ["intent", "planner", "test_writer", "coder", "runner", "coder", "runner", "reviewer"]

/** The Server-Sent Events of a run, read to the end of the stream. */
const sse = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, type: response.headers.get("content-type"), text: await response.text() }
  })

const eventsOf = (text: string) =>
  text.split("\n\n").filter((block) => block.trim().length > 0).map((block) => {
    const field = (name: string) =>
      block.split("\n").find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2)
    return { id: Number(field("id")), event: field("event"), data: JSON.parse(field("data") ?? "null") }
  })

describe("the service, started for real", () => {
  it.live("answers every route as documented", () =>
    Effect.gen(function*() {
      const { url } = yield* service({ LOOM_DATA_DIR: scratchDir(), LOOM_MAX_BODY_BYTES: "2000" })
      assert.deepStrictEqual((yield* json(`${url}/health/live`)).body, { status: "ok" })
      const ready = (yield* json(`${url}/health/ready`)).body as { ready: boolean; checks: Record<string, unknown> }
      assert.isTrue(ready.ready)
      assert.includeMembers(Object.keys(ready.checks), ["database", "llm", "mcp", "cpu_pool", "processes", "resources"])

      const tools = (yield* json(`${url}/v1/tools`)).body as Array<{ name: string; kind: string }>
      assert.includeDeepMembers(tools.map((t) => [t.name, t.kind]), [["weather", "io"], ["text.chunk", "cpu"], [
        "code.run_tests",
        "process"
      ]])
      const executed = yield* post(`${url}/v1/tools/execute`, {
        mode: "parallel",
        calls: [
          { id: "1", tool: "weather", input: { city: "Rome" } },
          { id: "2", tool: "weather", input: { city: "" } },
          { id: "3", tool: "text.estimate_tokens", input: { text: "one two" } }
        ]
      })
      assert.strictEqual(executed.status, 200)
      const results = (executed.body as { results: Array<{ status: string; output?: unknown }> }).results
      assert.deepStrictEqual(results.map((r) => r.status), ["succeeded", "rejected", "succeeded"])
      assert.strictEqual(results[2]!.output, 2)

      const bad = yield* post(`${url}/v1/tools/execute`, { mode: "parallel" })
      assert.strictEqual(bad.status, 400)
      assert.include(JSON.stringify(bad.body), "calls")
      const noName = yield* post(`${url}/v1/runs`, { kind: "workflow", input: "x" })
      assert.strictEqual(noName.status, 400)
      assert.include(JSON.stringify(noName.body), "name")
      const cycle = yield* post(`${url}/v1/tools/execute`, {
        mode: "graph",
        nodes: [{ id: "a", tool: "weather", input: {}, dependsOn: ["b"] }, {
          id: "b",
          tool: "weather",
          input: {},
          dependsOn: ["a"]
        }]
      })
      assert.strictEqual(cycle.status, 400)
      const unknownKind = yield* post(`${url}/v1/runs`, { kind: "workflow", name: "nope", input: "x" })
      assert.strictEqual(unknownKind.status, 400)
      assert.strictEqual((yield* json(`${url}/v1/runs/no-such-run`)).status, 404)
      assert.strictEqual((yield* json(`${url}/v1/runs/no-such-run/events`)).status, 404)
      const tooBig = yield* post(`${url}/v1/tools/execute`, {
        mode: "batch",
        tool: "weather",
        inputs: ["x".repeat(3000)]
      })
      assert.strictEqual(tooBig.status, 413)
      // without a Content-Length (chunked), the body is cut at the same limit: refused, and the service stays up
      const chunked = yield* Effect.tryPromise(() =>
        fetch(`${url}/v1/tools/execute`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: new Blob([JSON.stringify({ mode: "batch", tool: "weather", inputs: ["x".repeat(3000)] })]).stream(),
          duplex: "half"
        } as RequestInit)
      ).pipe(Effect.map((response) => response.status), Effect.orElseSucceed(() => "connection closed" as const))
      assert.isTrue(chunked === "connection closed" || (chunked >= 400 && chunked < 500), String(chunked))
      assert.strictEqual((yield* json(`${url}/health/live`)).status, 200)

      const openapi = (yield* json(`${url}/openapi.json`)).body as { paths: Record<string, unknown> }
      assert.includeMembers(Object.keys(openapi.paths), ["/v1/runs", "/v1/runs/{id}/events", "/v1/tools/execute"])
      const docs = yield* json(`${url}/docs`)
      assert.strictEqual(docs.status, 200)
      assert.include(String(docs.body), "swagger")

      const metrics = String((yield* json(`${url}/metrics`)).body)
      const value = (series: RegExp) =>
        metrics.split("\n").filter((line) => series.test(line)).reduce(
          (sum, line) => sum + Number(line.split(" ").pop()),
          0
        )
      for (const line of metrics.split("\n").filter((l) => l.length > 0 && !l.startsWith("#"))) {
        assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? -?[0-9.e+-]+|NaN|[+-]Inf$/, line)
      }
      assert.isAbove(value(/^loom_tool_calls_total\{/), 0)
      assert.isAbove(value(/^loom_http_requests_total\{/), 0)
      assert.match(metrics, /loom_process_memory_bytes/)
      assert.match(metrics, /loom_event_loop_lag_ms/)
      assert.match(metrics, /effect_fiber_active/)
    }).pipe(Effect.scoped), 120_000)

  it.live(
    "runs the coding workflow; SSE delivers its events in order, replayed then live",
    () =>
      Effect.gen(function*() {
        const { url } = yield* service({ LOOM_DATA_DIR: scratchDir(), LOOM_SIMULATOR_LATENCY: "100 millis" })
        const started = yield* post(`${url}/v1/runs`, { kind: "workflow", name: "coding", input: "Write add(a, b)" })
        assert.strictEqual(started.status, 202)
        const { threadId } = started.body as { threadId: string }
        const stream = yield* sse(`${url}/v1/runs/${threadId}/events`)
        assert.strictEqual(stream.type, "text/event-stream")
        const events = eventsOf(stream.text)
        assert.deepStrictEqual(events.map((e) => e.id), events.map((_, i) => i + 1))
        const nodes = events.flatMap((e) => e.event === "NodeFinished" ? [e.data.node as string] : [])
        assert.deepStrictEqual(nodes, codingNodes)
        assert.strictEqual(events[events.length - 1]!.event, "WorkflowFinished")
        // the same history replays once the run is over
        const replay = eventsOf((yield* sse(`${url}/v1/runs/${threadId}/events`)).text)
        assert.strictEqual(replay.length, events.length)
        // a reconnecting client gets only what came after its Last-Event-ID
        const resumed = yield* Effect.promise(async () => {
          const response = await fetch(`${url}/v1/runs/${threadId}/events`, { headers: { "last-event-id": "5" } })
          return eventsOf(await response.text())
        })
        assert.deepStrictEqual(resumed.map((e) => e.id), events.slice(5).map((e) => e.id))
        const run = (yield* json(`${url}/v1/runs/${threadId}`)).body as Run
        assert.strictEqual(run.status, "finished")
        const agent = yield* post(`${url}/v1/runs`, {
          kind: "agent",
          name: "assistant",
          input: "use weather {\"city\": \"Oslo\"}"
        })
        const agentId = (agent.body as { threadId: string }).threadId
        const finished = yield* until(json(`${url}/v1/runs/${agentId}`), (r) => (r.body as Run).status !== "running")
        assert.strictEqual((finished.body as Run).status, "finished")
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "a full run queue answers 429 with Retry-After; a cancelled run stops and stays cancelled",
    () =>
      Effect.gen(function*() {
        const { url } = yield* service({
          LOOM_DATA_DIR: scratchDir(),
          LOOM_SIMULATOR_LATENCY: "500 millis",
          LOOM_MAX_RUNS: "1"
        })
        const { threadId } = (yield* post(`${url}/v1/runs`, { kind: "workflow", name: "coding", input: "add" }))
          .body as { threadId: string }
        const refused = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi" })
        assert.strictEqual(refused.status, 429)
        assert.strictEqual(refused.headers.get("retry-after"), "1")
        const duplicate = yield* post(`${url}/v1/runs`, { kind: "workflow", name: "coding", input: "add", threadId })
        assert.strictEqual(duplicate.status, 409)
        assert.strictEqual(((yield* json(`${url}/v1/runs/${threadId}`)).body as Run).status, "running")
        const cancelled = yield* post(`${url}/v1/runs/${threadId}/cancel`, {})
        assert.strictEqual(cancelled.status, 200)
        assert.strictEqual((cancelled.body as Run).status, "cancelled")
        const events = eventsOf((yield* sse(`${url}/v1/runs/${threadId}/events`)).text)
        assert.notInclude(events.map((e) => e.event), "WorkflowFinished")
        const again = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi" })
        assert.strictEqual(again.status, 202)
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "SIGTERM mid-run exits 0 with the run checkpointed; after a restart the run completes",
    () =>
      Effect.gen(function*() {
        const dir = scratchDir()
        const env = { LOOM_DATA_DIR: dir, LOOM_SIMULATOR_LATENCY: "400 millis" }
        const first = yield* start(env)
        const { threadId } = (yield* post(`${first.url}/v1/runs`, { kind: "workflow", name: "coding", input: "add" }))
          .body as { threadId: string }
        yield* until(json(`${first.url}/v1/runs/${threadId}`), (r) => (r.body as Run).step >= 2)
        // a client following the run must not hold the shutdown up
        const following = yield* Effect.fork(sse(`${first.url}/v1/runs/${threadId}/events`))
        yield* Effect.sleep("300 millis")
        first.child.kill("SIGTERM")
        const code = yield* exited(first.child).pipe(Effect.timeout("15 seconds"))
        assert.strictEqual(code, 0, first.output())
        const followed = yield* Fiber.join(following)
        assert.include(followed.text, "event: NodeFinished")

        const saved = yield* Effect.flatMap(CheckpointStore, (store) => store.getRun(ThreadId.make(threadId))).pipe(
          Effect.provide(SqliteCheckpointStore.layer(path.join(dir, "loom.db")))
        )
        assert.strictEqual(saved.status, "interrupted")
        assert.isAtLeast(saved.step, 2)

        const second = yield* service(env)
        const done = yield* until(
          json(`${second.url}/v1/runs/${threadId}`),
          (r) => (r.body as Run).status === "finished"
        )
        assert.strictEqual((done.body as Run).step, 8)
        const events = eventsOf((yield* sse(`${second.url}/v1/runs/${threadId}/events`)).text)
        const finished = events.flatMap((e) => e.event === "NodeFinished" ? [e.data.node as string] : [])
        assert.deepStrictEqual(finished, codingNodes)
      }).pipe(Effect.scoped, Effect.provide(Layer.empty)),
    120_000
  )

  it.live(
    "with no Ollama reachable the service still starts, and says so in the log and in /health/ready",
    () =>
      Effect.gen(function*() {
        const running = yield* service({
          LOOM_DATA_DIR: scratchDir(),
          LOOM_LLM: "ollama",
          OLLAMA_HOSTS: "http://127.0.0.1:9"
        })
        const ready = (yield* json(`${running.url}/health/ready`)).body as {
          ready: boolean
          checks: Record<string, { status: string }>
        }
        assert.strictEqual(ready.checks["llm"]?.status, "down")
        assert.isTrue(ready.ready, "the service itself is up")
        yield* until(Effect.sync(() => running.output()), (text) => text.includes("No Ollama reachable"))
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("an invalid environment variable stops start-up with its name", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(start({ LOOM_PORT: "not-a-port", LOOM_DATA_DIR: scratchDir() }))
      assert.include(error.message, "LOOM_PORT")
      assert.notInclude(error.message, "exited with 0")
    }), 60_000)
})
