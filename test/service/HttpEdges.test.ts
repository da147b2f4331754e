/**
 * The HTTP boundary's edges, each found by the fuzz suite (test/fuzz/HttpBodies.test.ts)
 * and kept here as a fast regression on one service: what a client gets wrong is a 4xx
 * with a JSON body naming the problem, never a 500, an empty reply, or an ERROR in the log.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
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

/** A run that has finished, under a thread id of the test's choosing. */
const finishedRun = (url: string, threadId: string) =>
  Effect.gen(function*() {
    const started = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi", threadId })
    assert.strictEqual(started.status, 202, JSON.stringify(started.body))
    yield* until(json(`${url}/v1/runs/${threadId}`), (r) => (r.body as { status: string }).status !== "running")
  })

layer(Layer.scoped(Service, service({ LOOM_DATA_DIR: scratchDir() })), {
  excludeTestServices: true,
  timeout: "60 seconds"
})(
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
