/** Tasks that misbehave on purpose, to test the CPU pool against real threads. */
import { Schema } from "effect"
import { CpuTaskFailed } from "../../../src/domain/Cpu.js"

/** Burns CPU for `ms` milliseconds, synchronously. */
export class Spin extends Schema.TaggedRequest<Spin>()("Spin", {
  failure: CpuTaskFailed,
  success: Schema.Struct({ threadId: Schema.Int, iterations: Schema.Number }),
  payload: { ms: Schema.NonNegativeInt }
}) {}

/** Kills its thread. */
export class Crash extends Schema.TaggedRequest<Crash>()("Crash", {
  failure: CpuTaskFailed,
  success: Schema.Void,
  payload: {}
}) {}

/** Throws inside the handler. */
export class Throw extends Schema.TaggedRequest<Throw>()("Throw", {
  failure: CpuTaskFailed,
  success: Schema.Void,
  payload: { message: Schema.String }
}) {}

/** Answers with something that is not its declared result. */
export class Lie extends Schema.TaggedRequest<Lie>()("Lie", {
  failure: CpuTaskFailed,
  success: Schema.Number,
  payload: {}
}) {}

export const TestTask = Schema.Union(Spin, Crash, Throw, Lie)
export type TestTask = typeof TestTask.Type
