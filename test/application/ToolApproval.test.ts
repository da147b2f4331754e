/**
 * Tool approval in a durable run, end to end in one process: the real `RunManager` over
 * @effect/cluster's workflow engine (`ClusterWorkflowEngine.layer` on `TestRunner.layer`),
 * Loom's engine over a store in memory, the `agent` run kind of `AgentWorkflow` (wired as
 * `Catalog.layerRuns` wires it), and a scripted model. The agent `sender` has two tools:
 * `send`, whose every call waits for a person (`approval: { send: "always" }`), and
 * `lookup`, which needs nobody and naps 200 ms. Turn 1 asks for three sends and a lookup
 * at once; turn 2 answers.
 *
 * Each call needing approval asks its own `tool-approval` interrupt
 * (`0/agent/tool-approval/<callId>`): the run waits on all three at once while the
 * lookup runs, each is answered on its own, in any order or all at once, and each
 * approved send runs once, a denied one never (the model reads the denial instead).
 * Outside a durable run nobody could approve, so such a call is refused, not run.
 *
 * What ran is counted outside the engine, with a timeline (ms since the file started)
 * that a failure prints: model turns, tool starts and ends, interruptions, resumes.
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import * as TestRunner from "@effect/cluster/TestRunner"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Either, FiberId, Layer, Schedule, Schema } from "effect"
import { AgentRuntime } from "../../src/application/AgentRuntime.js"
import * as Runs from "../../src/application/RunManager.js"
import { ShuttingDown } from "../../src/application/Shutdown.js"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import * as AgentWorkflow from "../../src/application/workflows/AgentWorkflow.js"
import type { Agent } from "../../src/domain/Agent.js"
import type { ChatRequest } from "../../src/domain/Chat.js"
import { CheckpointStore } from "../../src/domain/CheckpointStore.js"
import type { Reply } from "../../src/domain/LanguageModel.js"
import { LanguageModel } from "../../src/domain/LanguageModel.js"
import * as Tool from "../../src/domain/Tool.js"
import type { RunRecord, WorkflowEvent } from "../../src/domain/Workflow.js"
import { ThreadId } from "../../src/domain/Workflow.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"

/** What ran, counted outside the engine: work in an Activity counts once, however often the run replays. */
interface Probe {
  /** Executions of `send` begun, by recipient. */
  readonly sends: Map<string, number>
  /** Executions of `lookup` begun, and finished. */
  readonly lookups: { started: number; finished: number }
  /** Every request the model got, in order. */
  readonly requests: Array<ChatRequest>
  /** What happened, as `ms:what`. */
  readonly timeline: Array<string>
}

const t0 = Date.now()
const makeProbe = (): Probe => ({ sends: new Map(), lookups: { started: 0, finished: 0 }, requests: [], timeline: [] })
const mark = (probe: Probe, what: string) => probe.timeline.push(`${Date.now() - t0}:${what}`)

const tally = <K>(counts: Map<K, number>, key: K) => counts.set(key, (counts.get(key) ?? 0) + 1)

const agent: Agent = {
  name: "sender",
  model: "llama3.2",
  systemPrompt: "You send messages, after looking things up.",
  tools: ["send", "lookup"],
  approval: { send: "always", lookup: "never" }
}

/** Turn 1's calls, in order: the sends are `1.0` to `1.2`, the lookup `1.3`. */
const recipients = ["ann", "bob", "cy"] as const
const sendIds = ["1.0", "1.1", "1.2"] as const
const keyOf = (callId: string) => `0/agent/tool-approval/${callId}`
const keys = sendIds.map(keyOf)

const isTurn2 = (request: ChatRequest) => request.messages.some((m) => m.role === "tool")

