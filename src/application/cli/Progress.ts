/**
 * The CLI's output: one line per step, tool call and result as a run goes, with the
 * seconds since it began, so a long run shows where it is; a step's tokens as it ends; the
 * result as it is (an answer, generated code and its review, not a JSON dump); and a last
 * line with what the whole run spent (tokens, backend time, cost when priced).
 */
import { Clock, Console, Effect } from "effect"
import type { AgentEvent } from "../../domain/Agent.js"
import type { ToolDefinition } from "../../domain/Tool.js"
import * as Usage from "../../domain/Usage.js"
import type { WorkflowEvent } from "../../domain/Workflow.js"

const elapsed = (since: number) =>
  Effect.map(Clock.currentTimeMillis, (now) => `[${((now - since) / 1000).toFixed(1).padStart(5)}s]`)

const line = (since: number, text: string) => Effect.flatMap(elapsed(since), (at) => Console.log(`${at} ${text}`))

/** A step's tokens, after its line: `  [120+45 tok]`. */
const tokens = (usage: Usage.Usage | undefined) =>
  usage === undefined ? "" : `  [${usage.prompt}+${usage.completion} tok]`

/** The run's spend, as its last line. */
export const usageLine = (since: number, usage: Usage.Usage | undefined) =>
  usage === undefined ? Effect.void : line(since, `usage  ${Usage.describe(usage)}`)

const short = (value: unknown, max = 100) => {
  const text = typeof value === "string" ? value : JSON.stringify(value)
  return text.length > max ? `${text.slice(0, max)}…` : text
}

/** The parts of a final state shown as they are, not as JSON: an agent's answer, the generated code and its review. */
const plainParts = ["answer", "code", "review"] as const

/** A finished run: its plain parts (code as it would be saved), and the names of the rest (`--json` has all). */
const finished = (since: number, state: unknown) => {
  if (typeof state !== "object" || state === null) return line(since, `finished  ${short(state, 400)}`)
  const fields = state as Record<string, unknown>
  const plain = plainParts.filter((name) => typeof fields[name] === "string" && fields[name] !== "")
  const rest = Object.keys(fields).filter((name) => !(plain as ReadonlyArray<string>).includes(name))
  return Effect.zipRight(
    line(since, `finished  ${rest.length > 0 ? `(also in the state: ${rest.join(", ")}; --json prints it all)` : ""}`),
    plain.length === 0
      ? Effect.void
      : Console.log(plain.map((name) => `\n${name}:\n${String(fields[name]).trimEnd()}`).join("\n") + "\n")
  )
}

export const workflowEvent = (since: number) => (event: WorkflowEvent) => {
  switch (event._tag) {
    case "NodeStarted":
      return line(since, `step ${event.step}  ${event.node} …`)
    case "NodeFinished":
      return line(since, `step ${event.step}  ${event.node} done${tokens(event.usage)}  ${short(event.update)}`)
    case "CheckpointSaved":
      return line(since, `checkpoint ${event.step}${event.next.length > 0 ? `, next: ${event.next.join(", ")}` : ""}`)
    case "Interrupted":
      return line(since, `step ${event.step}  ${event.node} waits: ${event.name} ${short(event.payload)}`)
    case "Resumed":
      return line(since, `resumed ${event.key} with ${short(event.value)}`)
    case "WorkflowFinished":
      return Effect.zipRight(finished(since, event.state), usageLine(since, event.usage))
    case "WorkflowFailed":
      return Effect.zipRight(
        line(since, `FAILED  ${event.error._tag}: ${event.error.message}`),
        usageLine(since, event.usage)
      )
    default:
      return Effect.void
  }
}

export const agentEvent = (since: number) => (event: AgentEvent) => {
  switch (event._tag) {
    case "StepStarted":
      return line(since, `step ${event.step}`)
    case "ToolCallsRequested":
      return Effect.forEach(
        event.calls,
        (call) => line(since, `  calls ${call.tool} ${short(call.arguments)}`),
        { discard: true }
      )
    case "ToolResult":
      return line(
        since,
        `  ${event.result.tool} ${event.result.status} ${short(event.result.output ?? event.result.error?.message)}`
      )
    case "StepFinished":
      return event.usage === undefined ? Effect.void : line(since, `step ${event.step} done${tokens(event.usage)}`)
    case "FinalAnswer":
      return Effect.zipRight(
        Effect.zipRight(line(since, "answer:"), Console.log(event.content)),
        usageLine(since, event.usage)
      )
    case "Failed":
      return Effect.zipRight(
        line(since, `FAILED  ${event.error._tag}: ${event.error.message}`),
        usageLine(since, event.usage)
      )
    default:
      return Effect.void
  }
}

export const toolTable = (tools: ReadonlyArray<ToolDefinition>) =>
  Effect.forEach(
    tools,
    (tool) => Console.log(`${tool.name.padEnd(36)} ${tool.kind.padEnd(8)} ${tool.description}`),
    { discard: true }
  )
