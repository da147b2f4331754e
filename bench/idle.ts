/**
 * The service's idle footprint: the resident memory of `node dist/main.js` a few seconds
 * after it answers `/health/ready`, against a bare `node:http` server's. Each run starts a
 * fresh process on a free port with its own temporary data directory, ends it by its PID
 * and removes the directory. No LLM is reachable (`OLLAMA_HOSTS` points at a closed
 * port), as on a machine where Loom starts before Ollama; the service runs without it.
 * `LOOM_BENCH_MAIN` measures another build of `main.js`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { on, once } from "node:events"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import type { Scenario } from "./Scenario.js"

// compiled to dist-bench/bench/idle.js (run from the sources: bench/idle.ts): the package root is the first
// directory above with a package.json
const root = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir)
  return dir
})()
const main = process.env["LOOM_BENCH_MAIN"] ?? path.join(root, "dist", "main.js")

/** How long a started server is left alone before its memory is read. */
const settleMs = 3_000

/** The resident set of `pid`, in MB (from /proc). */
const rssMb = (pid: number): number => {
  const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))
  return Number(line?.split(/\s+/)[1] ?? Number.NaN) / 1024
}

/** Waits until the child prints where it listens; fails if it exits first or takes over 60 s. */
const listening = async (child: ChildProcess): Promise<string> => {
  let output = ""
  const printed = (async () => {
    for await (const [chunk] of on(child.stdout!, "data", { signal: AbortSignal.timeout(60_000) })) {
      output += String(chunk)
      const found = /listening on (http:\/\/[^\s]+)/i.exec(output)
      if (found) return found[1]!
    }
    throw new Error(`no address printed:\n${output}`)
  })()
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`exited with ${code} before listening:\n${output}`)
  })
  return Promise.race([printed, exited])
}

/** Ends the child by its PID (SIGTERM, then SIGKILL after 10 s) and waits for it to be gone. */
const stop = async (child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = once(child, "exit")
  process.kill(child.pid!, "SIGTERM")
  const stopped = await Promise.race([gone.then(() => true), sleep(10_000).then(() => false)])
  if (!stopped) {
    process.kill(child.pid!, "SIGKILL")
    await gone
  }
}

/** Asks `url` until it answers 200 (a minute at most). */
const ready = async (url: string): Promise<void> => {
  for (let attempt = 0; attempt < 600; attempt++) {
    const status = await fetch(url).then((response) => response.status, () => 0)
    if (status === 200) return
    await sleep(100)
  }
  throw new Error(`${url} never answered 200`)
}

/** Starts `args` with `env`, waits until it listens and `probe` answers, lets it settle, reads its RSS, ends it. */
const idleRssOf = async (args: ReadonlyArray<string>, env: Record<string, string>, probe: string): Promise<number> => {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env["PATH"] ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  try {
    const url = await listening(child)
    await ready(`${url}${probe}`)
    await sleep(settleMs)
    return rssMb(child.pid!)
  } finally {
    await stop(child)
  }
}

const loom = async (): Promise<number> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "loom-bench-idle-"))
  try {
    return await idleRssOf([main], {
      LOOM_PORT: "0",
      LOOM_DATA_DIR: dataDir,
      OLLAMA_HOSTS: "http://127.0.0.1:9"
    }, "/health/ready")
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

const bareServer = `
const server = require("node:http").createServer((request, response) => response.end("ok"))
server.listen(0, "127.0.0.1", () => console.log("listening on http://127.0.0.1:" + server.address().port))
process.on("SIGTERM", () => server.close())
`

const baseline = (): Promise<number> => idleRssOf(["-e", bareServer], {}, "/")

/** `service.idle-rss`: MB resident a few seconds after `/health/ready`; Loom against a bare node:http server. */
export const idleRss: Scenario = {
  id: "service.idle-rss",
  unit: "MB",
  better: "lower",
  warmups: 0,
  runs: 3,
  loom,
  baseline,
  derive: ({ baseline, loom }) => ({ overheadMb: loom - baseline })
}
