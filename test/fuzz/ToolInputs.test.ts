/**
 * Boundary 2, tool arguments against their schemas (library level): each local tool
 * (the demo's io tools, the cpu tools on a real worker thread) called through the
 * ToolExecutor with inputs derived from its schema, the same mutated, arbitrary JSON,
 * odd numbers, huge strings and nesting up to the depth the HTTP API lets through. Every
 * call ends in a ToolResult: succeeded, or rejected with InvalidToolInput naming the
 * field, or failed with the tool's own ToolFailed; never a defect (which the executor
 * would report as "tool crashed").
 */
import { assert, layer } from "@effect/vitest"
import { Arbitrary, Effect, Fiber, Layer, Schema, TestClock } from "effect"
import * as fc from "fast-check"
import * as DemoTools from "../../src/application/demo/DemoTools.js"
import { maxDepth } from "../../src/application/http/JsonBody.js"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import * as CpuTools from "../../src/application/tools/CpuTools.js"
import type { ToolDefinition } from "../../src/domain/Tool.js"
import { toolCall } from "../../src/domain/ToolCall.js"
import { ToolResult } from "../../src/domain/ToolResult.js"
import * as NodeCpuRunner from "../../src/infrastructure/cpu/NodeCpuRunner.js"
import * as NodeProcessRunner from "../../src/infrastructure/process/NodeProcessRunner.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"
import * as Tally from "../support/Tally.js"

const tally = Tally.make("tool-inputs")

const tools: ReadonlyArray<ToolDefinition> = [...DemoTools.all, ...CpuTools.all]

// No breaker: every case should reach the tool, not an open circuit left by the last few.
const Executor = ToolExecutor.layer({ breaker: false }).pipe(
  Layer.provide(InMemoryToolRegistry.layer(tools)),
  Layer.provide(NodeCpuRunner.layer({ size: 1 })),
  Layer.provide(NodeProcessRunner.layer()),
  Layer.provide(Timeouts.Timeouts.Default)
)

interface Case {
  readonly tool: string
  readonly input: unknown
  /** Drawn from the tool's own schema, so it must be accepted. */
  readonly valid: boolean
}

/**
 * Valid inputs of a tool. `vectors.top_k`'s schema filters vectors to the query's length,
 * which a derived arbitrary would almost never hit; it gets one that builds them so.
 */
const validFor = (tool: ToolDefinition): fc.Arbitrary<unknown> =>
  tool.name === CpuTools.topK.name
    ? fc.integer({ min: 1, max: 6 }).chain((dims) =>
      fc.record({
        vectors: fc.array(fc.array(fc.double(), { minLength: dims, maxLength: dims }), { minLength: 1, maxLength: 6 }),
        query: fc.array(fc.double(), { minLength: dims, maxLength: dims }),
        k: fc.integer({ min: 1, max: 10 })
      }, { requiredKeys: ["vectors", "query"] })
    )
    : Arbitrary.make(Schema.encodedBoundSchema(tool.input))

/** Values that break assumptions: odd numbers, empty and huge strings, wrong shapes. */
const odd = fc.oneof(
  fc.constantFrom<unknown>(
    NaN,
    Infinity,
    -Infinity,
    -0,
    2 ** 53,
    1e308,
    -1,
    0,
    0.5,
    "",
    " ",
    "\u0000",
    "😀".repeat(1000),
    "x".repeat(100_000),
    null,
    [],
    {},
    true,
    "__proto__"
  ),
  fc.jsonValue({ maxDepth: 3 })
)

