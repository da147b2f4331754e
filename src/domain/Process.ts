/**
 * Isolated work in a child process: what to run, what came back, and the port that
 * runs it. The `process` kind of tool is built on this.
 */
import type { Effect } from "effect"
import { Context, Schema } from "effect"
import type { QueueFull, Timeout } from "./Errors.js"

export class ProcessSpec extends Schema.Class<ProcessSpec>("ProcessSpec")({
  command: Schema.NonEmptyString,
  args: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  cwd: Schema.optional(Schema.String),
  /** Extra variables; the parent's environment reaches the child only through the runner's allow-list. */
  env: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { default: () => ({}) }),
  stdin: Schema.optional(Schema.String),
  /** Overrides the runner's default deadline. */
  timeout: Schema.optional(Schema.DurationFromMillis),
  /**
   * CPU time the process, and each process it starts, may use (whole seconds, rounded up;
   * the kernel's RLIMIT_CPU ends it with SIGXCPU): a busy loop stops burning a core long
   * before the wall deadline. Overrides the runner's default.
   */
  cpuTime: Schema.optional(Schema.DurationFromMillis),
  /** Overrides the runner's cap on captured bytes per stream. */
  maxOutputBytes: Schema.optional(Schema.Int.pipe(Schema.positive()))
}) {}

export class ProcessResult extends Schema.Class<ProcessResult>("ProcessResult")({
  pid: Schema.Int,
  /** The exit code, or -1 when the process ended by a signal. */
  exitCode: Schema.Int,
  signal: Schema.optional(Schema.String),
  stdout: Schema.String,
  stderr: Schema.String,
  /** Whether either stream went over the cap and was cut. */
  truncated: Schema.Boolean,
  durationMs: Schema.NonNegative
}) {}

/** The process could not be started (no such command, bad working directory, ...). */
export class ProcessFailed extends Schema.TaggedError<ProcessFailed>()("ProcessFailed", {
  command: Schema.String,
  message: Schema.String
}) {}

export interface Service {
  /** Runs `spec` to completion; on timeout or interruption the whole process group is killed. */
  readonly run: (spec: ProcessSpec) => Effect.Effect<ProcessResult, ProcessFailed | Timeout | QueueFull>
  /** Child processes running now. */
  readonly running: Effect.Effect<number>
}

export class ProcessRunner extends Context.Tag("loom/ProcessRunner")<ProcessRunner, Service>() {}
