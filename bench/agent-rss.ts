/** Child of `agent.runs-10k-rss`: runs one side once and prints its peak RSS growth in MB. */
import { agents, handRuns, loomRuns } from "./agent.js"

const side = process.argv[2]
const runtime = agents()
// warm the code paths on a few runs, so the measure is of the 10,000, not of loading modules
await (side === "loom" ? loomRuns(runtime, 10) : handRuns(10))
const before = process.memoryUsage().rss
let peak = before
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss)
}, 5)
await (side === "loom" ? loomRuns(runtime) : handRuns())
peak = Math.max(peak, process.memoryUsage().rss)
clearInterval(sampler)
await runtime.dispose()
console.log(((peak - before) / 1024 / 1024).toFixed(1))