/** `value` under `depth` arrays or objects. */
const nest = (value: unknown, depth: number, asObject: boolean): unknown => {
  let out = value
  for (let i = 0; i < depth; i++) out = asObject ? { a: out } : [out]
  return out
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** A valid input with one field replaced, removed, nested deep, or joined by an unexpected one. */
const mutated = (valid: fc.Arbitrary<unknown>) =>
  fc.tuple(
    valid,
    fc.nat(),
    odd,
    fc.integer({ min: 1, max: maxDepth - 1 }),
    fc.constantFrom(
      "replace",
      "delete",
      "nest",
      "extra"
    )
  ).map(([input, pick, junk, depth, how]) => {
    if (!isRecord(input)) return junk
    const keys = Object.keys(input)
    const key = keys[pick % Math.max(1, keys.length)] ?? "x"
    const copy: Record<string, unknown> = { ...input }
    switch (how) {
      case "replace":
        copy[key] = junk
        break
      case "delete":
        delete copy[key]
        break
      case "nest":
        copy[key] = nest(input[key], depth, pick % 2 === 0)
        break
      case "extra":
        Object.defineProperty(copy, pick % 2 === 0 ? "__proto__" : "constructor", { value: junk, enumerable: true })
    }
    return copy
  })

const caseFor = (tool: ToolDefinition): fc.Arbitrary<Case> => {
  const valid = validFor(tool)
  const invalid = fc.oneof(
    { weight: 4, arbitrary: mutated(valid) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
    { weight: 1, arbitrary: odd },
    {
      weight: 1,
      arbitrary: fc.tuple(odd, fc.integer({ min: 1, max: maxDepth - 1 }), fc.boolean()).map(([v, d, o]) =>
        nest(v, d, o)
      )
    }
  )
  return fc.oneof(
    { weight: 2, arbitrary: valid.map((input): Case => ({ tool: tool.name, input, valid: true })) },
    { weight: 3, arbitrary: invalid.map((input): Case => ({ tool: tool.name, input, valid: false })) }
  )
}

const cases = fc.oneof(...tools.map(caseFor))

/** The property for one result; returns the outcome to count. */
const check = (c: Case, result: ToolResult): string => {
  const where = `${c.tool}(${JSON.stringify(c.input)?.slice(0, 300)}) -> ${JSON.stringify(result).slice(0, 300)}`
  assert.instanceOf(result, ToolResult, where)
  switch (result.status) {
    case "succeeded":
      assert.isUndefined(result.error, where)
      return "succeeded"
    case "rejected": {
      assert.isFalse(c.valid, `a schema-valid input was rejected: ${where}`)
      assert.strictEqual(result.error?._tag, "InvalidToolInput", where)
      if (result.error?._tag !== "InvalidToolInput") return "unreachable"
      assert.isAbove(result.error.message.length, 0, where)
      // an object input names the offending field; anything else is wrong as a whole ("")
      if (isRecord(c.input)) assert.isAbove(result.error.field.length, 0, where)
      return "rejected InvalidToolInput"
    }
    case "failed":
      assert.strictEqual(result.error?._tag, "ToolFailed", where)
      assert.notMatch(result.error?.message ?? "", /^tool crashed/, `a defect: ${where}`)
      return "failed ToolFailed"
    default:
      return assert.fail(`unexpected ${result.status}: ${where}`)
  }
}

layer(Executor, { timeout: "60 seconds" })("fuzzed tool inputs", (it) => {
  it.effect.prop(
    "every call of every local tool ends in a typed ToolResult, never a defect",
    [cases],
    ([c]) =>
      Effect.gen(function*() {
        const executor = yield* ToolExecutor
        const fiber = yield* Effect.fork(executor.execute(toolCall("fuzz", c.tool, c.input)))
        // the io tools sleep on the test clock; the cpu tools answer from their thread in real time
        yield* TestClock.adjust("1 second")
        const result = yield* Fiber.join(fiber)
        tally.record(`${check(c, result)}${c.valid ? " (schema-valid)" : ""}`)
      }),
    { timeout: 240_000, fastCheck: { numRuns: 1_500 } }
  )

  /**
   * Found by this suite in src/application/ToolExecutor.ts (not its to fix; the HTTP API
   * refuses such bodies before they get here). When fixed, this fails: make it plain and
   * let the arbitraries nest deeper than `maxDepth`.
   */
  it.effect.fails(
    "KNOWN DEFECT: an input nested 100,000 deep crashes invalidInput's formatting (RangeError), reported as \"tool crashed\"",
    () =>
      Effect.gen(function*() {
        const executor = yield* ToolExecutor
        const result = yield* executor.execute(toolCall("deep", DemoTools.weather.name, nest(1, 100_000, false)))
        assert.strictEqual(result.error?._tag, "InvalidToolInput", JSON.stringify(result.error))
      })
  )
})
