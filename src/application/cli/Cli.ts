/**
 * The `loom` command line, on @effect/cli: `serve` (also what a bare `loom` does),
 * `tools`, `run workflow|agent <name> <input>` in this process with live progress (and
 * questions answered at the terminal when a run waits for a person), and
 * `runs list|start|show|follow|resume|history|fork|cancel` against a running service over HTTP. Every command
 * has `--help`; bad usage prints the command's help and exits 2 (`exitCode`).
 *
 * Options that configure the service (`--port`, `--data-dir`, `--simulator`, ...) are
 * the environment variables of the same meaning, laid over the environment, so the
 * layers read them through `Config` exactly as they read the environment.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as Terminal from "@effect/platform/Terminal"
import { Cause, ConfigError, ConfigProvider, Console, Effect, Exit, Option, Schema, Stream } from "effect"
import * as Crypto from "node:crypto"
import { AgentEvent } from "../../domain/Agent.js"
import type { ToolDefinition } from "../../domain/Tool.js"
import type { Interrupted } from "../../domain/Workflow.js"
import { WorkflowEvent } from "../../domain/Workflow.js"
import { Multitask } from "../RunRequests.js"
import * as TerminalAnswer from "./Answer.js"
import * as Progress from "./Progress.js"
import * as RunsClient from "./RunsClient.js"
import { UsageError } from "./UsageError.js"

export { UsageError }

/** Gives the value for an interrupt a run in this process waits on (`problem`: why the last one was refused). */
export type Answer = (
  event: Interrupted,
  problem: Option.Option<string>
) => Effect.Effect<unknown, UsageError, Terminal.Terminal>

/** What the CLI runs in this process; main.ts supplies it, wired to the real layers. */
export interface Local<E, R> {
  /** The HTTP service, or Loom's tools over MCP on stdio, until interrupted. */
  readonly serve: (options: { readonly mcpStdio: boolean }) => Effect.Effect<void, E, R>
  readonly tools: Effect.Effect<ReadonlyArray<ToolDefinition>, E, R>
  /**
   * A workflow run under `threadId`, a durable execution in the data directory (a service on it resumes a run cut
   * off). When the run waits for a person, `answer` gives the value for the interrupt (asked again while it does not
   * fit).
   */
  readonly workflow: (
    name: string,
    input: string,
    threadId: string,
    answer: (
      event: Interrupted,
      problem: Option.Option<string>
    ) => Effect.Effect<unknown, UsageError, Terminal.Terminal>
  ) => Stream.Stream<WorkflowEvent, E | UsageError, R | Terminal.Terminal>
  readonly agent: (name: string, input: string) => Stream.Stream<AgentEvent, E | UsageError, R>
}

/** Runs `effect` with the given settings laid over the environment (unset ones are left to it). */
const withSettings =
  (settings: ReadonlyArray<readonly [string, Option.Option<string>]>) => <A, E, R>(effect: Effect.Effect<A, E, R>) => {
    const set = settings.flatMap(([name, value]) => Option.isSome(value) ? [[name, value.value] as const] : [])
    if (set.length === 0) return effect
    const provider = ConfigProvider.fromMap(new Map(set)).pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))
    return Effect.withConfigProvider(effect, provider)
  }

const json = Options.boolean("json").pipe(Options.withDescription("print JSON (one value or one event per line)"))

const dataDir = Options.directory("data-dir").pipe(
  Options.withDescription("where the SQLite database lives (LOOM_DATA_DIR, default ./data)"),
  Options.optional
)

const simulator = Options.boolean("simulator").pipe(
  Options.withDescription("answer with the built-in Ollama simulator, offline (LOOM_LLM=simulator)")
)

const llm = (on: boolean) => Option.some("simulator").pipe(Option.filter(() => on))

const serveOptions = {
  host: Options.text("host").pipe(Options.withDescription("address to listen on (LOOM_HOST)"), Options.optional),
  port: Options.integer("port").pipe(
    Options.withDescription("port to listen on, 0 for any free one (LOOM_PORT, default 8080)"),
    Options.optional
  ),
  dataDir,
  simulator,
  mcpStdio: Options.boolean("mcp-stdio").pipe(
    Options.withDescription("serve Loom's tools over MCP on stdin/stdout instead of HTTP")
  )
}

const url = Options.text("url").pipe(
  Options.withDescription("the service's base URL"),
  Options.withDefault("http://127.0.0.1:8080")
)

const id = Args.text({ name: "id" }).pipe(Args.withDescription("the run's thread id"))

const encodeWorkflowEvent = Schema.encodeSync(WorkflowEvent)
const encodeAgentEvent = Schema.encodeSync(AgentEvent)

