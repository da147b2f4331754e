/**
 * An HTTP server on 127.0.0.1 that speaks the part of the Ollama API Loom uses
 * (POST /api/chat with NDJSON streaming and tool calls, POST /api/embed, GET /api/tags,
 * GET /api/version), with scripted replies and fault injection per route. Tests and
 * the offline demo run Loom against it over real sockets; a real Ollama is a drop-in
 * replacement. It counts requests and connections so tests can assert on them.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Duration, Effect, Random, Schema, Stream } from "effect"
import * as Http from "node:http"

export type Route = "chat" | "embed" | "tags" | "version"

/** What to do wrong on a route. Everything is off by default. */
export interface Faults {
  /** Added before answering: a fixed delay, or uniformly random within [min, max]. */
  readonly latency?: Duration.DurationInput | { readonly min: number; readonly max: number }
  /** Fraction of requests (0..1) answered with `status` (default 500). */
  readonly errorRate?: number
  readonly status?: number
  /** Sent as `Retry-After` with those errors: delay-seconds, or the header's text as is (an HTTP date). */
  readonly retryAfter?: number | string
  /** Never answer. */
  readonly hang?: boolean
  /** Answer `200` with a body that is not JSON (for streams: one broken NDJSON line). */
  readonly malformed?: boolean
  /** Streaming only: destroy the connection after the first chunk. */
  readonly resetMidStream?: boolean
  /** Streaming only: wait this long between chunks. */
  readonly trickle?: Duration.DurationInput
  /** Streaming only: send the tool calls in a chunk of their own before the final one, as recent Ollama does. */
  readonly toolCallsMidStream?: boolean
  /**
   * The model writes its tool calls into its content as JSON instead, as small models do:
   * `{"name": ..., "arguments": ...}` (`json`), the same in a ```json fence (`fenced`), or
   * `{"tool": ..., "parameters": ...}` (`toolParameters`).
   */
  readonly toolCallsAsText?: "json" | "fenced" | "toolParameters"
}

/** A scripted answer: text, tool calls, or raw tool-call arguments (to test undecodable ones). */
export interface SimReply {
  readonly content: string
  readonly toolCalls?: ReadonlyArray<{ readonly name: string; readonly arguments: unknown }>
}

export interface Options {
  readonly models?: ReadonlyArray<string>
  /** Dimension of the deterministic embedding vectors (default 8). */
  readonly dimensions?: number
  readonly script?: (request: SimChatRequest) => SimReply
  readonly port?: number
}

export interface OllamaSimulator {
  readonly url: string
  readonly setFaults: (route: Route, faults: Faults) => void
  readonly clearFaults: () => void
  readonly setScript: (script: (request: SimChatRequest) => SimReply) => void
  /** Requests received per route since start (or the last reset). */
  readonly requests: (route: Route) => number
  /** The JSON body of the last request on `route`. */
  readonly lastBody: (route: Route) => unknown
  /** Connections accepted, and how many are open now. */
  readonly connections: () => { readonly opened: number; readonly open: number }
  readonly resetCounters: () => void
}

const ChatBody = Schema.Struct({
  model: Schema.String,
  messages: Schema.Array(Schema.Struct({
    role: Schema.String,
    content: Schema.optionalWith(Schema.String, { default: () => "" }),
    tool_name: Schema.optional(Schema.String)
  })),
  tools: Schema.optionalWith(
    Schema.Array(Schema.Struct({
      function: Schema.Struct({
        name: Schema.String,
        /** The tool's JSON Schema, read for the names and kinds of its arguments. */
        parameters: Schema.optional(Schema.Unknown)
      })
    })),
    { default: () => [] }
  ),
  stream: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** `"json"` or a JSON Schema the reply must match; scripts decide whether it does. */
  format: Schema.optional(Schema.Unknown)
})

/** The part of a chat request a script looks at. */
export type SimChatRequest = typeof ChatBody.Type

const EmbedBody = Schema.Struct({
  model: Schema.String,
  input: Schema.Union(Schema.String, Schema.Array(Schema.String))
})

/** The properties of a tool's JSON Schema: each argument's name, with its `enum` when it has one. */
const argumentsOf = (
  parameters: unknown
): ReadonlyArray<{ readonly name: string; readonly values?: ReadonlyArray<string> }> => {
  if (typeof parameters !== "object" || parameters === null || !("properties" in parameters)) return []
  const properties = parameters.properties
  if (typeof properties !== "object" || properties === null) return []
  return Object.entries(properties).map(([name, schema]) => {
    const values = typeof schema === "object" && schema !== null && "enum" in schema && Array.isArray(schema.enum)
      ? schema.enum.filter((value: unknown): value is string => typeof value === "string")
      : undefined
    return values === undefined ? { name } : { name, values }
  })
}

