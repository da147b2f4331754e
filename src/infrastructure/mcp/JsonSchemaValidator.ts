/**
 * Turns the JSON Schema of an MCP tool's input into an Effect Schema, so arguments are
 * checked before the call and a bad one is named by its path. Covers what tool
 * schemas use: objects (with required and extra properties), strings, numbers,
 * integers, booleans, null, arrays, enums, const, and anyOf/oneOf. Anything else is
 * accepted as it is and left to the server.
 */
import { Schema } from "effect"

type Json = { readonly [key: string]: unknown }

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

const literalOf = (values: ReadonlyArray<unknown>): Schema.Schema.AnyNoContext => {
  const literals = values.filter((v): v is string | number | boolean | null =>
    v === null || ["string", "number", "boolean"].includes(typeof v)
  )
  return literals.length === 0 ? Schema.Unknown : Schema.Literal(...literals)
}

const byType = (type: string, schema: Json): Schema.Schema.AnyNoContext => {
  switch (type) {
    case "string":
      return Schema.String
    case "number":
      return Schema.Number
    case "integer":
      return Schema.Int
    case "boolean":
      return Schema.Boolean
    case "null":
      return Schema.Null
    case "array":
      return Schema.Array(isObject(schema["items"]) ? fromJsonSchema(schema["items"]) : Schema.Unknown)
    case "object":
      return objectOf(schema)
    default:
      return Schema.Unknown
  }
}

const objectOf = (schema: Json): Schema.Schema.AnyNoContext => {
  const properties = isObject(schema["properties"]) ? schema["properties"] : {}
  const required = new Set(Array.isArray(schema["required"]) ? schema["required"].map(String) : [])
  const fields: { [key: string]: Schema.Struct.Field } = {}
  for (const [key, value] of Object.entries(properties)) {
    const field = isObject(value) ? fromJsonSchema(value) : Schema.Unknown
    fields[key] = required.has(key) ? field : Schema.optional(field)
  }
  // Properties the schema does not list pass through untouched.
  return Schema.Struct(
    fields,
    Schema.Record({ key: Schema.String, value: Schema.Unknown })
  ) as unknown as Schema.Schema<
    Readonly<Record<string, unknown>>,
    Readonly<Record<string, unknown>>
  >
}

/** The Effect Schema that checks values against `schema`. */
export const fromJsonSchema = (schema: Json): Schema.Schema.AnyNoContext => {
  const base = (() => {
    if (Array.isArray(schema["enum"])) return literalOf(schema["enum"])
    if ("const" in schema) return literalOf([schema["const"]])
    const alternatives = schema["anyOf"] ?? schema["oneOf"]
    if (Array.isArray(alternatives) && alternatives.length > 0) {
      return Schema.Union(...alternatives.map((a) => isObject(a) ? fromJsonSchema(a) : Schema.Unknown))
    }
    const type = schema["type"]
    if (typeof type === "string") return byType(type, schema)
    if (Array.isArray(type)) return Schema.Union(...type.map((t) => byType(String(t), schema)))
    return isObject(schema["properties"]) ? objectOf(schema) : Schema.Unknown
  })()
  return typeof schema["description"] === "string"
    ? base.annotations({ description: schema["description"] })
    : base
}