/** Turn 1 asks for three sends and a lookup; turn 2 answers with the tool messages it read. */
const script = (probe: Probe) => (request: ChatRequest): Effect.Effect<Reply> =>
  Effect.sync(() => {
    probe.requests.push(request)
    mark(probe, `model-turn-${isTurn2(request) ? 2 : 1}`)
    if (!isTurn2(request)) {
      return {
        content: "",
        toolCalls: [
          ...recipients.map((to) => ({ name: "send", arguments: { to } })),
          { name: "lookup", arguments: { q: "weather" } }
        ]
      }
    }
    const read = request.messages.filter((m) => m.role === "tool").map((m) => `${m.toolName}=${m.content}`)
    return { content: `saw ${read.join(" | ")}` }
  })

/** The agent runtime over the scripted model, with `send` and `lookup` counting their executions. */
const agents = (probe: Probe) => {
  const send = Tool.make({
    name: "send",
    description: "sends a message",
    input: Schema.Struct({ to: Schema.String }),
    output: Schema.String,
    handler: ({ to }) => Effect.sync(() => (mark(probe, `send-${to}`), tally(probe.sends, to), `sent to ${to}`))
  })
  const lookup = Tool.make({
    name: "lookup",
    description: "looks something up",
    input: Schema.Struct({ q: Schema.String }),
    output: Schema.String,
    handler: ({ q }) =>
      Effect.sync(() => (mark(probe, "lookup-start"), probe.lookups.started++)).pipe(
        Effect.zipRight(Effect.sleep("200 millis")),
        Effect.onInterrupt((by) =>
          Effect.sync(() => mark(probe, `lookup-interrupted-by-${[...by].map(FiberId.threadName).join("+")}`))
        ),
        Effect.zipRight(Effect.sync(() => (mark(probe, "lookup-end"), probe.lookups.finished++, `found ${q}`)))
      )
  })
  return AgentRuntime.layer.pipe(
    Layer.provide(ToolExecutor.layerIo({})),
    Layer.provide([
      InMemoryToolRegistry.layer([send, lookup]),
      Timeouts.Timeouts.Default,
      LanguageModel.layerTest(script(probe))
    ])
  )
}

/** Loom's engine and agent runtime, over the cluster's workflow engine in this process. */
const layer = (probe: Probe) =>
  Layer.mergeAll(agents(probe), WorkflowEngine.layer.pipe(Layer.provideMerge(CheckpointStore.layerMemory))).pipe(
    Layer.provideMerge(ClusterWorkflowEngine.layer),
    Layer.provideMerge(TestRunner.layer)
  )

/** The real RunManager, with the `agent` run kind as the service wires it (`Catalog.layerRuns`). */
const manager = Effect.gen(function*() {
  const engine = yield* WorkflowEngine
  const graph = yield* AgentWorkflow.make(new Map([[agent.name, agent]])).pipe(Effect.orDie)
  return yield* Runs.make({
    workflows: [],
    agents: { kind: Runs.runKind(engine, graph, AgentWorkflow.initial), names: new Set([agent.name]) },
    maxRuns: 4
  }).pipe(Effect.provideService(ShuttingDown, yield* Deferred.make<void>()))
})

const eventsOf = (threadId: string) =>
  Effect.flatMap(CheckpointStore, (store) => store.events(ThreadId.make(threadId))).pipe(
    Effect.orDie,
    Effect.map((stored) => stored.map((e) => e.event))
  )

const showEvent = (event: WorkflowEvent) =>
  event._tag === "Interrupted" || event._tag === "Resumed"
    ? `${event._tag}(${event.key})`
    : event._tag === "WorkflowFailed"
    ? `WorkflowFailed(${event.error.message})`
    : event._tag

/** A record as `status[pending keys]`. */
const show = (run: RunRecord) => `${run.status}[${(run.waiting ?? []).map((w) => w.key).join(",")}]`

/**
 * Polls the run every 10 ms until `until` holds (up to 5 s), keeping each record it
 * sees in `seen`; dies with what it saw, the run's events and the probe's timeline.
 */
