/**
 * Boundary 1, the HTTP API of the real service (started as a child process): arbitrary,
 * near-valid, truncated, binary, unicode, deeply nested and oversized bodies on every
 * route; path, SQL and unicode characters in run ids; garbage Last-Event-IDs; wrong
 * methods and content types. Every reply is under 500 and in time; every 4xx is JSON
 * naming the problem; after each batch the process is alive and ready.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { threadIdPattern } from "../../src/domain/Workflow.js"
import { json, post, scratchDir, service, until } from "../support/Service.js"
import * as Tally from "../support/Tally.js"

const tally = Tally.make("http-bodies")

const maxBodyBytes = 1024 * 1024
/** Every request answers within this, or the case fails as a hang. */
const requestTimeoutMs = 15_000

interface Case {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | Uint8Array | undefined
  /** Sent without a Content-Length (chunked), so the limit is enforced while the body is read. */
  readonly chunked: boolean
}

interface Reply {
  readonly status: number
  readonly contentType: string | null
  readonly allow: string | null
  readonly text: string
}

const sizeOf = (body: Case["body"]) =>
  body === undefined ? 0 : typeof body === "string" ? Buffer.byteLength(body) : body.byteLength

/** Sends one case; an oversized upload, chunked or not, gets its 413 like any other reply. */
const send = async (url: string, c: Case): Promise<Reply> => {
  const withBody = c.body !== undefined && c.method !== "GET" && c.method !== "HEAD"
  const payload = withBody
    ? (typeof c.body === "string" ? new TextEncoder().encode(c.body) : new Uint8Array(c.body))
    : undefined
  try {
    const response = await fetch(`${url}${c.path}`, {
      method: c.method,
      headers: c.headers,
      signal: AbortSignal.timeout(requestTimeoutMs),
      ...(payload === undefined ? {} : c.chunked
        ? { body: new Blob([payload]).stream(), duplex: "half" }
        : { body: payload })
    } as RequestInit)
    const text = await response.text()
    return {
      status: response.status,
      contentType: response.headers.get("content-type"),
      allow: response.headers.get("allow"),
      text
    }
  } catch (error) {
    if (error instanceof Error && error.name === "TimeoutError") {
      throw new Error(`no reply within ${requestTimeoutMs} ms`)
    }
    throw new Error(`${c.method} ${c.path} (${sizeOf(c.body)} bytes${c.chunked ? ", chunked" : ""}): ${String(error)}`)
  }
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const field = (body: unknown, name: string): unknown =>
  typeof body === "object" && body !== null && name in body ? (body as Record<string, unknown>)[name] : undefined

/** A Last-Event-ID that names an event: a non-negative decimal integer up to 2^53 - 1. */
const isEventSeq = (text: string) => /^[0-9]{1,16}$/.test(text) && Number(text) <= Number.MAX_SAFE_INTEGER

/** Why the case must be refused whatever else it gets right: a bad Last-Event-ID, or a run id outside the pattern. */
const mustRefuse = (c: Case): string | undefined => {
  const lastEventId = c.headers["last-event-id"]
  if (c.method === "GET" && c.path.endsWith("/events") && lastEventId !== undefined && !isEventSeq(lastEventId)) {
    return `Last-Event-ID ${JSON.stringify(lastEventId)}`
  }
  const threadId = c.method === "POST" && c.path === "/v1/runs" && typeof c.body === "string"
    ? field(parse(c.body), "threadId")
    : undefined
  return typeof threadId === "string" && !threadIdPattern.test(threadId)
    ? `threadId ${JSON.stringify(threadId)}`
    : undefined
}

/** The property: no 5xx, and a 4xx is JSON that names its problem. Returns the outcome to count. */
const check = (c: Case, reply: Reply): string => {
  const where = `${c.method} ${c.path.slice(0, 120)} -> ${reply.status} ${reply.text.slice(0, 300)}`
  assert.isBelow(reply.status, 500, where)
  const refuse = mustRefuse(c)
  if (refuse !== undefined) assert.isAtLeast(reply.status, 400, `${refuse} must be refused: ${where}`)
  if (reply.status < 400) return String(reply.status)
  if (c.method === "HEAD") return `${reply.status} (HEAD)`
  assert.include(reply.contentType ?? "", "application/json", where)
  const body = parse(reply.text)
  if (c.path.startsWith("/mcp")) {
    // the MCP SDK answers JSON-RPC errors
    assert.isObject(field(body, "error"), where)
    return `${reply.status} mcp`
  }
  const tag = field(body, "_tag")
  assert.isString(tag, where)
  if ([400, 405, 413, 415].includes(reply.status)) {
    assert.isString(field(body, "message"), where)
    assert.isAbove(String(field(body, "message")).length, 0, where)
  }
  if (reply.status === 405) assert.isAbove((reply.allow ?? "").length, 0, where)
  // over the limit is a 413 whether the body said its length or came in chunks (the connection was reset)
  if (c.path.startsWith("/v1/") && c.method === "POST" && sizeOf(c.body) > maxBodyBytes) {
    assert.strictEqual(reply.status, 413, where)
  }
  return `${reply.status} ${String(tag)}`
}

// --- bodies -------------------------------------------------------------------------

const anyJson = fc.jsonValue({ maxDepth: 5 })

/** Mostly `valid` (so the request gets past decoding, into the handlers), sometimes any JSON. */
const mostly = <A>(valid: fc.Arbitrary<A>) =>
  fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: anyJson })

