/**
 * `npm start` under a process manager: the manager signals the process it started
 * (npm) and nothing else. The whole service must end, exit 0 and free its port within
 * LOOM_SHUTDOWN_TIMEOUT, leaving no process behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { isAlive } from "../support/Pids.js"
import { exited, scratchDir, until } from "../support/Service.js"

const root = new URL("../..", import.meta.url).pathname

/** Every process below `pid`, read from /proc. */
const descendants = (pid: number): Array<number> => {
  const children = new Map<number, Array<number>>()
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)])
    } catch {
      // the process ended while we looked
    }
  }
  const found: Array<number> = []
  const visit = (at: number) => {
    for (const child of children.get(at) ?? []) {
      found.push(child)
      visit(child)
    }
  }
  visit(pid)
  return found
}

const commandLine = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")
  } catch {
    return ""
  }
}

/** Whether something accepts connections on the port. */
const listening = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })

/**
 * `npm start` in the project, until it says where it listens. On release the npm
 * process and every one below it are ended by their PIDs.
 */
const npmStart = (dataDir: string) =>
  Effect.acquireRelease(
    Effect.async<{
      readonly npm: ChildProcess
      readonly tree: ReadonlyArray<number>
      readonly port: number
      readonly output: () => string
    }>((resume) => {
      const npm = spawn("npm", ["start"], {
        cwd: root,
        env: {
          PATH: process.env["PATH"] ?? "",
          HOME: process.env["HOME"] ?? "/root",
          LOOM_PORT: "0",
          LOOM_LLM: "simulator",
          LOOM_DATA_DIR: dataDir,
          LOOM_SHUTDOWN_TIMEOUT: "10 seconds"
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let text = ""
      const onData = (chunk: Buffer) => {
        text += chunk.toString()
        const found = /Loom listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text)
        if (found) {
          resume(Effect.succeed({ npm, tree: descendants(npm.pid!), port: Number(found[1]), output: () => text }))
        }
      }
      npm.stdout.on("data", onData)
      npm.stderr.on("data", onData)
    }).pipe(Effect.timeout("90 seconds"), Effect.orDie),
    // what was below npm when it listened too: an orphan is no longer below it
    ({ npm, tree }) =>
      Effect.sync(() => {
        for (const pid of new Set([npm.pid!, ...tree, ...descendants(npm.pid!)])) {
          if (isAlive(pid)) process.kill(pid, "SIGKILL")
        }
      })
  )

describe("npm start under a process manager", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it.scoped(
      `${signal} to npm alone ends the service, exit 0, port closed, no process left`,
      () =>
        Effect.gen(function*() {
          const dataDir = yield* Effect.acquireRelease(
            Effect.sync(scratchDir),
            (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
          )
          const { npm, output, port, tree } = yield* npmStart(dataDir)
          assert.isTrue(tree.some((pid) => commandLine(pid).includes("dist/main.js")), `no node under npm: ${tree}`)
          assert.isTrue(yield* listening(port))

          process.kill(npm.pid!, signal)
          const code = yield* exited(npm).pipe(Effect.timeout("15 seconds"), Effect.orDie)
          assert.strictEqual(code, 0, output())
          // within LOOM_SHUTDOWN_TIMEOUT (10 s): every process is gone and the port is closed
          yield* until(Effect.sync(() => tree.filter(isAlive)), (alive) => alive.length === 0).pipe(
            Effect.timeout("10 seconds"),
            Effect.orDie
          )
          assert.isFalse(yield* listening(port))
        }),
      120_000
    )
  }
})
