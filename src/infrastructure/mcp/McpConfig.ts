/**
 * Which MCP servers Loom connects to: a JSON file named by `LOOM_MCP_CONFIG`, e.g.
 * `{ "servers": [{ "name": "everything", "command": "npx", "args": ["mcp-server-everything"] },
 * { "name": "remote", "url": "http://127.0.0.1:3001/mcp" }] }`. A file that does not
 * decode stops start-up with an error naming the field.
 */
import { Config, Effect, Option, ParseResult, Schema } from "effect"
import * as fs from "node:fs"
import { RateFromString } from "../resilience/RateLimit.js"

/** Server names prefix their tools (`name.tool`), so they keep to tool-name characters. */
const ServerName = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}$/))

/** Tool calls allowed to the server, e.g. `"rateLimit": "10/second"` or `"100/minute"` (default: no limit). */
const rateLimit = Schema.optional(RateFromString)

export class StdioServer extends Schema.Class<StdioServer>("StdioServer")({
  name: ServerName,
  command: Schema.NonEmptyString,
  args: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  env: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { default: () => ({}) }),
  cwd: Schema.optional(Schema.String),
  rateLimit
}) {}

export class HttpServer extends Schema.Class<HttpServer>("HttpServer")({
  name: ServerName,
  url: Schema.String.pipe(Schema.pattern(/^https?:\/\//)),
  rateLimit
}) {}

export const ServerSpec = Schema.Union(StdioServer, HttpServer)
export type ServerSpec = typeof ServerSpec.Type

export const ConfigFile = Schema.Struct({ servers: Schema.Array(ServerSpec) })

/** The MCP config file is missing, not JSON, or not the expected shape; `field` names where. */
export class McpConfigError extends Schema.TaggedError<McpConfigError>()("McpConfigError", {
  file: Schema.String,
  field: Schema.String,
  message: Schema.String
}) {}

/** Reads and decodes the config file at `file`. */
export const load = (file: string) =>
  Effect.gen(function*() {
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (error) => new McpConfigError({ file, field: "", message: String(error) })
    })
    return yield* Schema.decodeUnknown(Schema.parseJson(ConfigFile))(text).pipe(
      Effect.mapError((error) => {
        const first = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
        const field = first ? first.path.map(String).join(".") : ""
        return new McpConfigError({
          file,
          field,
          message: `${file}: ${field || "file"}: ${first?.message ?? error.message}`
        })
      })
    )
  })

/** The servers listed in `LOOM_MCP_CONFIG`, or none when it is unset. */
export const servers = Effect.gen(function*() {
  const file = yield* Config.option(Config.string("LOOM_MCP_CONFIG"))
  if (Option.isNone(file)) return []
  const config = yield* load(file.value)
  return config.servers
})