/** The command tree, its handlers running `local` for what happens in this process. */
export const make = <E, R>(local: Local<E, R>) => {
  const serve = (options: {
    readonly host: Option.Option<string>
    readonly port: Option.Option<number>
    readonly dataDir: Option.Option<string>
    readonly simulator: boolean
    readonly mcpStdio: boolean
  }) =>
    local.serve({ mcpStdio: options.mcpStdio }).pipe(withSettings([
      ["LOOM_HOST", options.host],
      ["LOOM_PORT", Option.map(options.port, String)],
      ["LOOM_DATA_DIR", options.dataDir],
      ["LOOM_LLM", llm(options.simulator)]
    ]))

  const inProcess = (options: { readonly dataDir: Option.Option<string>; readonly simulator: boolean }) =>
    withSettings([["LOOM_DATA_DIR", options.dataDir], ["LOOM_LLM", llm(options.simulator)]])

  const tools = Command.make("tools", { json, dataDir, simulator }, (options) =>
    local.tools.pipe(
      Effect.flatMap((all) =>
        options.json
          ? Console.log(
            JSON.stringify(all.map((tool) => ({ name: tool.name, kind: tool.kind, description: tool.description })))
          )
          : Progress.toolTable(all)
      ),
      inProcess(options)
    )).pipe(Command.withDescription("List the tools, local and from MCP servers"))

  const runArgs = {
    name: Args.text({ name: "name" }),
    input: Args.text({ name: "input" }).pipe(Args.withDescription("the task or question")),
    json,
    dataDir,
    simulator
  }

  /**
   * A run in this process: its events printed as progress lines, or as JSON lines. Ctrl-C
   * stops it and says what became of it (`interrupted`, given the run's thread id).
   */
  const runCommand = <A>(
    name: string,
    events: (name: string, input: string, threadId: string) => Stream.Stream<A, E | UsageError, R | Terminal.Terminal>,
    encode: (event: A) => unknown,
    progress: (since: number) => (event: A) => Effect.Effect<void>,
    interrupted: (threadId: string) => string
  ) =>
    Command.make(
      name,
      runArgs,
      (options) =>
        Effect.gen(function*() {
          const since = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          const threadId = yield* Effect.sync(() => Crypto.randomUUID())
          yield* events(options.name, options.input, threadId).pipe(
            Stream.runForEach((event) =>
              options.json ? Console.log(JSON.stringify(encode(event))) : progress(since)(event)
            ),
            inProcess(options),
            Effect.onInterrupt(() => Console.error(`\nloom: ${interrupted(threadId)}`))
          )
        })
    )

  const workflow = runCommand(
    "workflow",
    (name, input, threadId) => local.workflow(name, input, threadId, TerminalAnswer.fromTerminal),
    encodeWorkflowEvent,
    Progress.workflowEvent,
    (threadId) =>
      `interrupted; run ${threadId} is kept at its last checkpoint in the data directory. ` +
      `\`loom serve\` on that directory resumes it, and \`loom runs follow ${threadId}\` shows it to the end.`
  ).pipe(Command.withDescription("Run a workflow (`coding`, `review`) here, printing each step as it happens"))
  const agent = runCommand(
    "agent",
    (name, input) => local.agent(name, input),
    encodeAgentEvent,
    Progress.agentEvent,
    () =>
      "interrupted; an agent run here keeps no checkpoint. To resume one, start it on the service " +
      "(POST /v1/runs with kind agent), whose runs are checkpointed."
  ).pipe(Command.withDescription("Run an agent (`assistant`) here, printing each tool call as it happens"))

  const run = Command.make("run").pipe(
    Command.withDescription("Run a workflow or an agent in this process"),
    Command.withSubcommands([workflow, agent])
  )

  const runs = Command.make("runs").pipe(
    Command.withDescription("The runs of a running service, over its HTTP API (--url)"),
    Command.withSubcommands([
      Command.make("list", { url, json }, (o) => RunsClient.list(o.url, o.json)).pipe(
        Command.withDescription("List the service's runs")
      ),
      Command.make(
        "start",
        {
          url,
          json,
          kind: Args.text({ name: "kind" }).pipe(
            Args.withSchema(Schema.Literal("workflow", "agent")),
            Args.withDescription("workflow or agent")
          ),
          name: Args.text({ name: "name" }),
          input: Options.text("input").pipe(Options.withDescription("the run's input text")),
          thread: Options.text("thread").pipe(
            Options.withDescription("the thread to run on (default: a new one)"),
            Options.optional
          ),
          multitask: Options.text("multitask").pipe(
            Options.withSchema(Multitask),
            Options.withDescription(
              "when the thread has a run: reject (the default), enqueue behind it, interrupt it, or roll it back"
            ),
            Options.optional
          )
        },
        (o) => RunsClient.start(o.url, o, o.json)
      ).pipe(Command.withDescription("Start a run on the service; prints its id")),
      Command.make("show", { url, json, id }, (o) => RunsClient.show(o.url, o.id, o.json)).pipe(
        Command.withDescription("Show one run")
      ),
      Command.make("follow", { url, json, id }, (o) => RunsClient.follow(o.url, o.id, o.json)).pipe(
        Command.withDescription("Print a run's events, its history first, until it ends")
      ),
      Command.make(
        "resume",
        {
          url,
          json,
          id,
          value: Options.text("value").pipe(Options.withDescription("the answer, as JSON")),
          interrupt: Options.text("interrupt").pipe(
            Options.withDescription("which interrupt (its key), when the run waits on several"),
            Options.optional
          )
        },
        (o) => RunsClient.resume(o.url, o.id, o.value, o.interrupt, o.json)
      ).pipe(Command.withDescription("Answer a run that waits for a person")),
      Command.make("history", { url, json, id }, (o) => RunsClient.history(o.url, o.id, o.json)).pipe(
        Command.withDescription("List a run's checkpoints, step by step")
      ),
      Command.make(
        "fork",
        {
          url,
          json,
          id,
          step: Options.integer("step").pipe(Options.withDescription("the checkpoint to start from")),
          state: Options.text("state").pipe(
            Options.withDescription("fields to change in its state, as JSON"),
            Options.optional
          )
        },
        (o) => RunsClient.fork(o.url, o.id, o.step, o.state, o.json)
      ).pipe(Command.withDescription("Start a new run from one of a run's checkpoints")),
      Command.make("cancel", { url, json, id }, (o) => RunsClient.cancel(o.url, o.id, o.json)).pipe(
        Command.withDescription("Stop a run for good")
      )
    ])
  )

  return Command.make("loom", serveOptions, serve).pipe(
    Command.withDescription("Loom: agents and workflows on Effect. With no command, `loom` serves like `loom serve`."),
    Command.withSubcommands([
      Command.make("serve", serveOptions, serve).pipe(
        Command.withDescription("Run the HTTP service (or, with --mcp-stdio, an MCP server on stdio)")
      ),
      tools,
      run,
      runs
    ])
  )
}

