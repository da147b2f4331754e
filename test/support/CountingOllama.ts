/**
 * The Ollama simulator in the test process, behind a counting front door: a node:http
 * server on 127.0.0.1 that hands each chat request's body to `onChat` as it arrives (before
 * any latency, so a request cut off by a crash is counted too), then forwards the request
 * to the simulator and its answer back. Requests whose client goes away are aborted on the
 * way to the simulator. Both servers close with the scope.
 */
import { Effect, Random } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { prompts } from "../../src/application/workflows/coding/CodingWorkflow.js"
import type { Faults, SimChatRequest, SimReply } from "../../src/infrastructure/ollama/OllamaSimulator.js"
import * as OllamaSimulator from "../../src/infrastructure/ollama/OllamaSimulator.js"

export interface Options {
  readonly script: (request: SimChatRequest) => SimReply
  /** Faults of the simulator's chat route (a latency, typically). */
  readonly chat?: Faults
  /** Seeds the simulator's random latencies (1 by default). */
  readonly seed?: number | string
  /** Called with each chat request's JSON body as it arrives. */
  readonly onChat: (body: unknown) => void
}

export interface CountingOllama {
  /** The front door: what the service's OLLAMA_HOSTS names. */
  readonly url: string
  readonly simulator: OllamaSimulator.OllamaSimulator
}

/** The node of a coding run a chat is for, by its system prompt (`runner` runs the tests and asks no model). */
export const codingRoles: ReadonlyMap<string, string> = new Map<string, string>([
  [prompts.intent, "intent"],
  [prompts.planner, "planner"],
  [prompts.testWriter, "test_writer"],
  [prompts.coder, "coder"],
  [prompts.reviewer, "reviewer"]
])

/** The task of run `label`: the user message of every chat of that run carries it. */
export const task = (label: string) => `write add(a, b) — run ${label}`

/** The label of the run a chat's user message is for (see `task`). */
export const labelOf = (user: string) => /— run ([\w-]+)/.exec(user)?.[1]

/** The system prompt and the last user message of a chat request's body. */
export const chatParts = (body: unknown): { readonly system: string; readonly user: string } => {
  const messages = typeof body === "object" && body !== null && "messages" in body && Array.isArray(body.messages)
    ? body.messages as ReadonlyArray<{ readonly role?: unknown; readonly content?: unknown }>
    : []
  const text = (role: string) =>
    [...messages].reverse().find((m) => m.role === role && typeof m.content === "string")?.content as
      | string
      | undefined
  return { system: text("system") ?? "", user: text("user") ?? "" }
}

/**
 * A node:http server on 127.0.0.1 in front of the simulator at `target`: hands each chat
 * request's body to `onChat` as it arrives, then forwards the request and the answer.
 * Requests whose client goes away are aborted on the way to the simulator.
 */
const frontDoor = (target: string, onChat: (body: unknown) => void) =>
  Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const body = Buffer.concat(chunks)
          if (request.method === "POST" && request.url?.split("?")[0] === "/api/chat") {
            try {
              onChat(JSON.parse(body.toString("utf8")))
            } catch {
              // not JSON: the simulator answers 400, nothing to count
            }
          }
          const abort = new AbortController()
          response.on("close", () => abort.abort())
          fetch(`${target}${request.url ?? "/"}`, {
            method: request.method ?? "GET",
            headers: { "content-type": request.headers["content-type"] ?? "application/json" },
            ...(request.method === "GET" || request.method === "HEAD" ? {} : { body }),
            signal: abort.signal
          }).then(async (reply) => {
            const bytes = Buffer.from(await reply.arrayBuffer())
            response.writeHead(reply.status, {
              "content-type": reply.headers.get("content-type") ?? "application/json"
            })
            response.end(bytes)
          }).catch(() => {
            response.destroy()
          })
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

/** The simulator answering `script`, behind a front door that counts its chats. */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const simulator = yield* OllamaSimulator.make({ script: options.script }).pipe(
      Effect.withRandom(Random.make(options.seed ?? 1))
    )
    if (options.chat !== undefined) simulator.setFaults("chat", options.chat)
    const server = yield* frontDoor(simulator.url, options.onChat)
    const port = (server.address() as AddressInfo).port
    return { url: `http://127.0.0.1:${port}`, simulator } satisfies CountingOllama
  })
