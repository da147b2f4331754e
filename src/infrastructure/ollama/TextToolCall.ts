/**
 * Tool calls a model wrote as text. Small models offered tools often answer with the call
 * as JSON in their content instead of Ollama's `tool_calls`, so the call would be shown
 * to the user instead of run. The heuristic is narrow on purpose, so ordinary answers
 * stay text: the whole reply (surrounding whitespace aside) must be one JSON object, or
 * an array of them, bare or in one ```json (or bare ```) fence; each object must name a
 * tool (`name` or `tool`) and give its arguments (`arguments` or `parameters`: a JSON
 * object, or a string holding one); and every name must be one of the tools offered.
 */
import { Array as Arr, Option, Schema } from "effect"
import { LlmToolCall } from "../../domain/Chat.js"

const Args = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const ArgsField = Schema.Union(Args, Schema.parseJson(Args))

/** The spellings models use: `{name, arguments}` (Ollama's own), `{tool, parameters}` and their mixes. */
const WrittenCall = Schema.Union(
  Schema.Struct({ name: Schema.String, arguments: ArgsField }),
  Schema.Struct({ name: Schema.String, parameters: ArgsField }),
  Schema.Struct({ tool: Schema.String, arguments: ArgsField }),
  Schema.Struct({ tool: Schema.String, parameters: ArgsField })
)

const WrittenCalls = Schema.parseJson(Schema.Union(WrittenCall, Schema.NonEmptyArray(WrittenCall)))

const decodeCalls = Schema.decodeUnknownOption(WrittenCalls)

const fenced = /^```(?:json)?[ \t]*\r?\n?([\s\S]*?)\r?\n?```$/

/** The reply's text without its fence, if it is one fenced block. */
const unfenced = (text: string): string => fenced.exec(text)?.[1]?.trim() ?? text

const toCall = (call: typeof WrittenCall.Type): LlmToolCall =>
  new LlmToolCall({
    name: "name" in call ? call.name : call.tool,
    arguments: "arguments" in call ? call.arguments : call.parameters
  }, true)

/** The tool calls `content` is, when it is nothing but calls of `offered` tools; otherwise `None` and it stays text. */
export const parse = (content: string, offered: ReadonlyArray<string>): Option.Option<ReadonlyArray<LlmToolCall>> => {
  if (offered.length === 0) return Option.none()
  return decodeCalls(unfenced(content.trim())).pipe(
    Option.map((written) => Arr.ensure(written).map(toCall)),
    Option.filter((calls) => calls.every((call) => offered.includes(call.name)))
  )
}

/**
 * Whether text that has arrived so far could still turn out to be a written tool call
 * (it is blank, starts a JSON object or array, or starts a ```json or bare fence whose
 * body does): a stream holds such text back until it knows.
 */
export const couldBe = (sofar: string): boolean => {
  const text = sofar.trimStart()
  if (text.length === 0 || text.startsWith("{") || text.startsWith("[")) return true
  if ("```json".startsWith(text)) return true
  if (!text.startsWith("```")) return false
  const body = text.slice(3).replace(/^json/, "").trimStart()
  return body.length === 0 || body.startsWith("{") || body.startsWith("[")
}
