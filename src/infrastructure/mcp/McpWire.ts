/**
 * The parts of MCP replies Loom uses, as Schemas: every reply is decoded here, so a
 * server that answers nonsense gives a typed error naming the field, and the errors a
 * connection can end a request with.
 */
import { Schema } from "effect"

export const ToolInfo = Schema.Struct({
  name: Schema.String,
  description: Schema.optionalWith(Schema.String, { default: () => "" }),
  inputSchema: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type ToolInfo = typeof ToolInfo.Type

export const ListToolsResult = Schema.Struct({
  tools: Schema.Array(ToolInfo),
  nextCursor: Schema.optional(Schema.String)
})

const Content = Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
  Schema.filter((item) => typeof item["type"] === "string" || { path: ["type"], message: "content needs a type" })
)

/** What a call returns: its content items and, when the server gives it, structured content. */
export const CallToolResult = Schema.Struct({
  content: Schema.Array(Content),
  structuredContent: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  isError: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
export type CallToolResult = typeof CallToolResult.Type

/** A call's output as a tool result carries it. */
export const ToolOutput = Schema.Struct({
  content: Schema.Array(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  structuredContent: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})

/** The text of a reply's text items, for errors and for models. */
export const textOf = (result: { readonly content: ReadonlyArray<Record<string, unknown>> }) =>
  result.content.flatMap((item) => item["type"] === "text" && typeof item["text"] === "string" ? [item["text"]] : [])
    .join("\n")

/** The server could not be reached, is not connected, or dropped the connection. */
export class McpUnavailable extends Schema.TaggedError<McpUnavailable>()("McpUnavailable", {
  server: Schema.String,
  message: Schema.String
}) {}

/** The server answered the request with a JSON-RPC error (bad params, unknown method, ...). */
export class McpRequestFailed extends Schema.TaggedError<McpRequestFailed>()("McpRequestFailed", {
  server: Schema.String,
  code: Schema.Int,
  message: Schema.String
}) {}

/** The server's reply did not decode. */
export class McpBadResponse extends Schema.TaggedError<McpBadResponse>()("McpBadResponse", {
  server: Schema.String,
  message: Schema.String
}) {}
