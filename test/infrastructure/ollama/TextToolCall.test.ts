import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as TextToolCall from "../../../src/infrastructure/ollama/TextToolCall.js"

const calls = (content: string, offered: ReadonlyArray<string> = ["weather", "search"]) =>
  TextToolCall.parse(content, offered).pipe(
    Option.map((found) => found.map((call) => [call.name, call.arguments])),
    Option.getOrUndefined
  )

describe("TextToolCall", () => {
  it.effect("recognises the spellings models use, bare or fenced, one call or several", () =>
    Effect.sync(() => {
      const oslo = [["weather", { city: "Oslo" }]]
      assert.deepStrictEqual(calls("{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}"), oslo)
      assert.deepStrictEqual(calls("  {\"tool\": \"weather\", \"parameters\": {\"city\": \"Oslo\"}}\n"), oslo)
      assert.deepStrictEqual(calls("{\"name\": \"weather\", \"parameters\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}"), oslo)
      assert.deepStrictEqual(calls("```json\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n```"), oslo)
      assert.deepStrictEqual(calls("```\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n```"), oslo)
      assert.deepStrictEqual(
        calls(
          "[{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}, {\"tool\": \"search\", \"arguments\": {}}]"
        ),
        [...oslo, ["search", {}]]
      )
    }))

  it.effect("anything else stays text: unknown tools, no tools offered, prose, JSON that is not a call", () =>
    Effect.sync(() => {
      const oslo = "{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}"
      assert.isUndefined(calls("{\"name\": \"launch\", \"arguments\": {}}"))
      assert.isUndefined(calls(`[${oslo}, {"name": "launch", "arguments": {}}]`), "one unknown name keeps it all text")
      assert.isUndefined(calls(oslo, []))
      assert.isUndefined(calls(`Sure! ${oslo}`))
      assert.isUndefined(calls("{\"name\": \"weather\"}"), "a name without arguments")
      assert.isUndefined(calls("{\"name\": \"weather\", \"arguments\": [1]}"))
      assert.isUndefined(calls("[]"))
      assert.isUndefined(calls("```js\nweather({city: \"Oslo\"})\n```"))
    }))

  it.effect("text that could still become a written call is told apart from text that cannot", () =>
    Effect.sync(() => {
      for (const prefix of ["", "  ", "{", " [", "`", "```", "```j", "```js", "```json", "```json\n", "```\n{\"na"]) {
        assert.isTrue(TextToolCall.couldBe(prefix), JSON.stringify(prefix))
      }
      for (const prefix of ["echo", "The", "```js\n", "```python", "```\nconst"]) {
        assert.isFalse(TextToolCall.couldBe(prefix), JSON.stringify(prefix))
      }
    }))
})
