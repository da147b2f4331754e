/**
 * A tiny hostile Ollama for fuzzing the LLM adapter: a node:http server on 127.0.0.1
 * (port 0, closed with its scope) that answers `/api/chat` (streamed or not),
 * `/api/embed` and `/api/tags` with whatever reply the test queued for that route:
 * any status, headers and bytes, a reply that never ends, or a socket cut mid-body.
 * With nothing queued it answers as a healthy Ollama with one model, `fuzz`.
 */
import { Effect } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export type Route = "chat" | "embed" | "tags"

export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** Written one after another (a streamed chat's NDJSON lines, or one body). */
  readonly chunks: ReadonlyArray<string | Uint8Array>
  /** `hang`: headers and chunks, then nothing more; `cut`: the socket is destroyed after the chunks. */
  readonly end?: "hang" | "cut"
}

export interface HostileOllama {
  readonly url: string
  /** Queues `reply` for the next request to `route`. */
  readonly next: (route: Route, reply: Reply) => void
  /** Drops every queued reply, so one case's leftovers do not answer the next. */
  readonly clear: () => void
  /** Requests each route has had. */
  readonly requests: (route: Route) => number
}

export const model = "fuzz"

const json = (value: unknown): Reply => ({
  status: 200,
  headers: { "content-type": "application/json" },
  chunks: [JSON.stringify(value)]
})

/** What a healthy Ollama would answer. */
const healthy = (route: Route, body: string): Reply => {
  switch (route) {
    case "tags":
      return json({ models: [{ name: `${model}:latest`, size: 1 }] })
    case "embed": {
      const input = (JSON.parse(body) as { input?: ReadonlyArray<string> }).input ?? []
      return json({ model, embeddings: input.map(() => [0.1, 0.2]) })
    }
    case "chat":
      return json({ model, message: { role: "assistant", content: "ok" }, done: true })
  }
}

const routeOf = (url: string | undefined): Route | undefined =>
  url === "/api/chat" ? "chat" : url === "/api/embed" ? "embed" : url === "/api/tags" ? "tags" : undefined

const answer = (response: Http.ServerResponse, reply: Reply) => {
  response.writeHead(reply.status, reply.headers)
  for (const chunk of reply.chunks) response.write(chunk)
  if (reply.end === "cut") response.socket?.destroy()
  else if (reply.end !== "hang") response.end()
}

export const make = Effect.acquireRelease(
  Effect.async<{ readonly server: Http.Server; readonly ollama: HostileOllama }>((resume) => {
    const queues = new Map<Route, Array<Reply>>()
    const counts = new Map<Route, number>()
    const server = Http.createServer((request, response) => {
      let body = ""
      request.on("data", (chunk: Buffer) => {
        body += chunk.toString()
      })
      request.on("end", () => {
        const route = routeOf(request.url)
        if (route === undefined) {
          response.writeHead(404, { "content-type": "application/json" }).end("{\"error\":\"no such route\"}")
          return
        }
        counts.set(route, (counts.get(route) ?? 0) + 1)
        answer(response, queues.get(route)?.shift() ?? healthy(route, body))
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({
        server,
        ollama: {
          url: `http://127.0.0.1:${port}`,
          next: (route, reply) => queues.set(route, [...(queues.get(route) ?? []), reply]),
          clear: () => queues.clear(),
          requests: (route) => counts.get(route) ?? 0
        }
      }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ ollama }) => ollama))
