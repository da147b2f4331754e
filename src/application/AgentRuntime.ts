/**
 * The tool-calling agent loop. Each turn: chat with the tools' JSON Schemas -> run
 * every tool call of the turn through `ToolExecutor.executeParallel` -> append the
 * results as tool messages -> again, until the model answers without tool calls or
 * the step limit is reached. A call to an unknown tool, or with arguments that do not
 * decode, goes back to the model as a tool error: the run continues.
 *
 * A run is a `Stream` of events ending in `FinalAnswer` or `Failed`; the stream itself
 * does not fail. Interrupting its consumer interrupts the run: the LLM request is
 * aborted and every running tool is interrupted.
 *
 * Each `StepFinished` carries its turn's token usage and the last event the run's total,
 * costed with the price table (`LOOM_PRICES`). The model is `metered`, so a run inside a
 * workflow node also adds to that node's usage.
 *
 * `AgentRuntime.layer` needs a `LanguageModel`, the `ToolRegistry` the agents' tools
 * come from and a `ToolExecutor` to run them; it reads its prices from `LOOM_PRICES`.
 */
import { Chunk, Context, Effect, Layer, Option, Ref, Schema, Stream } from "effect"
import type { Agent, AgentError, AgentEvent } from "../domain/Agent.js"
import {
  AgentCrashed,
  Failed,
  FinalAnswer,
  LlmToken,
  MaxStepsExceeded,
  RequestedCall,
  StepFinished,
  StepStarted,
  ToolCallsRequested,
  ToolResultEvent
} from "../domain/Agent.js"
import type { LlmToolCall, ToolSpec as ChatToolSpec } from "../domain/Chat.js"
import { ChatMessage, ChatRequest, ChatResponse, toolSpec } from "../domain/Chat.js"
import { CircuitOpen, ToolNotFound } from "../domain/Errors.js"
import type { LlmError } from "../domain/LanguageModel.js"
import { LanguageModel } from "../domain/LanguageModel.js"
import { LlmBadResponse, LlmTimeout, LlmUnavailable, ModelNotFound } from "../domain/LlmErrors.js"
import type { PriceTable } from "../domain/PriceTable.js"
import { Prices } from "../domain/PriceTable.js"
import type { ToolDefinition } from "../domain/Tool.js"
import { toolNameOrUnknown } from "../domain/Tool.js"
import { ToolCall, ToolCallId } from "../domain/ToolCall.js"
import { ToolRegistry } from "../domain/ToolRegistry.js"
import { ToolResult } from "../domain/ToolResult.js"
import * as Usage from "../domain/Usage.js"
import * as UsageMeter from "../domain/UsageMeter.js"
import * as Memo from "../infrastructure/resilience/Memo.js"
import * as Timeouts from "../infrastructure/resilience/Timeouts.js"
import * as Durability from "./Durability.js"
import * as RunEvents from "./RunEvents.js"
import * as ToolApproval from "./ToolApproval.js"
import { ToolExecutor } from "./ToolExecutor.js"

/** What the model reads back for one tool call: its output as JSON, or the error that stopped it. */
export const toolMessage = (result: ToolResult): ChatMessage =>
  new ChatMessage({
    role: "tool",
    toolName: result.tool,
    content: result.succeeded
      ? JSON.stringify(result.output ?? null)
      : JSON.stringify({ error: result.error?._tag ?? result.status, message: result.error?.message ?? "" })
  }, true)

/** JSON Schema generation is costly; a tool's spec never changes, so it is made once. */
const specOf: (tool: ToolDefinition) => ChatToolSpec = Memo.perObject(toolSpec)

/** A model may name a tool in a way that is not a valid tool name; the executor then reports it unknown. */
const callOf = (step: number, index: number, call: LlmToolCall): ToolCall =>
  new ToolCall({
    id: ToolCallId.make(`${step}.${index}`),
    tool: toolNameOrUnknown(call.name),
    input: call.arguments
  }, true)

const notOffered = (call: ToolCall, name: string): ToolResult =>
  new ToolResult({
    callId: call.id,
    tool: call.tool,
    status: "rejected",
    error: new ToolNotFound({ tool: name }),
    attempts: 0,
    durationMs: 0
  })

/** The runtime's contract. */
export interface Service {
  /**
   * Runs `agent` on `input`: its events, ending after `FinalAnswer` or `Failed`; the
   * stream never fails. Interrupting its consumer interrupts the model call and the tools.
   */
  readonly run: (agent: Agent, input: string) => Stream.Stream<AgentEvent>
  /** Runs `agent` to its answer, failing with the typed error of a failed run. No event stream is built. */
  readonly answer: (agent: Agent, input: string) => Effect.Effect<string, AgentError>
  /** Every event of a run, collected (for tests and batch callers). */
  readonly collect: (agent: Agent, input: string) => Effect.Effect<ReadonlyArray<AgentEvent>>
}

type Emit = (event: AgentEvent) => Effect.Effect<void>