/** Language names a prompt may use for the `to` of a translation. */
const languages: Readonly<Record<string, ReadonlyArray<string>>> = {
  en: ["english"],
  fr: ["french", "français"],
  de: ["german", "deutsch"]
}

/** `'...'` or `"..."` in the prompt, if it quotes something. */
const quoted = (prompt: string) => /["'“‘]([^"'”’]+)["'”’]/u.exec(prompt)?.[1]

/** A place: the capitalised words after "in", "for" or "at" ("What is the weather in Lisbon?" -> "Lisbon"). */
const place = (prompt: string) => /\b(?:in|for|at)\s+(\p{Lu}[\p{L}'-]*(?:\s+\p{Lu}[\p{L}'-]*)*)/u.exec(prompt)?.[1]

/** What comes after the tool's name, without a leading "for"/"about" and the closing punctuation. */
const after = (prompt: string, tool: string) => {
  const at = prompt.toLowerCase().indexOf(tool.toLowerCase())
  const rest = at < 0 ? prompt : prompt.slice(at + tool.length)
  return rest.replace(/^\s*(?:for|about|on|of)?\s*/i, "").replace(/[\s?.!]+$/, "")
}

/**
 * Arguments for `tool` read from a prompt written for a person, as a model would: the
 * quoted text, the place named, the language asked for, or what follows the tool's name.
 * What it cannot read it leaves out (the tool then says what is missing).
 */
const guessArguments = (tool: string, parameters: unknown, prompt: string): Record<string, unknown> => {
  const args: Record<string, unknown> = {}
  for (const { name, values } of argumentsOf(parameters)) {
    if (values !== undefined) {
      const lower = prompt.toLowerCase()
      const named = values.find((value) =>
        new RegExp(`\\b${value}\\b`, "i").test(prompt) || (languages[value] ?? []).some((word) => lower.includes(word))
      )
      if (named !== undefined) args[name] = named
    } else if (/city|place|location/i.test(name)) {
      const found = place(prompt)
      if (found !== undefined) args[name] = found
    } else if (/text|query|input|q$/i.test(name)) {
      const found = quoted(prompt) ?? after(prompt, tool)
      if (found.length > 0) args[name] = found
    }
  }
  return args
}

/** The tool a prompt asks for: one it names (any case), e.g. "weather", "search", "translate". */
const toolAskedFor = (request: SimChatRequest, prompt: string) => {
  const lower = prompt.toLowerCase()
  return request.tools.find((tool) => lower.includes(tool.function.name.toLowerCase()))
}

/**
 * The default behaviour: after a tool result, summarise it; when tools are offered and
 * the last user message names one, call it, with the first `{...}` in the message as
 * arguments or else the arguments read from the question ("What is the weather in
 * Lisbon?" calls `weather` with `{"city":"Lisbon"}`); otherwise echo.
 */
export const defaultScript = (request: SimChatRequest): SimReply => {
  const last = request.messages[request.messages.length - 1]
  if (last?.role === "tool") {
    const results = request.messages.filter((m) => m.role === "tool").map((m) => m.content)
    return { content: `Based on the tool results: ${results.join("; ")}` }
  }
  const prompt = [...request.messages].reverse().find((m) => m.role === "user")?.content ?? ""
  const named = toolAskedFor(request, prompt)
  if (named) {
    const json = /\{[\s\S]*\}/.exec(prompt)?.[0]
    let args: unknown
    try {
      args = json ? JSON.parse(json) : undefined
    } catch {
      args = undefined
    }
    return {
      content: "",
      toolCalls: [{
        name: named.function.name,
        arguments: args ?? guessArguments(named.function.name, named.function.parameters, prompt)
      }]
    }
  }
  return { content: `echo: ${prompt}` }
}

/** A deterministic unit-ish vector for `text`: the same text always embeds the same. */
export const embedding = (text: string, dimensions: number): ReadonlyArray<number> => {
  let h = 2166136261
  const out: Array<number> = []
  for (let d = 0; d < dimensions; d++) {
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i) ^ d, 16777619)
    out.push(((h >>> 0) % 2000) / 1000 - 1)
  }
  return out
}

