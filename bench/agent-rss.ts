/** Child of `agent.runs-10k-rss`: runs one side (loom, hand or floor) once and prints its peak RSS growth in MB. */
import { Effect } from "effect"
import { agents, handRuns, loomRuns, runs } from "./agent.js"
import * as floors from "./floors.js"

const side = process.argv[2]
const runtime = agents()
const once = (n: number) =>
  side === "loom" ? loomRuns(runtime, n) : side === "floor" ? Effect.runPromise(floors.agentRuns(n, 10)) : handRuns(n)
// warm the code paths on a few runs, so the measure is of the 10,000, not of loading modules
await once(10)
const before = process.memoryUsage().rss
let peak = before
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss)
}, 5)
await once(runs)
peak = Math.max(peak, process.memoryUsage().rss)
clearInterval(sampler)
await runtime.dispose()
console.log(((peak - before) / 1024 / 1024).toFixed(1))
