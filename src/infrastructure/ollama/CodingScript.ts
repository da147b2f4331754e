/**
 * Plausible replies for the coding workflow, so it runs end to end on the simulator
 * (tests, and the offline demo). The roles are recognised by the system prompt's
 * opening ("You are the planner", ...). The first solution has a bug, so the run shows
 * the runner sending work back to the coder; the reviewer reads the test verdict. Any
 * other conversation gets the simulator's default script.
 */
import type { SimChatRequest, SimReply } from "./OllamaSimulator.js"
import { defaultScript } from "./OllamaSimulator.js"

const tests = `\`\`\`js
import { test } from "node:test"
import assert from "node:assert/strict"
import { add } from "./solution.mjs"

test("adds two numbers", () => {
  assert.equal(add(2, 3), 5)
})

test("adds negative numbers", () => {
  assert.equal(add(-2, -3), -5)
})
\`\`\``

const buggy = "```js\nexport const add = (a, b) => a - b\n```"
const fixed = "```js\nexport const add = (a, b) => a + b\n```"

export const codingScript = (request: SimChatRequest): SimReply => {
  const system = request.messages.find((m) => m.role === "system")?.content ?? ""
  const user = [...request.messages].reverse().find((m) => m.role === "user")?.content ?? ""
  if (system.startsWith("You are the intent analyst")) {
    return { content: "The user wants a function add(a, b) that returns the sum of two numbers." }
  }
  if (system.startsWith("You are the planner")) {
    return { content: "1. Export a function add(a, b).\n2. Return a + b.\n3. Cover positive and negative numbers." }
  }
  if (system.startsWith("You are the test writer")) return { content: tests }
  if (system.startsWith("You are the coder")) {
    return { content: user.includes("The tests are failing") ? fixed : buggy }
  }
  if (system.startsWith("You are the reviewer")) {
    return {
      content: user.includes("Tests PASSED")
        ? "APPROVED\nThe function is correct and the tests cover signs."
        : "REJECTED\nThe tests still fail."
    }
  }
  return defaultScript(request)
}
