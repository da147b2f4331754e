/**
 * An agent: a model, a system prompt, the tools it may call and the limits of a run;
 * and the events a run emits, in order, ending in `FinalAnswer` or `Failed`.
 */
import type { Duration } from "effect"
import { Schema } from "effect"
import { CircuitOpen, Timeout, ToolNotFound } from "./Errors.js"
import { LlmBadResponse, LlmTimeout, LlmUnavailable, ModelNotFound } from "./LlmErrors.js"
import { ToolResult } from "./ToolResult.js"
import { Usage } from "./Usage.js"

export interface Agent {
  readonly name: string
  readonly model: string
  readonly systemPrompt: string
  /** Names of registered tools the model is offered. */
  readonly tools: ReadonlyArray<string>
  /** Model turns before the run gives up with `MaxStepsExceeded` (default 8). */
  readonly maxSteps?: number
  /** Tool calls of one turn running at once (default 4). */
  readonly toolConcurrency?: number
  /** Deadline of the whole run. */
  readonly deadline?: Duration.DurationInput
  /** Stream the model's text as `LlmToken` events (default false). */
  readonly stream?: boolean
  /**
   * Which calls wait for a person's approval, by tool name (default: none). A denied call
   * goes back to the model as a tool error naming the denial.
   */
  readonly approval?: { readonly [tool: string]: ToolApproval }
}

/** Whether a call of a tool waits for approval: never, always, or when its input says so. */
export type ToolApproval = "never" | "always" | ((input: unknown) => boolean)

/** The model kept asking for tools past the step limit. */
export class MaxStepsExceeded extends Schema.TaggedError<MaxStepsExceeded>()("MaxStepsExceeded", {
  agent: Schema.String,
  maxSteps: Schema.Int
}) {}

/** The run died of a defect (a bug in a tool or the runtime). */
export class AgentCrashed extends Schema.TaggedError<AgentCrashed>()("AgentCrashed", {
  agent: Schema.String,
  message: Schema.String
}) {}

/** Every way a run can end without an answer. */
export const AgentError = Schema.Union(
  MaxStepsExceeded,
  AgentCrashed,
  Timeout,
  ToolNotFound,
  LlmUnavailable,
  LlmTimeout,
  LlmBadResponse,
  ModelNotFound,
  CircuitOpen
)
export type AgentError = typeof AgentError.Type

export class StepStarted extends Schema.TaggedClass<StepStarted>()("StepStarted", {
  step: Schema.Int
}) {}

export class LlmToken extends Schema.TaggedClass<LlmToken>()("LlmToken", {
  step: Schema.Int,
  content: Schema.String
}) {}

export class RequestedCall extends Schema.Class<RequestedCall>("RequestedCall")({
  id: Schema.String,
  tool: Schema.String,
  arguments: Schema.Unknown
}) {}

export class ToolCallsRequested extends Schema.TaggedClass<ToolCallsRequested>()("ToolCallsRequested", {
  step: Schema.Int,
  calls: Schema.Array(RequestedCall)
}) {}

export class ToolResultEvent extends Schema.TaggedClass<ToolResultEvent>()("ToolResult", {
  step: Schema.Int,
  result: ToolResult
}) {}

/** A turn is over; `usage` is its model call's (optional only so events stored before it decode). */
export class StepFinished extends Schema.TaggedClass<StepFinished>()("StepFinished", {
  step: Schema.Int,
  usage: Schema.optional(Usage)
}) {}

/** The answer, with what the whole run spent. */
export class FinalAnswer extends Schema.TaggedClass<FinalAnswer>()("FinalAnswer", {
  step: Schema.Int,
  content: Schema.String,
  usage: Schema.optional(Usage)
}) {}

/** Why there is no answer, with what the run spent before it ended. */
export class Failed extends Schema.TaggedClass<Failed>()("Failed", {
  error: AgentError,
  usage: Schema.optional(Usage)
}) {}

export const AgentEvent = Schema.Union(
  StepStarted,
  LlmToken,
  ToolCallsRequested,
  ToolResultEvent,
  StepFinished,
  FinalAnswer,
  Failed
)
export type AgentEvent = typeof AgentEvent.Type