/** Values the runtime builds from values already checked: constructing them skips validation. */
const trusted = true

/** What a run talks to, and what its tokens cost. */
interface Ports {
  readonly llm: LanguageModel["Type"]
  readonly registry: ToolRegistry["Type"]
  readonly executor: ToolExecutor["Type"]
  readonly prices: PriceTable
}

/** One run of an agent: what it talks to, the specs of its tools, where its events go, what it has spent. */
interface Conversation {
  readonly ports: Ports
  readonly agent: Agent
  readonly specs: ReadonlyArray<ChatToolSpec>
  /** Where events go; `undefined` when nobody consumes them (`answer`), so none is built. */
  readonly emit: Emit | undefined
  readonly spent: Ref.Ref<Usage.Usage>
}

/** Emits the event `make` builds, building it only if someone listens. */
const tell = (emit: Emit | undefined, make: () => AgentEvent): Effect.Effect<void> =>
  emit === undefined ? Effect.void : emit(make())

const noFinalMessage = () =>
  new LlmBadResponse({ host: "", message: "the chat stream ended without a final message", raw: "" })

/** One model turn; a streamed turn emits its text as it arrives. */
const chat = (
  { agent, emit, ports }: Conversation,
  step: number,
  request: ChatRequest
): Effect.Effect<ChatResponse, LlmError> =>
  agent.stream
    ? ports.llm.chatStream(request).pipe(
      Stream.runFoldEffect(Option.none<ChatResponse>(), (done, chunk) =>
        chunk._tag === "Delta"
          ? Effect.as(tell(emit, () => new LlmToken({ step, content: chunk.content }, trusted)), done)
          : Effect.succeed(Option.some(chunk.response))),
      Effect.flatMap(Option.match({ onNone: () => Effect.fail(noFinalMessage()), onSome: Effect.succeed }))
    )
    : ports.llm.chat(request)

/** A model call's errors, as a durable run stores them. */
const LlmErrorSchema = Schema.Union(LlmUnavailable, LlmTimeout, LlmBadResponse, ModelNotFound, CircuitOpen)

/**
 * One model turn, as a unit of the run's durability: under a durable run a replay gets
 * a turn the model already answered back from storage (its streamed tokens are not
 * streamed again). Units are named by agent and turn; a node that runs one agent twice
 * tells the runs apart with `Durability.within`.
 */
const ask = (
  conversation: Conversation,
  step: number,
  request: ChatRequest
): Effect.Effect<ChatResponse, LlmError> =>
  Effect.flatMap(Durability.Durability, (durability) =>
    durability.durable
      ? durability.run({
        name: `${conversation.agent.name}/turn-${step}/model`,
        success: ChatResponse,
        error: LlmErrorSchema,
        execute: chat(conversation, step, request)
      })
      : chat(conversation, step, request))

/**
 * A turn's calls through the executor. Under a durable run each call is a unit of its
 * own, named by its call id, so a replay runs only the calls that had not finished; a
 * call the agent's `approval` names first waits for a person (`ToolApproval`).
 * Otherwise they go to `executeParallel` as one batch (the cheaper path).
 */
const runCalls = (
  { agent, ports }: Conversation,
  step: number,
  calls: ReadonlyArray<ToolCall>
): Effect.Effect<ReadonlyArray<ToolResult>> =>
  Effect.flatMap(Durability.Durability, (durability) => {
    const concurrency = agent.toolConcurrency ?? 4
    const asks = agent.approval !== undefined && calls.some((call) => ToolApproval.needed(agent, call))
    // the run's span covers the batch: the executor adds none of its own
    if (!durability.durable && !asks) return ports.executor.executeParallel(calls, { concurrency, span: false })
    const execute = (call: ToolCall) =>
      durability.durable
        ? durability.run({
          name: `${agent.name}/turn-${step}/tool/${call.id}`,
          success: ToolResult,
          error: Schema.Never,
          execute: ports.executor.execute(call)
        })
        : ports.executor.execute(call)
    return asks
      ? ToolApproval.runTurn(agent, calls, execute, concurrency)
      : Effect.forEach(calls, execute, { concurrency })
  })

/** Runs a turn's tool calls: the agent's own tools through the executor; any other name comes back as unknown. */
const callTools = (conversation: Conversation, step: number, requested: ReadonlyArray<LlmToolCall>) =>
  Effect.gen(function*() {
    const { agent, emit } = conversation
    const calls = requested.map((call, i) => callOf(step, i, call))
    yield* tell(emit, () =>
      new ToolCallsRequested({
        step,
        calls: calls.map((call, i) =>
          new RequestedCall({ id: call.id, tool: requested[i]!.name, arguments: call.input }, trusted)
        )
      }, trusted))
    const offered = calls.filter((call) => agent.tools.includes(call.tool))
    const ran = yield* runCalls(conversation, step, offered)
    const results = offered.length === calls.length ?
      ran :
      calls.map((call, i) => ran.find((result) => result.callId === call.id) ?? notOffered(call, requested[i]!.name))
    if (emit !== undefined) {
      yield* Effect.forEach(results, (result) => emit(new ToolResultEvent({ step, result }, trusted)), {
        discard: true
      })
    }
    return results
  })

