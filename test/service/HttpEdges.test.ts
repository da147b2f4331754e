/**
 * The HTTP boundary's edges, each found by the fuzz suite (test/fuzz/HttpBodies.test.ts)
 * and kept here as a fast regression on one service: what a client gets wrong is a 4xx
 * with a JSON body naming the problem, never a 500, an empty reply, or an ERROR in the log.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import type { Running } from "../support/Service.js"
import { json, post, scratchDir, service, until } from "../support/Service.js"

class Service extends Context.Tag("test/Service")<Service, Running>() {}

type Reply = Effect.Effect.Success<ReturnType<typeof json>>

const jsonBody = "application/json"

const send = (url: string, method: string, body?: string, headers: Record<string, string> = {}) =>
  json(url, { method, headers: { "content-type": jsonBody, ...headers }, ...(body === undefined ? {} : { body }) })

/** A 4xx whose JSON body has the tag and a message that mentions `mentions`. */
const assertRefused = (reply: Reply, status: number, tag: string, mentions: string) => {
  assert.strictEqual(reply.status, status, JSON.stringify(reply.body))
  assert.strictEqual(reply.headers.get("content-type"), jsonBody)
  const body = reply.body as { _tag?: unknown; message?: unknown }
  assert.strictEqual(body._tag, tag)
  assert.include(String(body.message), mentions)
}

/**
 * Sends `text` as is over a new connection and reads until the server closes it, or the
 * client hangs up after `hangUpAfterMs`, or gives up after `waitMs`.
 */
const raw = (url: string, text: string, options: { readonly waitMs: number; readonly hangUpAfterMs?: number }) =>
  Effect.scoped(Effect.gen(function*() {
    const { hostname, port } = new URL(url)
    const started = performance.now()
    const received = { text: "" }
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const socket = net.connect(Number(port), hostname)
        socket.on("data", (chunk) => {
          received.text += chunk.toString()
        })
        socket.write(text)
        return socket
      }),
      (socket) => Effect.sync(() => socket.destroy())
    )
    const closedByServer = Effect.async<"server">((resume) => {
      socket.once("close", () => resume(Effect.succeed("server")))
      socket.once("error", () => resume(Effect.succeed("server")))
    })
    const closedBy = yield* Effect.raceFirst(
      closedByServer,
      options.hangUpAfterMs === undefined
        ? Effect.as(Effect.sleep(options.waitMs), "timeout" as const)
        : Effect.as(Effect.sleep(options.hangUpAfterMs), "client" as const)
    )
    return { reply: received.text, closedBy, ms: performance.now() - started }
  }))

/** The status and JSON body of a raw HTTP reply. */
const parsed = (reply: string) => {
  const [head = "", body = ""] = reply.split("\r\n\r\n")
  return { status: Number(head.split(" ")[1]), head, body: JSON.parse(body) as { _tag: string; message: string } }
}

/** A run that has finished, under a thread id of the test's choosing. */
const finishedRun = (url: string, threadId: string) =>
  Effect.gen(function*() {
    const started = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi", threadId })
    assert.strictEqual(started.status, 202, JSON.stringify(started.body))
    yield* until(json(`${url}/v1/runs/${threadId}`), (r) => (r.body as { status: string }).status !== "running")
  })

const maxBodyBytes = 1024 * 1024

