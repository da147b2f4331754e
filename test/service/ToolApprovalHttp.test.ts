/**
 * Tool approval over the real service (real sockets, loopback only, SQLite): the service
 * runs with `LOOM_APPROVAL=weather`, so each `weather` call of the `assistant` agent waits
 * for a person, one `tool-approval` interrupt per call, keyed `0/agent/tool-approval/<callId>`.
 * The model is the Ollama simulator in this process on a script of this file: its first
 * answer asks for three `weather` calls and one `search` (which needs nobody) in one
 * turn; its second, once the tool results are in, repeats the tool messages it got. Every
 * request the simulator gets is kept, so the test reads what the model was sent.
 *
 * Tool executions are counted by the service's own `/metrics` (`loom_tool_calls_total`
 * by tool and status): a call that runs goes through the executor once and counts once,
 * however often the turn is replayed; a denied call never reaches the executor.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { SimChatRequest, SimReply } from "../../src/infrastructure/ollama/OllamaSimulator.js"
import * as CountingOllama from "../support/CountingOllama.js"
import * as History from "../support/History.js"
import type { Proc } from "../support/Processes.js"
import { service, tempDir } from "../support/Processes.js"
import * as RunPolling from "../support/RunPolling.js"
import { json, post } from "../support/Service.js"

// ---------------------------------------------------------------------------------------------
// the model
// ---------------------------------------------------------------------------------------------

/** Turn 1's calls, in order: call ids `1.0` to `1.3`. */
const cities = ["Lisbon", "Oslo", "Quito"] as const
const firstTurn: SimReply = {
  content: "",
  toolCalls: [
    ...cities.map((city) => ({ name: "weather", arguments: { city } })),
    { name: "search", arguments: { query: "fibers" } }
  ]
}
const weatherIds = ["1.0", "1.1", "1.2"] as const
const keyOf = (callId: string) => `0/agent/tool-approval/${callId}`
const keys = weatherIds.map(keyOf)

const toolMessages = (request: SimChatRequest) => request.messages.filter((m) => m.role === "tool")

/** The model, as this file scripts it; every request it gets is kept in `requests`. */
const model = () => {
  const requests: Array<SimChatRequest> = []
  const script = (request: SimChatRequest): SimReply => {
    requests.push(request)
    const tools = toolMessages(request)
    if (tools.length === 0) return firstTurn
    return {
      content: `read ${tools.length} tool messages: ${tools.map((m) => `${m.tool_name}=${m.content}`).join(" | ")}`
    }
  }
  return { requests, script }
}

// ---------------------------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------------------------

interface Waiting {
  readonly _tag: string
  readonly step: number
  readonly node: string
  readonly name: string
  readonly key: string
  readonly payload: {
    readonly agent: string
    readonly tool: string
    readonly callId: string
    readonly arguments: unknown
  }
}

interface Run {
  readonly threadId: string
  readonly status: string
  readonly waiting?: ReadonlyArray<Waiting>
}

interface EventData {
  readonly step?: number
  readonly node?: string
  readonly key?: string
  readonly state?: { readonly answer?: string }
}

type Running = Proc & { readonly url: string }

const startService = Effect.gen(function*() {
  const dir = yield* tempDir("loom-approval-")
  const { requests, script } = model()
  const chats: Array<unknown> = []
  const ollama = yield* CountingOllama.make({ script, onChat: (body) => chats.push(body) })
  const proc = yield* service({
    LOOM_DATA_DIR: dir,
    TMPDIR: dir,
    LOOM_LLM: "ollama",
    OLLAMA_HOSTS: ollama.url,
    LOOM_APPROVAL: "weather"
  })
  return { proc, requests, chats }
})

const startAgent = (url: string, input: string) =>
  Effect.map(post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input }), (started) => {
    assert.strictEqual(started.status, 202, JSON.stringify(started.body))
    return (started.body as { threadId: string }).threadId
  })

const getRun = (url: string, id: string) => RunPolling.getRun<Run>(url, id)

const keysOf = (run: Run) => (run.waiting ?? []).map((w) => w.key).sort()

const pollUntil = RunPolling.pollUntil

const untilRun = (proc: Running, id: string, what: string, check: (run: Run) => boolean) =>
  RunPolling.untilRun<Run>(proc, id, what, check)

const waitingOn = (pending: ReadonlyArray<string>) => (run: Run) =>
  run.status === "waiting" && keysOf(run).join() === [...pending].sort().join()

