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
 */
import { Chunk, Effect, Option, Stream } from "effect"
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
import type { ChatResponse, LlmToolCall, ToolSpec as ChatToolSpec } from "../domain/Chat.js"
import { ChatMessage, ChatRequest, toolSpec } from "../domain/Chat.js"
import { ToolNotFound } from "../domain/Errors.js"
import { LanguageModel } from "../domain/LanguageModel.js"
import { LlmBadResponse } from "../domain/LlmErrors.js"
import type { ToolDefinition } from "../domain/Tool.js"
import { toolNameOrUnknown } from "../domain/Tool.js"
import { ToolCall, ToolCallId } from "../domain/ToolCall.js"
import { ToolRegistry } from "../domain/ToolRegistry.js"
import { ToolResult } from "../domain/ToolResult.js"
import * as Timeouts from "../infrastructure/resilience/Timeouts.js"
import * as RunEvents from "./RunEvents.js"
import { ToolExecutor } from "./ToolExecutor.js"

/** What the model reads back for one tool call: its output as JSON, or the error that stopped it. */
export const toolMessage = (result: ToolResult): ChatMessage =>
  new ChatMessage({
    role: "tool",
    toolName: result.tool,
    content: result.succeeded
      ? JSON.stringify(result.output ?? null)
      : JSON.stringify({ error: result.error?._tag ?? result.status, message: result.error?.message ?? "" })
  })

/** JSON Schema generation is costly; a tool's spec never changes, so it is made once. */
const specs = new WeakMap<ToolDefinition, ChatToolSpec>()
const specOf = (tool: ToolDefinition): ChatToolSpec => {
  let spec = specs.get(tool)
  if (spec === undefined) {
    spec = toolSpec(tool)
    specs.set(tool, spec)
  }
  return spec
}

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

export const make = Effect.gen(function*() {
  const llm = yield* LanguageModel
  const registry = yield* ToolRegistry
  const executor = yield* ToolExecutor

  /** One model turn; streamed turns emit their text as it arrives. */
  const chat = (agent: Agent, step: number, request: ChatRequest, emit: (event: AgentEvent) => Effect.Effect<void>) =>
    agent.stream
      ? llm.chatStream(request).pipe(
        Stream.runFoldEffect(Option.none<ChatResponse>(), (done, chunk) =>
          chunk._tag === "Delta"
            ? Effect.as(emit(new LlmToken({ step, content: chunk.content })), done)
            : Effect.succeed(Option.some(chunk.response))),
        Effect.flatMap(Option.match({
          onNone: () =>
            Effect.fail(
              new LlmBadResponse({ host: "", message: "the chat stream ended without a final message", raw: "" })
            ),
          onSome: Effect.succeed
        }))
      )
      : llm.chat(request)

  const loop = (agent: Agent, input: string, emit: (event: AgentEvent) => Effect.Effect<void>) =>
    Effect.gen(function*() {
      const tools = yield* Effect.forEach(agent.tools, (name) => registry.get(name))
      const specs = tools.map(specOf)
      const maxSteps = agent.maxSteps ?? 8
      const messages: Array<ChatMessage> = [
        new ChatMessage({ role: "system", content: agent.systemPrompt }),
        new ChatMessage({ role: "user", content: input })
      ]
      for (let step = 1; step <= maxSteps; step++) {
        yield* emit(new StepStarted({ step }))
        const response = yield* chat(agent, step, new ChatRequest({ model: agent.model, messages, tools: specs }), emit)
        const requested = response.message.toolCalls
        if (requested.length === 0) {
          yield* emit(new StepFinished({ step }))
          return yield* emit(new FinalAnswer({ step, content: response.message.content }))
        }
        const calls = requested.map((call, i) => callOf(step, i, call))
        yield* emit(
          new ToolCallsRequested({
            step,
            calls: calls.map((call, i) =>
              new RequestedCall({ id: call.id, tool: requested[i]!.name, arguments: call.input })
            )
          })
        )
        // Only the agent's own tools run; any other name comes back to the model as unknown.
        const offered = calls.filter((call) => agent.tools.includes(call.tool))
        const ran = yield* executor.executeParallel(offered, { concurrency: agent.toolConcurrency ?? 4 })
        const byId = new Map(ran.map((result) => [result.callId, result]))
        const results = calls.map((call, i) => byId.get(call.id) ?? notOffered(call, requested[i]!.name))
        yield* Effect.forEach(results, (result) => emit(new ToolResultEvent({ step, result })), { discard: true })
        messages.push(response.message, ...results.map(toolMessage))
        yield* emit(new StepFinished({ step }))
      }
      return yield* new MaxStepsExceeded({ agent: agent.name, maxSteps })
    })

  /** Runs `agent` on `input`; the stream ends after `FinalAnswer` or `Failed`. */
  const run = (agent: Agent, input: string): Stream.Stream<AgentEvent> =>
    RunEvents.stream(
      (emit) => {
        const bounded: Effect.Effect<void, AgentError> = agent.deadline === undefined
          ? loop(agent, input, emit)
          : Timeouts.within(`agent:${agent.name}`, agent.deadline)(loop(agent, input, emit))
        return bounded.pipe(
          Effect.withSpan("AgentRuntime.run", { attributes: { "loom.agent": agent.name }, captureStackTrace: false })
        )
      },
      {
        onFailure: (error, emit) => emit(new Failed({ error })),
        crashed: (message) => new AgentCrashed({ agent: agent.name, message }),
        isTerminal: (event) => event._tag === "FinalAnswer" || event._tag === "Failed"
      }
    )

  /** Runs `agent` to its answer, failing with the typed error of a failed run. No event stream is built. */
  const answer = (agent: Agent, input: string): Effect.Effect<string, AgentError> => {
    let content = ""
    const keep = (event: AgentEvent) =>
      Effect.sync(() => {
        if (event._tag === "FinalAnswer") content = event.content
      })
    const bounded = agent.deadline === undefined
      ? loop(agent, input, keep)
      : Timeouts.within(`agent:${agent.name}`, agent.deadline)(loop(agent, input, keep))
    return bounded.pipe(
      Effect.map(() => content),
      Effect.withSpan("AgentRuntime.answer", { attributes: { "loom.agent": agent.name }, captureStackTrace: false })
    )
  }

  /** Every event of a run, collected (for tests and batch callers). */
  const collect = (agent: Agent, input: string) =>
    Effect.map(Stream.runCollect(run(agent, input)), Chunk.toReadonlyArray)

  return { run, answer, collect } as const
})

/** The agent runtime. Needs a `LanguageModel`, a `ToolRegistry` and a `ToolExecutor`. */
export class AgentRuntime extends Effect.Service<AgentRuntime>()("loom/AgentRuntime", { effect: make }) {}