const pollUntil = (
  probe: Probe,
  runs: Runs.Service,
  threadId: string,
  what: string,
  until: (run: RunRecord) => boolean,
  seen: Array<string>
) =>
  runs.get(threadId).pipe(
    Effect.tap((run) =>
      Effect.sync(() => {
        if (seen[seen.length - 1] !== show(run)) seen.push(show(run))
      })
    ),
    Effect.filterOrFail(until, () => "not yet"),
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "timed out after 5 s" }),
    Effect.catchAll((why) =>
      Effect.flatMap(eventsOf(threadId), (events) =>
        Effect.dieMessage(
          `${what}: ${why}; get showed ${seen.join(" -> ")}; events ${events.map(showEvent).join(", ")}; ` +
            `sends ${JSON.stringify([...probe.sends])}, lookups ${JSON.stringify(probe.lookups)}; ` +
            `timeline ${probe.timeline.join(" ")}`
        ))
    )
  )

/** Waiting on exactly `pending` (keys), nothing else. */
const waitingOn = (pending: ReadonlyArray<string>) => (run: RunRecord) =>
  run.status === "waiting" && (run.waiting ?? []).map((w) => w.key).sort().join() === [...pending].sort().join()

/** How many events of `tag` each approval key has, in key order. */
const perKey = (events: ReadonlyArray<WorkflowEvent>, tag: "Interrupted" | "Resumed") =>
  keys.map((key) => events.filter((e) => e._tag === tag && e.key === key).length)

const approve = { approved: true }

/** The tool messages of each of the model's turn-2 requests, their content parsed. */
const turn2Messages = (probe: Probe) =>
  probe.requests.filter(isTurn2).map((request) =>
    request.messages.filter((m) => m.role === "tool").map((m) => ({
      tool: m.toolName,
      content: JSON.parse(m.content) as unknown
    }))
  )

const start = (runs: Runs.Service) =>
  runs.start({ kind: "agent", name: agent.name, input: "tell everyone the weather" })