layer(
  Layer.scoped(
    Service,
    service({
      LOOM_DATA_DIR: scratchDir(),
      LOOM_REQUEST_TIMEOUT: "1 second",
      LOOM_MAX_BODY_BYTES: String(maxBodyBytes)
    })
  ),
  {
    excludeTestServices: true,
    timeout: "60 seconds"
  }
)(
  "the HTTP boundary's edges",
  (it) => {
    it.effect("JSON that does not parse is a 400 naming the problem (it was an empty 400)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        assertRefused(yield* send(`${url}/v1/runs`, "POST", "{\"kind\": "), 400, "MalformedBody", "not valid JSON")
        assertRefused(yield* send(`${url}/v1/tools/execute`, "POST", "{bad"), 400, "MalformedBody", "not valid JSON")
      }))

    it.effect("400,000 nested arrays are a 400 (formatting the decode error overflowed the stack: a 500)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const deep = "[".repeat(400_000) + "]".repeat(400_000)
        assertRefused(yield* send(`${url}/v1/runs`, "POST", deep), 400, "MalformedBody", "nests deeper")
        assertRefused(yield* send(`${url}/v1/tools/execute`, "POST", deep), 400, "MalformedBody", "nests deeper")
      }))

    it.effect("a body of another media type is a 415 (multipart without a boundary crashed the parser: a 500)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const multipart = yield* send(`${url}/v1/runs`, "POST", "x", { "content-type": "multipart/form-data" })
        assertRefused(multipart, 415, "UnsupportedMediaType", "application/json")
      }))

    it.effect("a known path with another method is a 405 with Allow (it was an empty 404); an unknown one a 404", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const wrong = [["DELETE", "/v1/runs", "GET, POST"], ["PUT", "/v1/tools", "GET"], [
          "GET",
          "/v1/tools/execute",
          "POST"
        ]] as const
        for (const [method, path, allow] of wrong) {
          const reply = yield* send(`${url}${path}`, method, method === "GET" ? undefined : "{}")
          assertRefused(reply, 405, "MethodNotAllowed", method)
          assert.strictEqual(reply.headers.get("allow"), allow)
        }
        assertRefused(yield* send(`${url}/no/such/path?q=1`, "GET"), 404, "NotFound", "/no/such/path")
        // the router itself refuses a path parameter over 100 characters: a 404 too, not a 405
        assertRefused(yield* send(`${url}/v1/runs/${"x".repeat(200)}`, "GET"), 404, "NotFound", "no route")
      }))

    it.effect("thread ids outside the documented pattern are a 400 naming threadId; generated UUIDs fit it", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        for (const threadId of ["   ", "a\r\nb", "x".repeat(129), "../../etc/passwd", "-leading", "a b", "naïve"]) {
          const reply = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi", threadId })
          assertRefused(reply, 400, "HttpApiDecodeError", "threadId")
        }
        yield* finishedRun(url, "doc-42:v1.x_y")
        const generated = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi" })
        assert.match((generated.body as { threadId: string }).threadId, /^[0-9a-f-]{36}$/)
      }))

    it.effect("path ids no run can have are unknown runs, on every route that takes one", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const ids = ["%20", "..%2F..%2Fetc%2Fpasswd", "'%3B%20DROP%20TABLE%20runs%3B--", "%E2%9C%93", "-x", "a%0D%0Ab"]
        for (const id of ids) {
          for (const [method, path] of [["GET", ""], ["GET", "/events"], ["POST", "/cancel"]] as const) {
            const reply = yield* send(`${url}/v1/runs/${id}${path}`, method)
            assert.strictEqual(reply.status, 404, `${method} ${id}${path}`)
            assert.strictEqual((reply.body as { _tag: string })._tag, "RunNotFound")
          }
        }
      }))

    it.effect("a Last-Event-ID that is not an event's seq is a 400 (it replayed everything)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        yield* finishedRun(url, "replayed")
        for (const garbage of ["1e400", "12345678901234567890", "0x10", "-1", "abc", "1.5", ""]) {
          const reply = yield* send(`${url}/v1/runs/replayed/events`, "GET", undefined, { "last-event-id": garbage })
          assertRefused(reply, 400, "HttpApiDecodeError", "last-event-id")
        }
        const resumed = yield* Effect.promise(async () => {
          const response = await fetch(`${url}/v1/runs/replayed/events`, { headers: { "last-event-id": "1" } })
          return { status: response.status, text: await response.text() }
        })
        assert.strictEqual(resumed.status, 200)
        assert.notMatch(resumed.text, /^id: 1$/m)
        assert.match(resumed.text, /^id: 2$/m)
      }))

    it.effect("a chunked body over the limit is a 413 as JSON (the connection was reset)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const body = new TextEncoder().encode(
          JSON.stringify({ kind: "agent", name: "assistant", input: "x".repeat(maxBodyBytes) })
        )
        for (const path of ["/v1/runs", "/v1/tools/execute"]) {
          const reply = yield* json(`${url}${path}`, {
            method: "POST",
            headers: { "content-type": jsonBody },
            body: new Blob([body]).stream(),
            duplex: "half"
          } as RequestInit)
          assertRefused(reply, 413, "PayloadTooLarge", String(maxBodyBytes))
        }
        // the same by its Content-Length, and a chunked body within the limit goes through
        assertRefused(
          yield* send(`${url}/v1/runs`, "POST", new TextDecoder().decode(body)),
          413,
          "PayloadTooLarge",
          "over"
        )
        const small = yield* json(`${url}/v1/tools/execute`, {
          method: "POST",
          headers: { "content-type": jsonBody },
          body: new Blob([JSON.stringify({ mode: "batch", tool: "weather", inputs: [{ city: "Oslo" }] })]).stream(),
          duplex: "half"
        } as RequestInit)
        assert.strictEqual(small.status, 200, JSON.stringify(small.body))
      }))

    it.effect("a body shorter than its Content-Length is a 408 as JSON after LOOM_REQUEST_TIMEOUT (it hung)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const { closedBy, ms, reply } = yield* raw(
          url,
          "POST /v1/runs HTTP/1.1\r\nHost: loom\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\":",
          { waitMs: 10_000 }
        )
        assert.strictEqual(closedBy, "server", reply)
        assert.isBelow(ms, 5_000)
        const { body, head, status } = parsed(reply)
        assert.strictEqual(status, 408, reply)
        assert.match(head, /content-type: application\/json/i)
        assert.strictEqual(body._tag, "RequestTimeout")
        assert.include(body.message, "LOOM_REQUEST_TIMEOUT")
      }))

    it.effect("fields the OpenAPI document does not list are a 400 naming them (they were ignored)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const run = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi", priority: 1 })
        assertRefused(run, 400, "HttpApiDecodeError", "priority")
        const execute = yield* post(`${url}/v1/tools/execute`, {
          mode: "parallel",
          calls: [{ id: "1", tool: "weather", input: { city: "Oslo" }, retries: 3 }]
        })
        assertRefused(execute, 400, "HttpApiDecodeError", "retries")
        const batch = yield* post(`${url}/v1/tools/execute`, { mode: "batch", tool: "weather", inputs: [], calls: [] })
        assertRefused(batch, 400, "HttpApiDecodeError", "calls")
      }))

    it.effect("two calls with one id in a request are a 400 naming the second (both ran)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const reply = yield* post(`${url}/v1/tools/execute`, {
          mode: "parallel",
          calls: [
            { id: "a", tool: "weather", input: { city: "Oslo" } },
            { id: "b", tool: "weather", input: { city: "Rome" } },
            { id: "a", tool: "weather", input: { city: "Lima" } }
          ]
        })
        assertRefused(reply, 400, "HttpApiDecodeError", "call id \"a\" is used twice")
        const issues = (reply.body as { issues: ReadonlyArray<{ path: ReadonlyArray<unknown> }> }).issues
        assert.deepInclude(issues.map((issue) => issue.path), ["calls", 2, "id"])
      }))

    it.effect("a mode that is not text is a 400 naming mode (Effect's union lookup threw on it: a 500)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        for (const mode of [[{ toString: 0 }], { valueOf: 1 }, 7]) {
          const reply = yield* post(`${url}/v1/tools/execute`, { mode })
          assertRefused(reply, 400, "HttpApiDecodeError", "Expected string")
          const issues = (reply.body as { issues: ReadonlyArray<{ path: ReadonlyArray<unknown> }> }).issues
          assert.deepStrictEqual([...new Set(issues.map((issue) => issue.path.join(".")))], ["mode"])
        }
      }))

    it.effect("search with limit -5 is refused naming limit, in the call's result (it answered as if -5 were fine)", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const reply = yield* post(`${url}/v1/tools/execute`, {
          mode: "parallel",
          calls: [{ id: "1", tool: "search", input: { query: "effect", limit: -5 } }, {
            id: "2",
            tool: "search",
            input: { query: "effect", limit: 2 }
          }]
        })
        assert.strictEqual(reply.status, 200)
        const [bad, good] = (reply.body as {
          results: ReadonlyArray<{ status: string; error?: { _tag: string; message: string } }>
        }).results
        assert.strictEqual(bad?.status, "rejected")
        assert.strictEqual(bad?.error?._tag, "InvalidToolInput")
        assert.include(bad?.error?.message, "limit")
        assert.strictEqual(good?.status, "succeeded")
      }))

    it.effect("a client that hangs up mid-body or mid-stream is no error of the service's", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const cut = yield* raw(
          url,
          "POST /v1/runs HTTP/1.1\r\nHost: loom\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
          { waitMs: 5_000, hangUpAfterMs: 200 }
        )
        assert.strictEqual(cut.closedBy, "client")
        yield* finishedRun(url, "hung-up")
        const sse = yield* raw(url, "GET /v1/runs/hung-up/events HTTP/1.1\r\nHost: loom\r\n\r\n", {
          waitMs: 5_000,
          hangUpAfterMs: 50
        })
        assert.include(sse.reply, "200 OK")
        // the last test of this file checks that the log has no ERROR
      }))

    it.effect("OPTIONS on a known path is a 405 with Allow, not an empty 404", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        const reply = yield* send(`${url}/v1/runs`, "OPTIONS")
        assertRefused(reply, 405, "MethodNotAllowed", "OPTIONS")
        assert.strictEqual(reply.headers.get("allow"), "GET, POST")
      }))

    it.effect("the OpenAPI document: Loom's title and version, every operation described, its errors and headers", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        type Operation = {
          summary?: string
          description?: string
          security?: unknown
          parameters?: ReadonlyArray<{ in: string; name: string; description?: string }>
          responses: Record<string, { headers?: Record<string, unknown> }>
        }
        const spec = (yield* json(`${url}/openapi.json`)).body as {
          info: { title: string; version: string }
          security?: unknown
          paths: Record<string, Record<string, Operation>>
          components: { schemas: Record<string, { title?: string }>; securitySchemes?: unknown }
        }
        const pkg = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
          version: string
        }
        assert.deepStrictEqual([spec.info.title, spec.info.version], ["Loom", pkg.version])
        // no auth, so no security section (an empty one put an Authorize button on /docs)
        assert.isUndefined(spec.security)
        assert.isUndefined(spec.components.securitySchemes)
        const operations = Object.entries(spec.paths).flatMap(([path, ops]) =>
          Object.entries(ops).map(([method, op]) => ({ where: `${method} ${path}`, op }))
        )
        // the ten of the service before humans in the loop, and resume, history and fork
        assert.strictEqual(operations.length, 13)
        for (const { op, where } of operations) {
          assert.isAbove(op.summary?.length ?? 0, 0, `${where} has no summary`)
          assert.isAbove(op.description?.length ?? 0, 0, `${where} has no description`)
          assert.isUndefined(op.security, where)
          assert.include(Object.keys(op.responses), "405", where)
          assert.property(op.responses["405"]?.headers ?? {}, "Allow", where)
        }
        const op = (method: string, path: string) => spec.paths[path]![method]!
        assert.includeMembers(Object.keys(op("post", "/v1/runs").responses), [
          "202",
          "400",
          "408",
          "409",
          "413",
          "415",
          "429"
        ])
        assert.property(op("post", "/v1/runs").responses["429"]?.headers ?? {}, "Retry-After")
        assert.includeMembers(Object.keys(op("post", "/v1/runs/{id}/resume").responses), ["200", "400", "404", "409"])
        assert.includeMembers(Object.keys(op("get", "/v1/runs/{id}/history").responses), ["200", "404"])
        assert.includeMembers(Object.keys(op("post", "/v1/runs/{id}/fork").responses), [
          "202",
          "400",
          "404",
          "409",
          "429"
        ])
        assert.includeMembers(Object.keys(op("post", "/v1/tools/execute").responses), [
          "200",
          "400",
          "408",
          "413",
          "415"
        ])
        assert.includeMembers(Object.keys(op("get", "/v1/runs/{id}").responses), ["404"])
        assert.includeMembers(Object.keys(op("get", "/health/ready").responses), ["200", "503"])
        const lastEventId = op("get", "/v1/runs/{id}/events").parameters?.find((p) => p.in === "header")
        assert.strictEqual(lastEventId?.name, "last-event-id")
        assert.include(lastEventId?.description, "non-negative decimal integer")
        // every schema is titled by its own name (Int and NonNegativeInt were both "int")
        const titles = Object.entries(spec.components.schemas).map(([name, schema]) => [name, schema.title])
        assert.deepStrictEqual(titles, titles.map(([name]) => [name, name]))
        const docs = yield* Effect.promise(() => fetch(`${url}/docs`).then((r) => r.text()))
        assert.include(docs, "<title>Loom Documentation</title>")
      }))

    it.effect("paths no route has are one metric series, whatever was asked", () =>
      Effect.gen(function*() {
        const { url } = yield* Service
        yield* send(`${url}/made/up/path?x=1`, "GET")
        const metrics = String((yield* json(`${url}/metrics`)).body)
        assert.notInclude(metrics, "/made/up")
        assert.match(metrics, /route="unknown"/)
      }))

    it.effect("none of that was logged as an ERROR, and the service is ready", () =>
      Effect.gen(function*() {
        const running = yield* Service
        assert.strictEqual((yield* json(`${running.url}/health/ready`)).status, 200)
        assert.notInclude(running.output(), "ERROR")
      }))
  }
)