const tokens = (text: string): number => text.split(/\s+/).filter((w) => w.length > 0).length

const routeOf = (method: string, url: string): Route | undefined => {
  const path = url.split("?")[0]
  if (method === "POST" && path === "/api/chat") return "chat"
  if (method === "POST" && path === "/api/embed") return "embed"
  if (method === "GET" && path === "/api/tags") return "tags"
  if (method === "GET" && path === "/api/version") return "version"
  return undefined
}

const encoder = new TextEncoder()
const line = (value: unknown): Uint8Array => encoder.encode(`${JSON.stringify(value)}\n`)

/** The route's latency fault, if any. */
const delay = (fault: Faults) =>
  Effect.gen(function*() {
    const latency = fault.latency
    if (latency === undefined) return
    if (typeof latency === "object" && "min" in latency) {
      yield* Effect.sleep(Duration.millis(yield* Random.nextRange(latency.min, latency.max)))
    } else {
      yield* Effect.sleep(latency)
    }
  })

const notFound = (model: string) =>
  HttpServerResponse.unsafeJson({ error: `model "${model}" not found, try pulling it first` }, { status: 404 })

/** The tool calls of a reply as Ollama sends them, if it has any. */
const wireToolCalls = (reply: SimReply) =>
  reply.toolCalls && reply.toolCalls.length > 0
    ? { tool_calls: reply.toolCalls.map((call) => ({ function: { name: call.name, arguments: call.arguments } })) }
    : {}

/**
 * The reply with its tool calls written into its content as JSON instead (the
 * `toolCallsAsText` fault), spread over lines as models write it, so a stream sends it in pieces.
 */
const writtenAsText = (reply: SimReply, style: Faults["toolCallsAsText"]): SimReply => {
  if (style === undefined || reply.toolCalls === undefined || reply.toolCalls.length === 0) return reply
  const calls = reply.toolCalls.map((call) =>
    style === "toolParameters"
      ? { tool: call.name, parameters: call.arguments }
      : { name: call.name, arguments: call.arguments }
  )
  const json = JSON.stringify(calls.length === 1 ? calls[0] : calls, null, 2)
  return { content: style === "fenced" ? `\`\`\`json\n${json}\n\`\`\`` : json }
}

/** A streamed chat's NDJSON chunks: a word a chunk, the tool calls in the final chunk or (`toolCallsMidStream`) their own. */
const streamChunks = (body: SimChatRequest, reply: SimReply, final: object, fault: Faults) => {
  const part = (message: object) => ({
    model: body.model,
    created_at: new Date(0).toISOString(),
    message: { role: "assistant", content: "", ...message },
    done: false
  })
  const deltas = reply.content.split(/(?<= )/).filter((p) => p.length > 0).map((content) => part({ content }))
  const calls = wireToolCalls(reply)
  const midStream = fault.toolCallsMidStream && "tool_calls" in calls ? [part(calls)] : []
  const last = { ...final, message: { role: "assistant", content: "", ...(midStream.length > 0 ? {} : calls) } }
  let chunks = Stream.fromIterable([...deltas, ...midStream, last].map(line))
  if (fault.malformed) {
    chunks = Stream.fromIterable([...deltas.slice(0, 1).map(line), encoder.encode("{\"done\": tru\n"), line(last)])
  }
  if (fault.trickle !== undefined) {
    const gap = fault.trickle
    chunks = Stream.tap(chunks, () => Effect.sleep(gap))
  }
  return chunks
}

/** A chat answer: one JSON body, or NDJSON chunks to stream, with the route's faults. */
const chat = (
  models: ReadonlyArray<string>,
  script: (request: SimChatRequest) => SimReply,
  body: SimChatRequest,
  fault: Faults
) => {
  if (!models.includes(body.model)) return Effect.succeed(notFound(body.model))
  const reply = writtenAsText(script(body), fault.toolCallsAsText)
  const promptTokens = body.messages.reduce((n, m) => n + tokens(m.content), 0)
  const final = {
    model: body.model,
    created_at: new Date(0).toISOString(),
    done: true,
    done_reason: "stop",
    total_duration: 1,
    load_duration: 0,
    prompt_eval_count: promptTokens,
    prompt_eval_duration: 1,
    eval_count: tokens(reply.content) + (reply.toolCalls?.length ?? 0),
    eval_duration: 1
  }
  if (body.stream) return Effect.succeed(streamChunks(body, reply, final, fault))
  return Effect.succeed(
    fault.malformed
      ? HttpServerResponse.text("{\"model\": \"broken", { contentType: "application/json" })
      : HttpServerResponse.unsafeJson({
        ...final,
        message: { role: "assistant", content: reply.content, ...wireToolCalls(reply) }
      })
  )
}

