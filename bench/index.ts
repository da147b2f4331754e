/** `npm run bench`: every scenario, one JSON line each on stdout. */
import * as agent from "./agent.js"
import * as breaker from "./breaker.js"
import * as cluster from "./cluster.js"
import * as cpu from "./cpu.js"
import * as durable from "./durable.js"
import * as executor from "./executor.js"
import * as idle from "./idle.js"
import * as llm from "./llm.js"
import * as pool from "./pool.js"
import type { Scenario } from "./Scenario.js"
import { run } from "./Scenario.js"

const scenarios: ReadonlyArray<Scenario> = [
  executor.fanout,
  executor.dagDiamond,
  pool.noop,
  breaker.noopCall,
  llm.embedBatched,
  llm.chatKeepAlive,
  llm.chatOverhead,
  cpu.topkVsMain,
  cpu.topkVsPiscina,
  agent.runs10k,
  agent.runs10kRss,
  agent.checkpointOverhead,
  durable.durableOverhead,
  cluster.throughput,
  idle.idleRss
]

const only = process.argv[2]
for (const scenario of scenarios) {
  if (only && !scenario.id.startsWith(only)) continue
  console.log(JSON.stringify(await run(scenario)))
}