/** Turn `step` and the ones after it, over the conversation so far: the answer, or why there is none. */
const turn = (
  conversation: Conversation,
  step: number,
  messages: ReadonlyArray<ChatMessage>
): Effect.Effect<string, AgentError> =>
  Effect.gen(function*() {
    const { agent, emit, specs } = conversation
    const maxSteps = agent.maxSteps ?? 8
    if (step > maxSteps) return yield* new MaxStepsExceeded({ agent: agent.name, maxSteps })
    yield* tell(emit, () => new StepStarted({ step }, trusted))
    const response = yield* ask(
      conversation,
      step,
      new ChatRequest({ model: agent.model, messages, tools: specs }, trusted)
    )
    const usage = Usage.ofCall(response.model, response.usage, conversation.ports.prices)
    const total = yield* Ref.updateAndGet(conversation.spent, (spent) => Usage.add(spent, usage))
    const requested = response.message.toolCalls
    if (requested.length === 0) {
      yield* tell(emit, () => new StepFinished({ step, usage }, trusted))
      yield* tell(emit, () => new FinalAnswer({ step, content: response.message.content, usage: total }, trusted))
      return response.message.content
    }
    const results = yield* callTools(conversation, step, requested)
    yield* tell(emit, () => new StepFinished({ step, usage }, trusted))
    return yield* turn(conversation, step + 1, [...messages, response.message, ...results.map(toolMessage)])
  })

/** A whole run of `agent` on `input`, within the agent's deadline, adding its usage to `spent`: its answer. */
const converse = (
  ports: Ports,
  agent: Agent,
  input: string,
  emit: Emit | undefined,
  spent: Ref.Ref<Usage.Usage>
): Effect.Effect<string, AgentError> => {
  const conversation = Effect.gen(function*() {
    const tools = yield* Effect.forEach(agent.tools, (name) => ports.registry.get(name))
    return yield* turn({ ports, agent, specs: tools.map(specOf), emit, spent }, 1, [
      new ChatMessage({ role: "system", content: agent.systemPrompt }, trusted),
      new ChatMessage({ role: "user", content: input })
    ])
  })
  return agent.deadline === undefined
    ? conversation
    : Timeouts.within(`agent:${agent.name}`, agent.deadline)(conversation)
}

/** A run's span options, made once per agent. */
const spanOptions = Memo.perObject((agent: Agent) => ({
  attributes: { "loom.agent": agent.name },
  captureStackTrace: false
}))

export const make: Effect.Effect<Service, never, LanguageModel | ToolRegistry | ToolExecutor | Prices> = Effect.map(
  Effect.all({ llm: LanguageModel, registry: ToolRegistry, executor: ToolExecutor, prices: Prices }),
  (services) => {
    const ports: Ports = { ...services, llm: UsageMeter.metered(services.llm) }
    const run: Service["run"] = (agent, input) =>
      Stream.unwrap(Effect.map(Ref.make(Usage.zero), (spent) =>
        RunEvents.stream(
          (emit) =>
            converse(ports, agent, input, emit, spent).pipe(
              Effect.asVoid,
              Effect.withSpan("AgentRuntime.run", spanOptions(agent))
            ),
          {
            onFailure: (error, emit) => Effect.flatMap(Ref.get(spent), (usage) => emit(new Failed({ error, usage }))),
            crashed: (message) => new AgentCrashed({ agent: agent.name, message }),
            isTerminal: (event) => event._tag === "FinalAnswer" || event._tag === "Failed"
          }
        )))
    return {
      run,
      answer: (agent, input) =>
        Effect.flatMap(Ref.make(Usage.zero), (spent) => converse(ports, agent, input, undefined, spent)).pipe(
          Effect.withSpan("AgentRuntime.answer", spanOptions(agent))
        ),
      collect: (agent, input) => Effect.map(Stream.runCollect(run(agent, input)), Chunk.toReadonlyArray)
    }
  }
)

/** The agent runtime; its layers say what it needs. */
export class AgentRuntime extends Context.Tag("loom/AgentRuntime")<AgentRuntime, Service>() {
  /**
   * Needs the model, the registry the agents' tools are looked up in and the executor that
   * runs them. Prices come from `LOOM_PRICES`; a bad value is a defect naming the variable
   * (this layer's callers take no config error). For a table of your own: `make` with `Prices.layer`.
   */
  static readonly layer: Layer.Layer<
    AgentRuntime,
    never,
    LanguageModel | ToolRegistry | ToolExecutor
  > = Layer.effect(AgentRuntime, make).pipe(Layer.provide(Layer.orDie(Prices.layerConfig)))
}
