import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as OllamaClient from "../../../src/infrastructure/ollama/OllamaClient.js"
import * as OllamaFetch from "../../../src/infrastructure/ollama/OllamaFetch.js"

describe("OllamaClient.toLlmError", () => {
  const toLlmError = OllamaClient.toLlmError("http://127.0.0.1:1", "llama3.2")

  it.effect("an error status is sorted by its code: missing model, bad request, unavailable host", () =>
    Effect.sync(() => {
      const missing = toLlmError(new OllamaFetch.ErrorReply(404, "model \"llama3.2\" not found, try pulling it first"))
      assert.strictEqual(missing._tag, "ModelNotFound")
      const bad = toLlmError(new OllamaFetch.ErrorReply(400, "invalid options"))
      assert.deepInclude(bad, { _tag: "LlmBadResponse", message: "invalid options", raw: "invalid options" })
      const down = toLlmError(new OllamaFetch.ErrorReply(503, "server busy"))
      assert.deepInclude(down, { _tag: "LlmUnavailable", message: "server busy", status: 503 })
    }))

  it.effect("a malformed body is a bad response; anything else an unavailable host, with its cause", () =>
    Effect.sync(() => {
      const malformed = toLlmError(new OllamaFetch.MalformedBody("{\"done\": tru", "NDJSON"))
      assert.deepInclude(malformed, { _tag: "LlmBadResponse", raw: "{\"done\": tru" })
      const reset = toLlmError(new TypeError("fetch failed", { cause: new Error("ECONNRESET") }))
      assert.deepInclude(reset, { _tag: "LlmUnavailable", message: "fetch failed: ECONNRESET" })
    }))
})