/** Thread ids in and out of the documented pattern. */
const idText = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,40}$/),
  fc.constantFrom(
    "../../etc/passwd",
    "' OR 1=1 --",
    "'; DROP TABLE runs; --",
    "   ",
    "a\r\nb",
    "\u0000",
    "😀",
    "naïve",
    "%",
    "%2F",
    "a/b",
    "..",
    "x".repeat(129),
    "x".repeat(99),
    "-lead"
  ),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
  fc.string({ unit: "binary", minLength: 1, maxLength: 40 })
)

const runRequest = fc.record(
  {
    kind: mostly(fc.oneof({ weight: 6, arbitrary: fc.constantFrom("workflow", "agent") }, fc.constant("WORKFLOW"))),
    name: mostly(
      fc.oneof({ weight: 6, arbitrary: fc.constantFrom("coding", "assistant") }, fc.constantFrom("nope", ""))
    ),
    input: mostly(fc.string({ unit: "grapheme", maxLength: 80 })),
    threadId: fc.oneof({ weight: 3, arbitrary: fc.uuid() }, idText)
  },
  { requiredKeys: ["kind", "name", "input"] }
)

const toolNames = [
  "weather",
  "search",
  "translate",
  "text.chunk",
  "vectors.top_k",
  "text.estimate_tokens",
  "code.run_tests",
  "nope",
  ""
]

/** Fields the local tools read, with plausible and implausible values. */
const toolInput = fc.oneof(
  fc.record({
    city: mostly(fc.string({ maxLength: 20 })),
    query: mostly(fc.string({ maxLength: 10 })),
    limit: mostly(fc.integer({ min: -5, max: 1000 })),
    text: mostly(fc.string({ unit: "grapheme", maxLength: 300 })),
    to: mostly(fc.constantFrom("en", "fr", "de", "xx")),
    size: fc.oneof(fc.integer({ min: -5, max: 2000 }), fc.constantFrom(0.5, 1e308, Number.MAX_SAFE_INTEGER)),
    overlap: mostly(fc.integer({ min: -5, max: 2000 })),
    vectors: fc.array(fc.array(fc.double(), { maxLength: 4 }), { maxLength: 4 }),
    k: mostly(fc.integer({ min: -2, max: 2 ** 31 }))
  }, { requiredKeys: [] }),
  anyJson
)

const call = fc.record({
  id: mostly(fc.string({ minLength: 1, maxLength: 8 })),
  tool: mostly(fc.constantFrom(...toolNames)),
  input: toolInput
}, { requiredKeys: ["id", "tool"] })

const graphNode = fc.record({
  id: fc.oneof({ weight: 6, arbitrary: fc.constantFrom("a", "b", "c") }, fc.constant("")),
  tool: fc.constantFrom(...toolNames),
  input: toolInput,
  dependsOn: mostly(fc.array(fc.constantFrom("a", "b", "c", "z"), { maxLength: 3 }))
}, { requiredKeys: ["id", "tool"] })

const concurrency = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 20 }) },
  fc.constantFrom(-1, 0, 1e9, 0.5),
  anyJson
)

