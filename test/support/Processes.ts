/**
 * Loom processes a test starts (the service, a CLI command), each killed by its pid when
 * the test's scope closes, whatever happened, together with anything it started itself
 * (the coding workflow's test runs). `crash` is a kill -9 of that whole tree, as when a
 * machine or a container dies.
 */
import { type Duration, Effect, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const PATH = process.env["PATH"] ?? ""
const root = new URL("../..", import.meta.url).pathname
const loader = path.join(root, "node_modules/tsx/dist/loader.mjs")
const main = path.join(root, "src/main.ts")

export interface Proc {
  readonly child: ChildProcess
  readonly pid: number
  /** stdout and stderr so far, interleaved. */
  readonly output: () => string
  readonly stdout: () => string
  readonly stderr: () => string
}

/** A temporary `loom-` directory, removed with everything in it when the scope closes. */
export const tempDir = (prefix = "loom-durable-") =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** Whether the process has exited (or a signal ended it). */
export const gone = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** The exit code once the process is gone (null when a signal ended it). */
export const exited = (child: ChildProcess) =>
  Effect.async<number | null>((resume) => {
    if (gone(child)) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

/** Every live descendant of `pid` (children, their children...), read from /proc. */
export const descendants = (pid: number): ReadonlyArray<number> => {
  const parents = new Map<number, number>()
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      parents.set(Number(entry), ppid)
    } catch {
      // gone meanwhile
    }
  }
  const found: Array<number> = []
  const queue = [pid]
  while (queue.length > 0) {
    const parent = queue.shift()!
    for (const [child, ppid] of parents) {
      if (ppid === parent && !found.includes(child)) {
        found.push(child)
        queue.push(child)
      }
    }
  }
  return found
}

/** Sends `name` to `pid`, if it is still there. */
export const signal = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(pid, name)
  } catch {
    // already gone
  }
}

/**
 * kill -9 of the process and of what it started: it is stopped first (so it starts
 * nothing more), its descendants are listed (and handed to `onTree`), then each is killed
 * by pid. Waits until the process is gone.
 */
export const crash = (
  proc: Pick<Proc, "child" | "pid">,
  onTree: (descendants: ReadonlyArray<number>) => void = () => {}
) =>
  Effect.suspend(() => {
    if (gone(proc.child)) return exited(proc.child)
    signal(proc.pid, "SIGSTOP")
    const tree = descendants(proc.pid)
    onTree(tree)
    signal(proc.pid, "SIGKILL")
    for (const pid of tree) signal(pid, "SIGKILL")
    return exited(proc.child)
  })

/** `loom ...args` from the sources in a child process with `env` (on top of PATH), killed with the scope. */
export const loom = (env: Record<string, string>, ...args: Array<string>) =>
  Effect.acquireRelease(
    Effect.sync((): Proc => {
      const child = spawn(process.execPath, ["--import", loader, main, ...args], {
        env: { PATH, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let all = ""
      let out = ""
      let err = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        all += chunk.toString()
        out += chunk.toString()
      })
      child.stderr!.on("data", (chunk: Buffer) => {
        all += chunk.toString()
        err += chunk.toString()
      })
      return { child, pid: child.pid!, output: () => all, stdout: () => out, stderr: () => err }
    }),
    (proc) => Effect.timeout(crash(proc), "10 seconds").pipe(Effect.ignore)
  )

/** Polls `check` on the live clock every 50 ms, up to `within`; fails with `what` and the process's output. */
export const waitFor = (
  proc: Proc,
  check: () => boolean,
  what: string,
  within: Duration.DurationInput = "60 seconds"
) =>
  Effect.suspend(() =>
    check()
      ? Effect.void
      : gone(proc.child)
      ? Effect.dieMessage(`${what}: the process exited (${proc.child.exitCode}) first:\n${proc.output()}`)
      : Effect.fail("not yet")
  ).pipe(
    Effect.retry(Schedule.spaced("50 millis")),
    Effect.timeoutFail({ duration: within, onTimeout: () => `timed out waiting for ${what}` }),
    Effect.catchAll((message) => Effect.dieMessage(`${message}:\n${proc.output()}`))
  )

/** The service (`src/main.ts` with no arguments, LOOM_PORT=0 by default): its process and the URL it listens on. */
export const service = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const proc = yield* loom({ LOOM_PORT: "0", ...env })
    yield* waitFor(proc, () => /Loom listening on http:\/\/\S+/.test(proc.output()), "the service to listen")
    const url = /Loom listening on (http:\/\/\S+)/.exec(proc.output())![1]!
    return { ...proc, url }
  })