/** `loom_tool_calls_total` per `tool/status`, from the service's `/metrics`. */
const toolCalls = (url: string) =>
  Effect.map(json(`${url}/metrics`), (reply) => {
    const counts: Record<string, number> = {}
    for (const line of String(reply.body).split("\n")) {
      if (!line.startsWith("loom_tool_calls_total{")) continue
      const tool = /tool="([^"]*)"/.exec(line)?.[1]
      const status = /status="([^"]*)"/.exec(line)?.[1]
      counts[`${tool}/${status}`] = (counts[`${tool}/${status}`] ?? 0) + Number(line.split(" ").pop())
    }
    return counts
  })

const resume = (url: string, threadId: string, interrupt: string, value: unknown) =>
  post(`${url}/v1/runs/${threadId}/resume`, { interrupt, value })

const resumeOk = (url: string, threadId: string, interrupt: string, value: unknown) =>
  Effect.map(resume(url, threadId, interrupt, value), (answer) => {
    assert.strictEqual(answer.status, 200, `${interrupt}: ${JSON.stringify(answer.body)}`)
    const run = answer.body as Run
    assert.strictEqual(run.threadId, threadId)
    assert.notInclude(keysOf(run), interrupt, "the answered interrupt is still listed")
    return run
  })

/** The run's whole SSE history (it must have ended), checked: gapless ids, WorkflowFinished last. */
const finishedHistory = (url: string, threadId: string) =>
  Effect.map(History.historyOf<EventData>(url, threadId), (events) => {
    History.checkHistory(threadId, events)
    return events
  })

/** How many events of `tag` each approval key has, in call order. */
const perKey = (events: ReadonlyArray<History.Stored<EventData>>, tag: string) =>
  keys.map((key) => events.filter((e) => e.event === tag && e.data.key === key).length)

/** The tool messages of the model's second request: tool name and parsed content, in order. */
const resultsOf = (request: SimChatRequest) =>
  toolMessages(request).map((m) => ({ tool: m.tool_name, content: JSON.parse(m.content) as unknown }))

/** Waits for the three approvals, checks what each shows, and that the search has run (once) meanwhile. */
const waitForApprovals = (proc: Running, threadId: string) =>
  Effect.gen(function*() {
    const waiting = yield* untilRun(proc, threadId, "the three approvals", waitingOn(keys))
    assert.strictEqual(waiting.waiting!.length, 3)
    for (const [i, callId] of weatherIds.entries()) {
      const asked = waiting.waiting!.find((w) => w.key === keyOf(callId))!
      assert.strictEqual(asked._tag, "Interrupted")
      assert.strictEqual(asked.name, "tool-approval")
      assert.strictEqual(asked.node, "agent")
      assert.strictEqual(asked.step, 0)
      assert.deepStrictEqual(asked.payload, {
        agent: "assistant",
        tool: "weather",
        callId,
        arguments: { city: cities[i] }
      })
    }
    // the search needs nobody: it runs while the run waits (the run may read `waiting` a moment before it is done)
    const calls = yield* pollUntil(proc, toolCalls(proc.url), "the search to run", (c) => c["search/succeeded"] === 1)
    assert.deepStrictEqual(calls, { "search/succeeded": 1 }, "tool calls executed before any approval")
    // and stays done: a while later, still one search, no weather, the same run
    yield* Effect.sleep("500 millis")
    assert.deepStrictEqual(yield* toolCalls(proc.url), { "search/succeeded": 1 })
    assert.isTrue(waitingOn(keys)(yield* getRun(proc.url, threadId)))
  })

