/**
 * The `fetch` each ollama-js client is given: it goes through the host's shared undici
 * Agent (keep-alive, bounded sockets), carries the call's own AbortSignal (ollama-js has
 * no per-request signal), and checks the body on the way in, so malformed JSON or NDJSON
 * fails the call with the raw text instead of being skipped by the client, and an error
 * status fails it with an `ErrorReply` (ollama-js's own `ResponseError` is not exported,
 * so it could not be told apart from other failures without probing its fields).
 */
import type { Duration } from "effect"
import { Option, Schema } from "effect"
import type { Agent, Response as UndiciResponse } from "undici"
import { fetch as undiciFetch } from "undici"
import * as RetryAfter from "../resilience/RetryAfter.js"

/** A reply body that is not the JSON it claims to be. */
export class MalformedBody extends Error {
  constructor(readonly raw: string, readonly kind: "JSON" | "NDJSON") {
    super(`malformed ${kind} from the server`)
    this.name = "MalformedBody"
  }
}

/** A reply with an error status, with the server's own message and, on a 429 or 503, its `Retry-After`. */
export class ErrorReply extends Error {
  constructor(readonly status: number, message: string, readonly retryAfter?: Duration.Duration) {
    super(message)
    this.name = "ErrorReply"
  }
}

/** Ollama's error body: `{"error": "..."}`. */
const ErrorBody = Schema.parseJson(Schema.Struct({ error: Schema.NonEmptyString }))

/** The statuses whose `Retry-After` says when to come back (on a 3xx it is a redirect's, not a retry's). */
const retryStatuses = new Set([429, 503])

/** The reply's `Retry-After`, on a status that has one; `now` is the caller's clock, in epoch millis. */
const retryAfterOf = (response: UndiciResponse, now: number): Duration.Duration | undefined => {
  const header = response.headers.get("retry-after")
  if (header === null || !retryStatuses.has(response.status)) return undefined
  return Option.getOrUndefined(RetryAfter.parse(header, now, response.headers.get("date") ?? undefined))
}

/** The message of an error reply, read as ollama-js reads it: the JSON `error` field, else the text, else the status. */
const errorReply = async (response: UndiciResponse, now: number): Promise<ErrorReply> => {
  const text = await response.text().catch(() => "")
  const message = Schema.decodeUnknownOption(ErrorBody)(text).pipe(
    Option.map((body) => body.error),
    Option.orElse(() => text.length > 0 ? Option.some(text) : Option.none()),
    Option.getOrElse(() => `Error ${response.status}: ${response.statusText}`)
  )
  return new ErrorReply(response.status, message, retryAfterOf(response, now))
}

/** Passes NDJSON through line by line, failing the stream at the first line that does not parse. */
const checkedNdjson = (body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> => {
  const decoder = new TextDecoder()
  let pending = ""
  const check = (text: string, controller: TransformStreamDefaultController<Uint8Array>) => {
    for (const line of text.split("\n")) {
      if (line.trim().length === 0) continue
      try {
        JSON.parse(line)
      } catch {
        controller.error(new MalformedBody(line, "NDJSON"))
        return false
      }
    }
    return true
  }
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        pending += decoder.decode(chunk, { stream: true })
        const end = pending.lastIndexOf("\n")
        if (end >= 0) {
          const complete = pending.slice(0, end)
          pending = pending.slice(end + 1)
          if (!check(complete, controller)) return
        }
        controller.enqueue(chunk)
      },
      flush(controller) {
        check(pending + decoder.decode(), controller)
      }
    })
  )
}

/** A `fetch` over `agent`, aborted by `signal`, with bodies checked; `now` reads the caller's `Clock`. */
export const make = (agent: Agent, signal: AbortSignal, now: () => number): typeof globalThis.fetch => {
  const bound = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const response = await undiciFetch(input as string, {
      ...(init as Record<string, unknown>),
      dispatcher: agent,
      signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal
    })
    if (!response.ok) throw await errorReply(response, now())
    const type = response.headers.get("content-type") ?? ""
    const headers = new Headers(response.headers as unknown as Headers)
    if (type.includes("application/x-ndjson") && response.body) {
      return new Response(checkedNdjson(response.body as unknown as ReadableStream<Uint8Array>), {
        status: response.status,
        statusText: response.statusText,
        headers
      })
    }
    if (type.includes("application/json")) {
      const text = await response.text()
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        throw new MalformedBody(text.slice(0, 4096), "JSON")
      }
      // Parsed once here; the client's own `json()` gets the value instead of parsing again.
      const checked = new Response(text, { status: response.status, statusText: response.statusText, headers })
      return Object.assign(checked, { json: () => Promise.resolve(parsed) })
    }
    return response as unknown as Response
  }
  return bound as typeof globalThis.fetch
}
