import { Effect } from "effect"
import * as Sim from "./src/infrastructure/ollama/OllamaSimulator.js"
import { exec } from "node:child_process"
import { promisify } from "node:util"
const run = promisify(exec)
await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const sim = yield* Sim.make()
  const sh = (c: string) => Effect.promise(async () => (await run(c)).stdout)
  console.log(yield* sh(`curl -s ${sim.url}/api/version`))
  console.log(yield* sh(`curl -s ${sim.url}/api/chat -d '{"model":"llama3.2","messages":[{"role":"user","content":"use weather {\\"city\\":\\"Paris\\"}"}],"tools":[{"type":"function","function":{"name":"weather"}}],"stream":false}'`))
  console.log(yield* sh(`curl -s ${sim.url}/api/chat -d '{"model":"llama3.2","messages":[{"role":"user","content":"hello big world"}]}'`))
  console.log(yield* sh(`curl -s ${sim.url}/api/embed -d '{"model":"nomic-embed-text","input":["a","b"]}'`))
  console.log(yield* sh(`curl -s ${sim.url}/api/chat -d '{"model":"nope","messages":[]}' -w " %{http_code}"`))
  sim.setFaults("chat", { resetMidStream: true })
  console.log(yield* sh(`curl -s ${sim.url}/api/chat -d '{"model":"llama3.2","messages":[{"role":"user","content":"hello big world"}]}'; echo " rc=$?"`))
  console.log(sim.requests("chat"), sim.connections())
})))