describe("tool approval over the real service", () => {
  it.live(
    "an agent turn with three approval-needing calls, approved, denied and approved in reverse order over HTTP " +
      "while a fourth call runs",
    () =>
      Effect.gen(function*() {
        const began = performance.now()
        const { chats, proc, requests } = yield* startService
        const threadId = yield* startAgent(proc.url, "What is the weather in three cities, and what about fibers?")
        yield* waitForApprovals(proc, threadId)
        assert.strictEqual(requests.length, 1, "the model asked once so far")

        // the third call first: approved; it runs (once) while the others still wait
        yield* resumeOk(proc.url, threadId, keys[2]!, { approved: true })
        yield* pollUntil(proc, toolCalls(proc.url), "the approved 3rd call to run", (c) => c["weather/succeeded"] === 1)
        yield* untilRun(proc, threadId, "the 1st and 2nd approvals", waitingOn([keys[0]!, keys[1]!]))
        // the second: denied, with a reason
        yield* resumeOk(proc.url, threadId, keys[1]!, { approved: false, reason: "not this one" })
        yield* untilRun(proc, threadId, "the 1st approval alone", waitingOn([keys[0]!]))
        // the first: approved; the turn is complete and the model answers
        const last = yield* resumeOk(proc.url, threadId, keys[0]!, { approved: true })
        assert.isTrue(last.waiting === undefined || last.waiting.length === 0, JSON.stringify(last))
        // what GET shows until the run has finished, as status[pending call ids]
        const trail: Array<string> = []
        yield* untilRun(proc, threadId, "the run to finish", (run) => {
          const seen = `${run.status}[${(run.waiting ?? []).map((w) => w.payload.callId).join(",")}]`
          if (trail.at(-1) !== seen) trail.push(seen)
          return run.status === "finished"
        })

        // the model: asked twice in all (turn 1 is not asked again on the replays); the second request has the four
        // results in call order, the denied one an error naming the denial
        assert.strictEqual(requests.length, 2, requests.map((r) => JSON.stringify(toolMessages(r))).join("\n"))
        assert.strictEqual(chats.length, 2)
        const results = resultsOf(requests[1]!)
        assert.deepStrictEqual(results.map((r) => r.tool), ["weather", "weather", "weather", "search"])
        assert.deepStrictEqual(results[0]!.content, { city: "Lisbon", celsius: 10 + ("Lisbon".length % 15) })
        assert.deepStrictEqual(results[1]!.content, {
          error: "ToolFailed",
          message: "denied by a person: not this one"
        })
        assert.deepStrictEqual(results[2]!.content, { city: "Quito", celsius: 10 + ("Quito".length % 15) })
        assert.deepStrictEqual(results[3]!.content, ["effect fibers"])

        // the executions: the two approved weather calls once each, the search once, the denied call never
        assert.deepStrictEqual(yield* toolCalls(proc.url), { "search/succeeded": 1, "weather/succeeded": 2 })

        // the history: one Interrupted and one Resumed per approval, resumed in reverse order; the answer is the
        // model's second reply
        const events = yield* finishedHistory(proc.url, threadId)
        assert.deepStrictEqual(perKey(events, "Interrupted"), [1, 1, 1], events.map((e) => e.event).join(", "))
        assert.deepStrictEqual(perKey(events, "Resumed"), [1, 1, 1])
        assert.deepStrictEqual(events.filter((e) => e.event === "Resumed").map((e) => e.data.key), [...keys].reverse())
        assert.strictEqual(events.filter((e) => e.event === "NodeFinished").length, 1)
        const answer = events.at(-1)!.data.state!.answer!
        assert.include(answer, "read 4 tool messages")
        assert.include(answer, "denied by a person: not this one")

        // answered interrupts: a further resume is a 409
        const late = yield* resume(proc.url, threadId, keys[0]!, { approved: true })
        assert.strictEqual(late.status, 409, JSON.stringify(late.body))
        console.log(
          `tool approval in reverse order over HTTP: ${
            ((performance.now() - began) / 1000).toFixed(1)
          } s; after the last approval GET showed ${trail.join(" -> ")}`
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "two approvals posted concurrently over HTTP are both taken",
    () =>
      Effect.gen(function*() {
        const { chats, proc, requests } = yield* startService
        const threadId = yield* startAgent(proc.url, "Weather in three cities, and fibers, please.")
        yield* waitForApprovals(proc, threadId)

        const [first, second] = yield* Effect.all([
          resume(proc.url, threadId, keys[0]!, { approved: true }),
          resume(proc.url, threadId, keys[1]!, { approved: true })
        ], { concurrency: "unbounded" })
        assert.deepStrictEqual(
          [first.status, second.status],
          [200, 200],
          `${JSON.stringify(first.body)} ${JSON.stringify(second.body)}`
        )
        yield* untilRun(proc, threadId, "the 3rd approval alone", waitingOn([keys[2]!]))
        yield* pollUntil(proc, toolCalls(proc.url), "both approved calls to run", (c) => c["weather/succeeded"] === 2)
        yield* resumeOk(proc.url, threadId, keys[2]!, { approved: true })
        yield* untilRun(proc, threadId, "the run to finish", (run) => run.status === "finished")

        assert.strictEqual(requests.length, 2)
        assert.strictEqual(chats.length, 2)
        const results = resultsOf(requests[1]!)
        assert.deepStrictEqual(results.map((r) => r.tool), ["weather", "weather", "weather", "search"])
        assert.deepStrictEqual(
          results.slice(0, 3).map((r) => (r.content as { city?: string }).city),
          [...cities],
          JSON.stringify(results)
        )
        assert.deepStrictEqual(yield* toolCalls(proc.url), { "search/succeeded": 1, "weather/succeeded": 3 })
        const events = yield* finishedHistory(proc.url, threadId)
        assert.deepStrictEqual(perKey(events, "Interrupted"), [1, 1, 1], events.map((e) => e.event).join(", "))
        assert.deepStrictEqual(perKey(events, "Resumed"), [1, 1, 1])
      }).pipe(Effect.scoped),
    60_000
  )
})
