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

const payloadOf = (agent: Agent, call: ToolCall) => ({
  agent: agent.name,
  tool: call.tool,
  callId: call.id,
  arguments: call.input
})

const denial = (call: ToolCall, answer: { readonly reason?: string | undefined }) =>
  refused(call, `denied by a person${answer.reason === undefined ? "" : `: ${answer.reason}`}`)

/**
 * A turn's calls when some need approval. Every such call asks at once without waiting;
 * then the calls that can run do (those needing none, those approved), in parallel under
 * `concurrency`, and denied ones are refused; only then, with all of that finished (so
 * no running call is cut off), does the run wait for the answers still missing. Each
 * answer replays the turn: what ran comes back from the engine, and the newly approved
 * calls run. Results are in call order.
 */
export const runTurn = (
  agent: Agent,
  calls: ReadonlyArray<ToolCall>,
  execute: (call: ToolCall) => Effect.Effect<ToolResult>,
  concurrency: number
): Effect.Effect<ReadonlyArray<ToolResult>> =>
  Effect.gen(function*() {
    const answers = yield* Effect.forEach(
      calls,
      (call) =>
        needed(agent, call)
          ? Effect.either(Approval.poll(payloadOf(agent, call), call.id))
          : Effect.succeed(undefined),
      { concurrency: "unbounded" }
    )
    const results = yield* Effect.forEach(calls, (call, i): Effect.Effect<ToolResult | undefined> => {
      const answer = answers[i]
      if (answer === undefined) return execute(call)
      if (answer._tag === "Left") {
        return Effect.succeed(refused(call, `the call needs a person's approval: ${answer.left.message}`))
      }
      return Option.match(answer.right, {
        onNone: () => Effect.succeed(undefined),
        onSome: (given) => given.approved ? execute(call) : Effect.succeed(denial(call, given))
      })
    }, { concurrency })
    const waiting = calls.findIndex((_, i) => results[i] === undefined)
    if (waiting === -1) return results as ReadonlyArray<ToolResult>
    // the run waits here; answered meanwhile, the turn is gone through again (what ran is not run again)
    yield* Effect.ignore(Approval.ask(payloadOf(agent, calls[waiting]!), calls[waiting]!.id))
    return yield* runTurn(agent, calls, execute, concurrency)
  })
