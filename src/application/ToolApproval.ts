/**
 * Tool calls that wait for a person: an agent's `approval` names the tools whose calls
 * need it. In a durable run each such call of a turn asks its own interrupt, keyed by its
 * call id, so approvals come in any order and none is lost or counted twice; the turn's
 * other calls run meanwhile (each a unit of the run: a replay after an approval gets
 * them back, never runs them again). An approved call runs; a denied one goes back to the
 * model as a tool error naming the denial. Outside a durable run nobody could approve,
 * so such a call is refused the same way.
 */
import { Effect, Option, Schema } from "effect"
import type { Agent } from "../domain/Agent.js"
import { ToolFailed } from "../domain/Errors.js"
import type { ToolCall } from "../domain/ToolCall.js"
import { ToolResult } from "../domain/ToolResult.js"
import * as Interrupt from "./Interrupt.js"

/** The interrupt a call needing approval asks: the call, and the answer. */
export const Approval = Interrupt.make("tool-approval", {
  payload: Schema.Struct({
    agent: Schema.String,
    tool: Schema.String,
    callId: Schema.String,
    arguments: Schema.Unknown
  }),
  resume: Schema.Struct({ approved: Schema.Boolean, reason: Schema.optional(Schema.String) })
})

/** Whether `call` waits for approval under the agent's policy. */
export const needed = (agent: Agent, call: ToolCall): boolean => {
  const rule = agent.approval?.[call.tool]
  return rule === "always" || (typeof rule === "function" && rule(call.input))
}

const refused = (call: ToolCall, why: string): ToolResult =>
  new ToolResult({
    callId: call.id,
    tool: call.tool,
    status: "rejected",
    error: new ToolFailed({ tool: call.tool, message: why, retryable: false }),
    attempts: 0,
    durationMs: 0
  })

/** `run` for `call` once a person approves it; a denial (or no way to ask) is the call's result instead. */
export const approved = (
  agent: Agent,
  call: ToolCall,
  run: Effect.Effect<ToolResult>
): Effect.Effect<ToolResult> =>
  Approval.ask({ agent: agent.name, tool: call.tool, callId: call.id, arguments: call.input }, call.id).pipe(
    Effect.matchEffect({
      onFailure: (error) => Effect.succeed(refused(call, `the call needs a person's approval: ${error.message}`)),
      onSuccess: (answer) =>
        answer.approved ? run : Effect.succeed(
          refused(
            call,
            `denied by a person${
              Option.match(Option.fromNullable(answer.reason), { onNone: () => "", onSome: (r) => `: ${r}` })
            }`
          )
        )
    })
  )
