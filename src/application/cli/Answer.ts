/**
 * `loom run workflow` when the run waits for a person: shows what the interrupt asks
 * (on stderr, so `--json` output stays parseable) and reads the answer, one line of
 * JSON, from the terminal. A line that is not JSON, or a value the interrupt refused
 * (`problem`), is asked again. Stdin that ends leaves the run waiting (the CLI stops; a
 * service on the data directory, `loom runs resume`, can answer it later).
 */
import * as Terminal from "@effect/platform/Terminal"
import { Console, Effect, Option } from "effect"
import type { Interrupted } from "../../domain/Workflow.js"
import { UsageError } from "./UsageError.js"

const parse = (line: string): Option.Option<unknown> => {
  try {
    return Option.some(JSON.parse(line))
  } catch {
    return Option.none()
  }
}

export const fromTerminal = (
  event: Interrupted,
  problem: Option.Option<string>
): Effect.Effect<unknown, UsageError, Terminal.Terminal> =>
  Effect.gen(function*() {
    const terminal = yield* Terminal.Terminal
    if (Option.isSome(problem)) yield* Console.error(`  not accepted: ${problem.value}`)
    else {
      yield* Console.error(
        `\nstep ${event.step}  ${event.node} asks (${event.name}, ${event.key}):\n  ${JSON.stringify(event.payload)}`
      )
    }
    for (;;) {
      yield* Console.error("  your answer (JSON): ")
      const line = yield* terminal.readLine.pipe(
        Effect.mapError(() =>
          new UsageError({
            message: `no answer: the run waits on ${event.key}; answer it with \`loom runs resume\` on a service`
          })
        )
      )
      const value = parse(line)
      if (Option.isSome(value)) return value.value
      yield* Console.error("  that is not JSON")
    }
  })
