/**
 * The HTTP boundary's edges, each found by the fuzz suite (test/fuzz/HttpBodies.test.ts)
 * and kept here as a fast regression: what a client gets wrong is a 4xx with a JSON
 * body naming the problem, never a 500, an empty reply, or an ERROR in the log.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { json, post, scratchDir, service, until } from "../support/Service.js"

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

describe("the HTTP boundary's edges", () => {
  it.live(
    "bad bodies, methods, ids and Last-Event-IDs are 4xx with JSON bodies, logged below ERROR",
    () =>
      Effect.gen(function*() {
        const running = yield* service({ LOOM_DATA_DIR: scratchDir() })
        const { url } = running

        // JSON that does not parse: HttpApi answered an empty 400
        assertRefused(yield* send(`${url}/v1/runs`, "POST", "{\"kind\": "), 400, "MalformedBody", "not valid JSON")
        assertRefused(yield* send(`${url}/v1/tools/execute`, "POST", "{bad"), 400, "MalformedBody", "not valid JSON")
        // 400,000 nested arrays: formatting the decode error overflowed the stack (a 500)
        const deep = "[".repeat(400_000) + "]".repeat(400_000)
        assertRefused(yield* send(`${url}/v1/runs`, "POST", deep), 400, "MalformedBody", "nests deeper")
        assertRefused(yield* send(`${url}/v1/tools/execute`, "POST", deep), 400, "MalformedBody", "nests deeper")
        // multipart without a boundary crashed the parser (a 500); every non-JSON body is a 415 now
        const multipart = yield* send(`${url}/v1/runs`, "POST", "x", { "content-type": "multipart/form-data" })
        assertRefused(multipart, 415, "UnsupportedMediaType", "application/json")

        // a known path with another method: an empty 404 before
        for (
          const [method, path, allow] of [["DELETE", "/v1/runs", "GET, POST"], ["PUT", "/v1/tools", "GET"], [
            "GET",
            "/v1/tools/execute",
            "POST"
          ]] as const
        ) {
          const reply = yield* send(`${url}${path}`, method, method === "GET" ? undefined : "{}")
          assertRefused(reply, 405, "MethodNotAllowed", method)
          assert.strictEqual(reply.headers.get("allow"), allow)
        }
        assertRefused(yield* send(`${url}/no/such/path?q=1`, "GET"), 404, "NotFound", "/no/such/path")

        // thread ids outside the documented pattern
        for (const threadId of ["   ", "a\r\nb", "x".repeat(129), "../../etc/passwd", "-leading", "a b", "naïve"]) {
          const reply = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi", threadId })
          assertRefused(reply, 400, "HttpApiDecodeError", "threadId")
        }
        const named = yield* post(`${url}/v1/runs`, {
          kind: "agent",
          name: "assistant",
          input: "hi",
          threadId: "doc-42"
        })
        assert.strictEqual(named.status, 202)
        const threadId = (named.body as { threadId: string }).threadId
        yield* until(json(`${url}/v1/runs/${threadId}`), (r) => (r.body as { status: string }).status !== "running")
        const generated = yield* post(`${url}/v1/runs`, { kind: "agent", name: "assistant", input: "hi" })
        assert.match((generated.body as { threadId: string }).threadId, /^[0-9a-f-]{36}$/)

        // path ids no run can have are unknown runs (ThreadId.make threw on them once they had a pattern)
        const ids = ["%20", "..%2F..%2Fetc%2Fpasswd", "'%3B%20DROP%20TABLE%20runs%3B--", "%E2%9C%93", "-x", "a%0D%0Ab"]
        for (const id of ids) {
          for (const [method, path] of [["GET", ""], ["GET", "/events"], ["POST", "/cancel"]] as const) {
            const reply = yield* send(`${url}/v1/runs/${id}${path}`, method)
            assert.strictEqual(reply.status, 404, `${method} ${id}${path}`)
            assert.strictEqual((reply.body as { _tag: string })._tag, "RunNotFound")
          }
        }
        // the router itself refuses a path parameter over 100 characters: a 404 too, not a 405
        assertRefused(yield* send(`${url}/v1/runs/${"x".repeat(200)}`, "GET"), 404, "NotFound", "no route")

        // a Last-Event-ID that is not an event's seq was read as "replay everything"
        for (const garbage of ["1e400", "12345678901234567890", "0x10", "-1", "abc", "1.5", ""]) {
          const reply = yield* send(`${url}/v1/runs/${threadId}/events`, "GET", undefined, { "last-event-id": garbage })
          assertRefused(reply, 400, "HttpApiDecodeError", "last-event-id")
        }
        const resumed = yield* Effect.promise(async () => {
          const response = await fetch(`${url}/v1/runs/${threadId}/events`, { headers: { "last-event-id": "1" } })
          return { status: response.status, text: await response.text() }
        })
        assert.strictEqual(resumed.status, 200)
        assert.notMatch(resumed.text, /^id: 1$/m)
        assert.match(resumed.text, /^id: 2$/m)

        // paths no route has are one metric series, whatever was asked
        const metrics = String((yield* json(`${url}/metrics`)).body)
        assert.notInclude(metrics, "/no/such/path")
        assert.match(metrics, /route="unknown"/)

        assert.strictEqual((yield* json(`${url}/health/ready`)).status, 200)
        assert.notInclude(running.output(), "ERROR")
      }).pipe(Effect.scoped),
    120_000
  )
})