const executeRequest = fc.oneof(
  fc.record({
    mode: fc.constantFrom("parallel", "sequential"),
    calls: mostly(fc.array(call, { maxLength: 4 })),
    concurrency
  }, { requiredKeys: ["mode", "calls"] }),
  fc.record({ mode: fc.constant("graph"), nodes: fc.array(graphNode, { maxLength: 4 }), concurrency }, {
    requiredKeys: ["mode", "nodes"]
  }),
  fc.record({
    mode: fc.constant("batch"),
    tool: fc.constantFrom(...toolNames),
    inputs: fc.array(toolInput, { maxLength: 4 }),
    concurrency
  }, { requiredKeys: ["mode", "tool", "inputs"] }),
  fc.record({ mode: anyJson, calls: anyJson, nodes: anyJson, tool: anyJson, inputs: anyJson }, { requiredKeys: [] })
)

/** `structured` as JSON, or a mangled, binary, unicode, empty or arbitrary JSON body. */
const bodyOf = (structured: fc.Arbitrary<unknown>): fc.Arbitrary<string | Uint8Array | undefined> =>
  fc.oneof(
    { weight: 6, arbitrary: structured.map((value) => JSON.stringify(value)) },
    { weight: 2, arbitrary: anyJson.map((value) => JSON.stringify(value)) },
    {
      weight: 1,
      arbitrary: fc.tuple(structured, fc.nat()).map(([value, cut]) => {
        const text = JSON.stringify(value)
        return text.slice(0, cut % Math.max(1, text.length))
      })
    },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 200 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    { weight: 1, arbitrary: fc.constant(undefined) }
  )

const contentType = fc.oneof(
  { weight: 20, arbitrary: fc.constant<string | undefined>("application/json") },
  {
    weight: 3,
    arbitrary: fc.constantFrom<string | undefined>(
      undefined,
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "text/plain",
      "multipart/form-data",
      "multipart/form-data; boundary=x",
      "application/x-www-form-urlencoded",
      "application/octet-stream",
      "application/jsonx",
      "*/*"
    )
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map(headerSafe) }
)

/** Characters fetch lets through in a header value. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "").trim()
}

const lastEventId = fc.oneof(
  fc.constantFrom(
    "1e400",
    "12345678901234567890",
    "0x10",
    "-1",
    "abc",
    "1.5",
    "",
    "0",
    "1",
    "9007199254740991",
    "9007199254740992",
    "NaN",
    "Infinity",
    "+3",
    "1_000"
  ),
  fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }).map(String),
  fc.string({ maxLength: 30 }).map(headerSafe)
)

const headersOf = (type: string | undefined, extra: Readonly<Record<string, string>> = {}) => ({
  ...(type === undefined ? {} : { "content-type": type }),
  ...extra
})

const encodeId = (id: string) => {
  try {
    return encodeURIComponent(id)
  } catch {
    return id.replace(/[^A-Za-z0-9_.~-]/g, "_")
  }
}

const methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]

/** A JSON body nested `depth` arrays or objects deep, alone or under a payload's field. */
const nested = (depth: number, shape: "array" | "object" | "field") => {
  switch (shape) {
    case "array":
      return "[".repeat(depth) + "]".repeat(depth)
    case "object":
      return "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)
    case "field":
      return `{"kind":"agent","name":"assistant","input":"x","mode":"batch","tool":"weather","inputs":${
        "[".repeat(depth)
      }${"]".repeat(depth)}}`
  }
}

// --- the cases ------------------------------------------------------------------------

const startRun = fc.record({ type: contentType, body: bodyOf(runRequest) }).map(({ body, type }): Case => ({
  method: "POST",
  path: "/v1/runs",
  headers: headersOf(type),
  body,
  chunked: false
}))

const execute = fc.record({ type: contentType, body: bodyOf(executeRequest) }).map(({ body, type }): Case => ({
  method: "POST",
  path: "/v1/tools/execute",
  headers: headersOf(type),
  body,
  chunked: false
}))

const byId = (finished: string) =>
  fc.record({
    id: fc.oneof({ weight: 4, arbitrary: idText }, { weight: 1, arbitrary: fc.constant(finished) }),
    raw: fc.boolean(),
    route: fc.constantFrom(["GET", ""] as const, ["GET", "/events"] as const, ["POST", "/cancel"] as const),
    otherMethod: fc.option(fc.constantFrom(...methods), { freq: 5 }),
    lastEventId: fc.option(lastEventId, { freq: 2 }),
    body: bodyOf(anyJson)
  }).map(({ body, id, lastEventId, otherMethod, raw, route: [method, suffix] }): Case => ({
    method: otherMethod ?? method,
    // a raw id keeps its `%`, `/` and `..`, so the router decodes (or refuses) them itself
    path: `/v1/runs/${raw ? headerSafe(id).replace(/[?#]/g, "") : encodeId(id)}${suffix}`,
    headers: headersOf("application/json", lastEventId === null ? {} : { "last-event-id": lastEventId }),
    body,
    chunked: false
  }))

