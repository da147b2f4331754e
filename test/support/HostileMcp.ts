/**
 * A tiny hostile MCP server for fuzzing Loom's MCP client: one streamable-HTTP endpoint
 * on 127.0.0.1 (port 0, closed with its scope) that answers `initialize` properly, so the
 * SDK client connects and stays connected, and then answers `tools/list` and
 * `tools/call` with whatever the test queued for that method, given the request's id:
 * any status, content type and bytes, JSON-RPC results and errors of any shape, replies
 * with the wrong id, or none at all. With nothing queued it answers as a healthy server
 * with one tool, `echo`.
 */
import { Effect } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export type Method = "tools/list" | "tools/call"

export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | Uint8Array
  /** `hang`: the headers and body, then nothing more (the response never ends). */
  readonly end?: "hang"
}

/** The reply to a request with JSON-RPC id `id`. */
export type Answer = (id: unknown) => Reply

export interface HostileMcp {
  readonly url: string
  /** Queues `answer` for the next request of `method`. */
  readonly next: (method: Method, answer: Answer) => void
  /** Drops every queued answer, so one case's leftovers do not answer the next. */
  readonly clear: () => void
  /** Requests of `method` so far. */
  readonly requests: (method: Method) => number
  /** `initialize` requests so far: more than one means the client reconnected. */
  readonly sessions: () => number
}

export const tool = "echo"

/** A JSON reply holding `message` (a JSON-RPC response, or anything else). */
export const json = (message: unknown, status = 200): Reply => ({
  status,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(message)
})

export const result = (id: unknown, value: unknown): Reply => json({ jsonrpc: "2.0", id, result: value })

const healthy = (method: Method): Answer => (id) =>
  method === "tools/list"
    ? result(id, { tools: [{ name: tool, description: "echoes", inputSchema: { type: "object" } }] })
    : result(id, { content: [{ type: "text", text: "ok" }] })

interface Message {
  readonly id?: unknown
  readonly method?: unknown
  readonly params?: { readonly protocolVersion?: unknown }
}

const parse = (body: string): Message | undefined => {
  try {
    const value: unknown = JSON.parse(body)
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : undefined
  } catch {
    return undefined
  }
}

const send = (response: Http.ServerResponse, reply: Reply) => {
  response.writeHead(reply.status, reply.headers)
  response.write(reply.body)
  if (reply.end !== "hang") response.end()
}

export const make = Effect.acquireRelease(
  Effect.async<{ readonly server: Http.Server; readonly mcp: HostileMcp }>((resume) => {
    const queues = new Map<Method, Array<Answer>>()
    const counts = new Map<string, number>()
    const count = (name: string) => counts.set(name, (counts.get(name) ?? 0) + 1)
    const server = Http.createServer((request, response) => {
      // no server-to-client stream: the SDK takes a 405 on GET as "not offered"
      if (request.method !== "POST") {
        response.writeHead(405).end()
        return
      }
      let body = ""
      request.on("data", (chunk: Buffer) => {
        body += chunk.toString()
      })
      request.on("end", () => {
        const message = parse(body)
        const method = message?.method
        if (method === "initialize") {
          count("initialize")
          send(
            response,
            result(message?.id, {
              protocolVersion: message?.params?.protocolVersion ?? "2025-06-18",
              capabilities: { tools: { listChanged: true } },
              serverInfo: { name: "hostile", version: "0.0.0" }
            })
          )
        } else if (method === "tools/list" || method === "tools/call") {
          count(method)
          send(response, (queues.get(method)?.shift() ?? healthy(method))(message?.id))
        } else if (message !== undefined && message.id === undefined) {
          response.writeHead(202).end() // a notification
        } else {
          send(response, json({ jsonrpc: "2.0", id: message?.id ?? null, error: { code: -32601, message: "no" } }))
        }
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({
        server,
        mcp: {
          url: `http://127.0.0.1:${port}/mcp`,
          next: (method, answer) => queues.set(method, [...(queues.get(method) ?? []), answer]),
          clear: () => queues.clear(),
          requests: (method) => counts.get(method) ?? 0,
          sessions: () => counts.get("initialize") ?? 0
        }
      }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ mcp }) => mcp))