/** The subcommands under each command, to find the deepest one a bad command line named. */
const subcommands: Readonly<Record<string, ReadonlyArray<string>>> = {
  loom: ["serve", "tools", "run", "runs"],
  run: ["workflow", "agent"],
  runs: ["list", "start", "show", "follow", "resume", "history", "fork", "cancel"]
}

/** `loom runs shwo x` -> ["runs"]: the command path a command line names, as far as it is valid. */
const commandPath = (args: ReadonlyArray<string>) => {
  const path: Array<string> = []
  let at = "loom"
  for (const arg of args) {
    if (arg.startsWith("-")) continue
    if (!subcommands[at]?.includes(arg)) break
    path.push(arg)
    at = arg
  }
  return path
}

const isUsage = (error: unknown) => ValidationError.isValidationError(error) || error instanceof UsageError

const fieldOf = (value: unknown, name: string): unknown =>
  typeof value === "object" && value !== null && name in value ? (value as Record<string, unknown>)[name] : undefined

/**
 * A bad LOOM_MCP_CONFIG file, named by its variable: what is wrong with the file, in one
 * line (its message repeats the path, and a read error its `Error:` prefix).
 */
const mcpConfig = (error: unknown) => {
  const file = String(fieldOf(error, "file"))
  const message = String(fieldOf(error, "message")).replace(`${file}: `, "").replace(/^Error: /, "")
  return `LOOM_MCP_CONFIG=${file}: ${message}`
}

/** One line saying what went wrong: the variable or resource it concerns first, when there is one. */
const describe = (error: unknown) =>
  ConfigError.isConfigError(error)
    ? `invalid configuration ${String(error)}`
    : fieldOf(error, "_tag") === "McpConfigError"
    ? mcpConfig(error)
    : error instanceof Error && error.message !== ""
    ? error.message
    : JSON.stringify(error)

/** `loom help [command...]` is `loom [command...] --help`. */
const helpAsOption = (argv: ReadonlyArray<string>) =>
  argv[2] === "help" ? [...argv.slice(0, 2), ...argv.slice(3), "--help"] : argv

/**
 * The CLI over `argv` (as in `process.argv`). Bad usage prints what was wrong and the
 * help of the command it named; any other failure prints its message on stderr, once.
 */
export const run = <E, R>(local: Local<E, R>, options: { readonly version: string }) => {
  const cli = Command.run(make(local), { name: "loom", version: options.version })
  return (command: ReadonlyArray<string>) => {
    const argv = helpAsOption(command)
    return cli(argv).pipe(
      Effect.tapErrorCause((cause) =>
        Option.match(Cause.failureOption(cause), {
          onNone: () => Cause.isInterruptedOnly(cause) ? Effect.void : Console.error(Cause.pretty(cause)),
          onSome: (error) =>
            Effect.zipRight(
              // @effect/cli has printed what was wrong with the command line already
              ValidationError.isValidationError(error) ? Effect.void : Console.error(`loom: ${describe(error)}`),
              isUsage(error)
                ? cli([...argv.slice(0, 2), ...commandPath(argv.slice(2)), "--help"]).pipe(Effect.ignore)
                : Effect.void
            )
        })
      )
    )
  }
}

/** The process's exit code: 0 on success or interruption (a signal), 2 for bad usage, 1 otherwise. */
export const exitCode = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return 0
  return Option.match(Cause.failureOption(exit.cause), { onNone: () => 1, onSome: (e) => isUsage(e) ? 2 : 1 })
}