const tagsReply = (models: ReadonlyArray<string>) =>
  HttpServerResponse.unsafeJson({
    models: models.map((name) => ({
      name,
      model: name,
      modified_at: new Date(0).toISOString(),
      size: 1_000_000,
      digest: name,
      details: {}
    }))
  })

const embedReply = (body: typeof EmbedBody.Type, dimensions: number) => {
  const inputs = typeof body.input === "string" ? [body.input] : body.input
  return HttpServerResponse.unsafeJson({
    model: body.model,
    embeddings: inputs.map((text) => embedding(text, dimensions)),
    total_duration: 1,
    load_duration: 0,
    prompt_eval_count: inputs.reduce((n, text) => n + tokens(text), 0)
  })
}

export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const models = options.models ?? ["llama3.2", "qwen2.5-coder", "nomic-embed-text"]
    const dimensions = options.dimensions ?? 8
    let script = options.script ?? defaultScript
    let faults: Partial<Record<Route, Faults>> = {}
    let counts: Record<Route, number> = { chat: 0, embed: 0, tags: 0, version: 0 }
    let opened = 0
    let open = 0
    const bodies: Partial<Record<Route, unknown>> = {}

    const server = Http.createServer()
    server.on("connection", (socket) => {
      opened++
      open++
      socket.on("close", () => {
        open--
      })
    })

    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const route = routeOf(request.method, request.url)
      if (route === undefined) return HttpServerResponse.text("not found", { status: 404 })
      counts[route]++
      if (request.method === "POST") bodies[route] = yield* request.json
      const fault = faults[route] ?? {}
      yield* delay(fault)
      if (fault.hang) return yield* Effect.never
      if (fault.errorRate !== undefined && (yield* Random.next) < fault.errorRate) {
        return HttpServerResponse.unsafeJson({ error: "simulated failure" }, {
          status: fault.status ?? 500,
          ...(fault.retryAfter === undefined ? {} : { headers: { "retry-after": String(fault.retryAfter) } })
        })
      }
      switch (route) {
        case "version":
          return HttpServerResponse.unsafeJson({ version: "0.0.0-loom-simulator" })
        case "tags":
          return fault.malformed
            ? HttpServerResponse.text("<html>", { contentType: "application/json" })
            : tagsReply(models)
        case "embed": {
          const body = yield* HttpServerRequest.schemaBodyJson(EmbedBody)
          if (!models.includes(body.model)) return notFound(body.model)
          if (fault.malformed) {
            return HttpServerResponse.text("{\"embeddings\": [[", { contentType: "application/json" })
          }
          return embedReply(body, dimensions)
        }
        case "chat": {
          const body = yield* HttpServerRequest.schemaBodyJson(ChatBody)
          const reply = yield* chat(models, script, body, fault)
          if (HttpServerResponse.isServerResponse(reply)) return reply
          const socket = NodeHttpServerRequest.toIncomingMessage(request).socket
          const stream = fault.resetMidStream
            ? reply.pipe(
              Stream.take(1),
              Stream.concat(Stream.fromEffect(Effect.sync(() => socket.destroy())).pipe(Stream.drain))
            )
            : reply
          return HttpServerResponse.stream(stream, { contentType: "application/x-ndjson" })
        }
      }
    }).pipe(
      Effect.catchTag(
        "RequestError",
        "ParseError",
        (error) => Effect.succeed(HttpServerResponse.unsafeJson({ error: String(error) }, { status: 400 }))
      )
    )

    const httpServer = yield* NodeHttpServer.make(() => server, { port: options.port ?? 0, host: "127.0.0.1" })
    yield* httpServer.serve(app)
    const address = httpServer.address
    const url = address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : "http://127.0.0.1"

    return {
      url,
      setFaults: (route, next) => {
        faults = { ...faults, [route]: next }
      },
      clearFaults: () => {
        faults = {}
      },
      setScript: (next) => {
        script = next
      },
      requests: (route) => counts[route],
      lastBody: (route) => bodies[route],
      connections: () => ({ opened, open }),
      resetCounters: () => {
        counts = { chat: 0, embed: 0, tags: 0, version: 0 }
        opened = 0
      }
    } satisfies OllamaSimulator
  })
