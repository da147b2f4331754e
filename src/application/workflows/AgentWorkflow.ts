/**
 * An agent run as a one-node workflow, so agent runs get what workflow runs have: a
 * thread id, stored events, a status, and a resume after a restart (the agent starts
 * its turn over). The agent is named in the state and looked up when the node runs.
 */
import { Effect, Schema } from "effect"
import type { Agent } from "../../domain/Agent.js"
import { AgentRuntime } from "../AgentRuntime.js"
import * as ToolApproval from "../ToolApproval.js"
import * as Workflow from "../Workflow.js"

export const AgentState = Schema.Struct({
  agent: Schema.String,
  input: Schema.String,
  answer: Schema.String
})
export type AgentState = typeof AgentState.Type

export class UnknownAgent extends Schema.TaggedError<UnknownAgent>()("UnknownAgent", {
  agent: Schema.String,
  message: Schema.String
}) {}

export const initial = (agent: string, input: string): AgentState => ({ agent, input, answer: "" })

export const make = (agents: ReadonlyMap<string, Agent>) =>
  Effect.gen(function*() {
    const runtime = yield* AgentRuntime
    return yield* Workflow.make({
      name: "agent",
      state: AgentState,
      start: "agent",
      // calls an agent's `approval` names wait for a person
      interrupts: [ToolApproval.Approval],
      nodes: {
        agent: (state) => {
          const agent = agents.get(state.agent)
          return agent === undefined
            ? Effect.fail(new UnknownAgent({ agent: state.agent, message: `no agent named ${state.agent}` }))
            : Effect.map(runtime.answer(agent, state.input), (answer) => ({ answer }))
        }
      }
    })
  })