const routes = [
  "/v1/runs",
  "/v1/runs/x",
  "/v1/runs/x/events",
  "/v1/runs/x/cancel",
  "/v1/tools",
  "/v1/tools/execute",
  "/health/live",
  "/health/ready",
  "/metrics",
  "/openapi.json",
  "/docs",
  "/mcp",
  "/",
  "/v1",
  "/v1/runs/",
  "//v1/tools",
  "/v1/tools/execute/extra"
]

const anyRoute = fc.record({
  method: fc.constantFrom(...methods),
  path: fc.oneof(fc.constantFrom(...routes), fc.webPath()),
  query: fc.option(fc.webQueryParameters(), { freq: 4 }),
  type: contentType,
  body: bodyOf(fc.oneof(runRequest, executeRequest))
}).map(({ body, method, path, query, type }): Case => ({
  method,
  path: `${path.startsWith("/") ? path : `/${path}`}${query === null ? "" : `?${query}`}`,
  headers: headersOf(type, path === "/mcp" ? { accept: "application/json, text/event-stream" } : {}),
  body,
  chunked: false
}))

/** Deep nesting around the depth limit and far past it, and bodies over the size limit (with and without a length). */
const extremes = fc.record({
  path: fc.constantFrom("/v1/runs", "/v1/tools/execute"),
  body: fc.oneof(
    fc.tuple(
      fc.constantFrom(255, 256, 257, 5_000, 100_000, 400_000),
      fc.constantFrom("array" as const, "object" as const, "field" as const)
    ).map(([depth, shape]) => nested(depth, shape)),
    fc.integer({ min: maxBodyBytes + 1, max: maxBodyBytes + 512 * 1024 }).map((n) => JSON.stringify("x".repeat(n))),
    fc.constant(JSON.stringify({ kind: "agent", name: "assistant", input: "é".repeat(maxBodyBytes / 2 + 10) }))
  ),
  chunked: fc.boolean()
}).map(({ body, chunked, path }): Case => ({
  method: "POST",
  path,
  headers: headersOf("application/json"),
  body,
  chunked
}))

describe("fuzzed HTTP bodies against the real service", () => {
  it.live(
    "every route answers under 500, in time, 4xx as JSON naming the problem; the service stays ready",
    () =>
      Effect.gen(function*() {
        const running = yield* service({
          LOOM_DATA_DIR: scratchDir(),
          LOOM_MAX_RUNS: "2",
          LOOM_MAX_BODY_BYTES: String(maxBodyBytes)
        })
        const { url } = running
        const started = yield* post(`${url}/v1/runs`, {
          kind: "agent",
          name: "assistant",
          input: "hi",
          threadId: "fuzz-1"
        })
        assert.strictEqual(started.status, 202)
        yield* until(json(`${url}/v1/runs/fuzz-1`), (r) => (r.body as { status: string }).status !== "running")

        /** One batch of `runs` cases, then the process must be alive and ready. */
        const batch = (name: string, cases: fc.Arbitrary<Case>, runs: number) =>
          Effect.gen(function*() {
            yield* Effect.promise(() =>
              fc.assert(
                fc.asyncProperty(cases, async (c) => {
                  tally.record(check(c, await send(url, c)))
                }),
                { numRuns: runs }
              )
            ).pipe(Effect.withSpan(name))
            assert.isNull(running.child.exitCode, `the service exited during ${name}`)
            const ready = yield* json(`${url}/health/ready`)
            assert.strictEqual(ready.status, 200, `not ready after ${name}: ${JSON.stringify(ready.body)}`)
          })

        yield* batch("POST /v1/runs", startRun, 500)
        yield* batch("POST /v1/tools/execute", execute, 600)
        yield* batch("run ids", byId("fuzz-1"), 400)
        yield* batch("any route", anyRoute, 400)
        yield* batch("extremes", extremes, 60)

        // client errors are not the service's: nothing was logged as an ERROR (a defect is)
        const errors = running.output().split("\n").filter((line) => line.includes("ERROR"))
        assert.deepStrictEqual(errors, [])
        assert.isAtLeast(tally.cases(), 1_000)
      }).pipe(Effect.scoped),
    600_000
  )
})