describe("ToolApproval", () => {
  it.scopedLive(
    "three calls wait for approval at once; approved, denied and approved in reverse order while the fourth runs",
    () => {
      const probe = makeProbe()
      return Effect.gen(function*() {
        const runs = yield* manager
        const threadId = yield* start(runs)
        const seen: Array<string> = []
        const waiting = yield* pollUntil(probe, runs, threadId, "three approvals pending", waitingOn(keys), seen)
        assert.deepStrictEqual(
          waiting.waiting?.map((w) => ({ name: w.name, node: w.node, step: w.step, payload: w.payload })),
          sendIds.map((callId, i) => ({
            name: "tool-approval",
            node: "agent",
            step: 0,
            payload: { agent: "sender", tool: "send", callId, arguments: { to: recipients[i] } }
          })),
          "one pending interrupt per send, with the call it asks about"
        )
        assert.strictEqual(probe.sends.size, 0, "no send ran before its approval")
        assert.strictEqual(probe.lookups.started, 1, "the lookup runs while the sends wait")
        // answered in reverse call order, each once `get` shows the run waiting on the ones left
        const answers = [
          [keys[2]!, approve],
          [keys[1]!, { approved: false, reason: "not this one" }],
          [keys[0]!, approve]
        ] as const
        for (const [i, [key, value]] of answers.entries()) {
          const after = yield* runs.resume(threadId, { interrupt: key, value })
          mark(probe, `resumed-${key}-${show(after)}`)
          const left = keys.slice(0, keys.length - 1 - i)
          if (left.length > 0) {
            yield* pollUntil(probe, runs, threadId, `waiting on ${left.join(", ")}`, waitingOn(left), seen)
          }
        }
        const finished = yield* pollUntil(probe, runs, threadId, "finished", (run) => run.status === "finished", seen)
        assert.strictEqual(finished.status, "finished")
        assert.deepStrictEqual([...probe.sends].sort(), [["ann", 1], ["cy", 1]], "each approved send ran once")
        assert.deepStrictEqual(probe.lookups, { started: 1, finished: 1 }, "the lookup ran once")
        assert.deepStrictEqual(
          turn2Messages(probe),
          [[
            { tool: "send", content: "sent to ann" },
            { tool: "send", content: { error: "ToolFailed", message: "denied by a person: not this one" } },
            { tool: "send", content: "sent to cy" },
            { tool: "lookup", content: "found weather" }
          ]],
          "turn 2 is asked once, with the four results in call order"
        )
        const events = yield* eventsOf(threadId)
        assert.deepStrictEqual(perKey(events, "Interrupted"), [1, 1, 1], "one Interrupted per send")
        assert.deepStrictEqual(perKey(events, "Resumed"), [1, 1, 1], "one Resumed per send")
      }).pipe(Effect.provide(layer(probe)))
    },
    { timeout: 20_000 }
  )

  it.scopedLive("concurrent approvals never lose or duplicate a call", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      const runs = yield* manager
      const threadId = yield* start(runs)
      const seen: Array<string> = []
      yield* pollUntil(probe, runs, threadId, "three approvals pending", waitingOn(keys), seen)
      const outcomes = yield* Effect.all(
        keys.map((key) =>
          Effect.either(runs.resume(threadId, { interrupt: key, value: approve })).pipe(
            Effect.map((result) => Either.isRight(result) ? "taken" : result.left._tag),
            Effect.tap((outcome) => Effect.sync(() => mark(probe, `resume-${key}-${outcome}`)))
          )
        ),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(outcomes, ["taken", "taken", "taken"], "each of three resumes at once is taken")
      // a key answered is not answered again (409 over HTTP), while the run goes on and once it is over
      const again = yield* Effect.either(runs.resume(threadId, { interrupt: keys[0]!, value: approve }))
      assert.isTrue(Either.isLeft(again) && again.left._tag === "NotWaiting", "the same key twice: NotWaiting")
      yield* pollUntil(probe, runs, threadId, "finished", (run) => run.status === "finished", seen)
      const late = yield* Effect.either(runs.resume(threadId, { interrupt: keys[1]!, value: approve }))
      assert.isTrue(Either.isLeft(late) && late.left._tag === "NotWaiting", "a finished run: NotWaiting")
      assert.deepStrictEqual([...probe.sends].sort(), [["ann", 1], ["bob", 1], ["cy", 1]], "each send ran once")
      assert.deepStrictEqual(probe.lookups, { started: 1, finished: 1 })
      const events = yield* eventsOf(threadId)
      assert.deepStrictEqual(perKey(events, "Interrupted"), [1, 1, 1])
      assert.deepStrictEqual(perKey(events, "Resumed"), [1, 1, 1], "one Resumed per key")
      assert.deepStrictEqual(turn2Messages(probe), [[
        { tool: "send", content: "sent to ann" },
        { tool: "send", content: "sent to bob" },
        { tool: "send", content: "sent to cy" },
        { tool: "lookup", content: "found weather" }
      ]])
    }).pipe(Effect.provide(layer(probe)))
  }, { timeout: 20_000 })

  it.live("outside a durable run a call needing approval is refused, not run", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      const runtime = yield* AgentRuntime
      const answer = yield* runtime.answer(agent, "tell everyone the weather")
      assert.deepStrictEqual(probe.sends, new Map(), "no send ran")
      assert.deepStrictEqual(probe.lookups, { started: 1, finished: 1 }, "the lookup ran")
      const turns = turn2Messages(probe)
      assert.strictEqual(turns.length, 1)
      const messages = turns[0]!
      assert.deepStrictEqual(messages.map((m) => m.tool), ["send", "send", "send", "lookup"], "in call order")
      for (const message of messages.slice(0, 3)) {
        const content = message.content as { readonly error: string; readonly message: string }
        assert.strictEqual(content.error, "ToolFailed")
        assert.include(content.message, "needs a person's approval")
      }
      assert.deepStrictEqual(messages[3], { tool: "lookup", content: "found weather" })
      assert.include(answer, "approval", "the model read the refusals")
    }).pipe(Effect.provide(agents(probe)))
  })
})
