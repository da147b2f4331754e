/**
 * The coding workflow: intent -> planner -> test writer -> coder -> runner -> reviewer.
 * The runner executes the code against the tests in a child process (the
 * `code.run_tests` tool); failing tests send the work back to the coder, with the test
 * output, up to `maxAttempts` times. Each step is checkpointed, so a long run survives
 * a restart.
 */
import { Effect, Schema } from "effect"
import { ChatMessage, ChatRequest } from "../../../domain/Chat.js"
import { LanguageModel } from "../../../domain/LanguageModel.js"
import { toolCall } from "../../../domain/ToolCall.js"
import * as UsageMeter from "../../../domain/UsageMeter.js"
import { ToolExecutor } from "../../ToolExecutor.js"
import * as Workflow from "../../Workflow.js"
import * as RunTests from "./RunTests.js"

export const CodingState = Schema.Struct({
  task: Schema.String,
  intent: Schema.String,
  plan: Schema.String,
  tests: Schema.String,
  code: Schema.String,
  report: Schema.NullOr(RunTests.TestReport),
  attempts: Schema.NonNegativeInt,
  review: Schema.String,
  /** One line per finished node, in order. */
  log: Schema.Array(Schema.String)
})
export type CodingState = typeof CodingState.Type

/** A fresh state for `task`. */
export const initial = (task: string): CodingState => ({
  task,
  intent: "",
  plan: "",
  tests: "",
  code: "",
  report: null,
  attempts: 0,
  review: "",
  log: []
})

/** The role prompts; each starts with a name a scripted model can recognise. */
export const prompts = {
  intent: "You are the intent analyst. State in one or two sentences what the user wants built.",
  planner: "You are the planner. Write a short numbered plan for implementing the task as one ES module.",
  testWriter:
    "You are the test writer. Write node:test tests (import { test } from \"node:test\"; import assert from \"node:assert/strict\") that import the solution from \"./solution.mjs\". Answer with one ```js code block.",
  coder:
    "You are the coder. Write the ES module solution.mjs that makes the tests pass. Answer with one ```js code block.",
  reviewer:
    "You are the reviewer. Review the code and the test report. Answer APPROVED or REJECTED on the first line, then your reasons."
} as const

/** The first fenced code block of a reply, or the whole reply. */
export const codeOf = (reply: string): string => /```(?:[a-zA-Z]*)\n([\s\S]*?)```/.exec(reply)?.[1] ?? reply

export interface Options {
  readonly model: string
  /** Coder -> runner rounds before the reviewer sees failing tests (default 3). */
  readonly maxAttempts?: number
}

/** Builds the graph; needs a `LanguageModel` and a `ToolExecutor` whose registry has `RunTests.tool`. */
export const make = (options: Options) =>
  Effect.gen(function*() {
    // metered: each node's chats count towards its run's usage
    const llm = UsageMeter.metered(yield* LanguageModel)
    const executor = yield* ToolExecutor
    const maxAttempts = options.maxAttempts ?? 3

    const ask = (system: string, user: string) =>
      Effect.map(
        llm.chat(
          new ChatRequest({
            model: options.model,
            messages: [
              new ChatMessage({ role: "system", content: system }),
              new ChatMessage({ role: "user", content: user })
            ]
          })
        ),
        (response) => response.message.content
      )

    const failing = (state: CodingState) =>
      state.report !== null && !state.report.passed
        ? `\n\nYour previous code:\n\`\`\`js\n${state.code}\`\`\`\nThe tests are failing:\n${state.report.output}`
        : ""

    return yield* Workflow.make({
      name: "coding",
      state: CodingState,
      start: "intent",
      nodes: {
        intent: (s) => Effect.map(ask(prompts.intent, s.task), (intent) => ({ intent, log: ["intent"] })),
        planner: (s) =>
          Effect.map(
            ask(prompts.planner, `Task: ${s.task}\nIntent: ${s.intent}`),
            (plan) => ({ plan, log: ["planner"] })
          ),
        test_writer: (s) =>
          Effect.map(
            ask(prompts.testWriter, `Task: ${s.task}\nPlan:\n${s.plan}`),
            (reply) => ({ tests: codeOf(reply), log: ["test_writer"] })
          ),
        coder: (s) =>
          Effect.map(
            ask(prompts.coder, `Task: ${s.task}\nPlan:\n${s.plan}\nTests:\n\`\`\`js\n${s.tests}\`\`\`${failing(s)}`),
            (reply) => ({ code: codeOf(reply), attempts: s.attempts + 1, log: [`coder#${s.attempts + 1}`] })
          ),
        runner: (s) =>
          Effect.map(
            executor.execute(toolCall(`run-${s.attempts}`, RunTests.tool.name, { code: s.code, tests: s.tests })),
            (result) => ({
              report: result.succeeded
                ? result.output as RunTests.TestReport
                : { passed: false, output: `the test run did not complete: ${result.error?.message ?? result.status}` },
              log: [`runner#${s.attempts}`]
            })
          ),
        reviewer: (s) =>
          Effect.map(
            ask(
              prompts.reviewer,
              `Task: ${s.task}\nCode:\n\`\`\`js\n${s.code}\`\`\`\nTests ${s.report?.passed ? "PASSED" : "FAILED"}:\n${
                s.report?.output ?? ""
              }`
            ),
            (review) => ({ review, log: ["reviewer"] })
          )
      },
      edges: {
        intent: "planner",
        planner: "test_writer",
        test_writer: "coder",
        coder: "runner",
        runner: (s) => (s.report?.passed || s.attempts >= maxAttempts ? "reviewer" : "coder"),
        reviewer: Workflow.END
      },
      reducers: { log: Workflow.append },
      maxSteps: 6 + 2 * maxAttempts
    })
  })
