import { Data } from "effect"

/** The command line asked for something that does not exist (a workflow or agent name, say), or left out an answer. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}
