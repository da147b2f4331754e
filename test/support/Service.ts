/** Starts the real service (`src/main.ts`) in a child process on a free loopback port, and stops it. */
import { Data, Effect, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"

export interface Running {
  readonly url: string
  readonly child: ChildProcess
  readonly output: () => string
}

const PATH = process.env["PATH"] ?? ""
import { scratchDir as scratch } from "./Scratch.js"

const main = new URL("../../src/main.ts", import.meta.url).pathname

export const scratchDir = () => scratch("loom-svc-")

/** Spawns the service with `env` (on top of PATH and a port of 0) and waits for it to listen. */
/** The service stopped before it listened; `message` holds its output. */
export class ServiceFailed extends Data.TaggedError("ServiceFailed")<{ readonly message: string }> {}

export const start = (env: Record<string, string>) =>
  Effect.async<Running, ServiceFailed>((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", main], {
      env: { PATH, LOOM_PORT: "0", LOOM_LLM: "simulator", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let text = ""
    const output = () => text
    const onData = (chunk: Buffer) => {
      text += chunk.toString()
      const found = /Loom listening on (http:\/\/[^\s]+)/.exec(text)
      if (found) resume(Effect.succeed({ url: found[1]!, child, output }))
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    child.on("exit", (code) =>
      resume(Effect.fail(new ServiceFailed({ message: `service exited with ${code} before listening:\n${text}` }))))
  }).pipe(Effect.timeout("60 seconds"))

/** The exit code once the process is gone. */
export const exited = (child: ChildProcess) =>
  Effect.async<number | null>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

/** The service, stopped with SIGTERM when the scope closes. */
export const service = (env: Record<string, string>) =>
  Effect.acquireRelease(start(env), ({ child }) =>
    Effect.suspend(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
      return exited(child)
    }).pipe(Effect.timeout("20 seconds"), Effect.ignore))

export const json = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, headers: response.headers, body }
  })

/** A POST of `body` as JSON; with no body, an empty POST (no content type). */
export const post = (url: string, body?: unknown) =>
  json(url, {
    method: "POST",
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  })

/** Polls `check` on the live clock until it holds. */
export const until = <A>(effect: Effect.Effect<A>, check: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(check, () => "not yet"),
    Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.intersect(Schedule.recurs(300)))),
    Effect.orDie
  )
