/**
 * What a Loom service offers out of the box: its local tools, the `assistant` agent, the
 * `coding` workflow and the `review` workflow (people in the loop), as the HTTP API runs them (`RunManager`) and as the CLI runs
 * them in its own process (`workflow`, `agent`).
 */
import { Data, Effect, Layer } from "effect"
import type { Agent } from "../domain/Agent.js"
import * as DemoTools from "./demo/DemoTools.js"
import { LoomConfig } from "./LoomConfig.js"
import * as Runs from "./RunManager.js"
import * as CpuTools from "./tools/CpuTools.js"
import { WorkflowEngine } from "./WorkflowEngine.js"
import * as AgentWorkflow from "./workflows/AgentWorkflow.js"
import * as CodingWorkflow from "./workflows/coding/CodingWorkflow.js"
import * as RunTests from "./workflows/coding/RunTests.js"
import * as ReviewWorkflow from "./workflows/review/ReviewWorkflow.js"

export const localTools = [...DemoTools.all, ...CpuTools.all, RunTests.tool]

/** The agent `agent` runs may name. */
export const assistant = (model: string, approval: ReadonlyArray<string> = []): Agent => ({
  name: "assistant",
  model,
  systemPrompt: "You are Loom's assistant. Use the tools when they help, then answer briefly.",
  tools: localTools.map((tool) => tool.name),
  maxSteps: 6,
  ...(approval.length > 0 ? { approval: Object.fromEntries(approval.map((tool) => [tool, "always" as const])) } : {})
})

/** A name the catalog does not have. */
export class NotInCatalog extends Data.TaggedError("NotInCatalog")<{ readonly message: string }> {}

/** The workflows the catalog has, by name. */
export const workflows = ["coding", "review"] as const

/** The workflow named `name` (there are `coding` and `review`), checked before a run starts. */
export const workflow = (name: string): Effect.Effect<string, NotInCatalog> =>
  workflows.some((known) => known === name)
    ? Effect.succeed(name)
    : Effect.fail(new NotInCatalog({ message: `unknown workflow "${name}" (there are: ${workflows.join(", ")})` }))

/** The agent named `name` (there is `assistant`). */
export const agent = (name: string) =>
  Effect.gen(function*() {
    const config = yield* LoomConfig
    const found = assistant(config.agentModel, config.approval)
    if (name !== found.name) {
      return yield* new NotInCatalog({ message: `unknown agent "${name}" (there is: ${found.name})` })
    }
    return found
  })

/** The service's runs: the coding workflow and the assistant agent, as durable executions on the engine provided. */
export const layerRuns = Layer.scoped(
  Runs.RunManager,
  Effect.gen(function*() {
    const config = yield* LoomConfig
    const engine = yield* WorkflowEngine
    const helper = assistant(config.agentModel, config.approval)
    const coding = yield* CodingWorkflow.make({ model: config.codingModel })
    const review = yield* ReviewWorkflow.make({ model: config.agentModel })
    const agents = yield* AgentWorkflow.make(new Map([[helper.name, helper]]))
    return yield* Runs.make({
      workflows: [
        Runs.runKind(engine, coding, (_, input) => CodingWorkflow.initial(input)),
        Runs.runKind(engine, review, (_, input) => ReviewWorkflow.initial(input))
      ],
      agents: { kind: Runs.runKind(engine, agents, AgentWorkflow.initial), names: new Set([helper.name]) },
      maxRuns: config.maxRuns
    })
  }).pipe(Effect.orDie)
)
