/**
 * `code.run_tests`: a `process` tool that runs generated code against generated tests
 * (node:test) in a child process, with a 20 s deadline, 10 s of CPU per process (a
 * generated `while (true) {}` is stopped by the kernel, not left to spin a core), the
 * runner's output cap and kill-on-interrupt.
 */
import { Duration, Schema } from "effect"
import { ProcessSpec } from "../../../domain/Process.js"
import * as Tool from "../../../domain/Tool.js"

const harness = new URL("./run-tests.mjs", import.meta.url).pathname

export const TestReport = Schema.Struct({
  passed: Schema.Boolean,
  /** The end of the test run's output. */
  output: Schema.String
})
export type TestReport = typeof TestReport.Type

export const tool = Tool.process({
  name: "code.run_tests",
  description: "Runs JavaScript code (an ES module) against node:test tests that import it from ./solution.mjs",
  input: Schema.Struct({ code: Schema.String, tests: Schema.String }),
  output: TestReport,
  timeout: "20 seconds",
  // generated code may spin: 10 s of CPU per process, well inside the wall deadline
  command: () => new ProcessSpec({ command: process.execPath, args: [harness], cpuTime: Duration.seconds(10) })
})
