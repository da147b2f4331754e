import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { cosineTopK } from "../../../src/infrastructure/cpu/kernels/CosineTopK.js"
import { chunkText } from "../../../src/infrastructure/cpu/kernels/TextChunks.js"
import { estimateTokens } from "../../../src/infrastructure/cpu/kernels/TokenEstimate.js"

describe("CPU kernels", () => {
  it.prop(
    "cosineTopK returns the k best rows, best first, as a full sort would",
    [fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 10 }), fc.nat()],
    ([rows, dims, k, seed]) => {
      let state = seed || 1
      const next = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1
      const matrix = Float32Array.from({ length: rows * dims }, next)
      const query = Array.from({ length: dims }, next)
      const cosine = (r: number) => {
        let dot = 0, a = 0, b = 0
        for (let d = 0; d < dims; d++) {
          dot += matrix[r * dims + d]! * query[d]!
          a += matrix[r * dims + d]! ** 2
          b += query[d]! ** 2
        }
        return a === 0 || b === 0 ? 0 : dot / Math.sqrt(a * b)
      }
      const expected = Array.from({ length: rows }, (_, r) => cosine(r)).sort((x, y) => y - x).slice(0, k)
      const got = cosineTopK(matrix, rows, dims, query, k)
      assert.strictEqual(got.length, Math.min(k, rows))
      got.forEach((match, i) => assert.closeTo(match.score, expected[i]!, 1e-9))
      got.forEach((match) => assert.closeTo(match.score, cosine(match.index), 1e-9))
    }
  )

  it.prop(
    "chunkText covers the text in chunks of at most `size`, overlapping, cutting at spaces",
    [fc.array(fc.stringMatching(/^[a-z]{1,12}$/), { minLength: 1, maxLength: 200 }), fc.integer({ min: 20, max: 80 })],
    ([words, size]) => {
      const text = words.join(" ")
      const chunks = chunkText(text, size, Math.floor(size / 4))
      assert.isTrue(chunks.every((chunk) => chunk.length <= size))
      for (const word of words) assert.isTrue(chunks.some((chunk) => chunk.split(" ").includes(word)), word)
    }
  )

  it("estimateTokens is at least the word count and about a token per 4 characters", () => {
    assert.strictEqual(estimateTokens(""), 0)
    assert.strictEqual(estimateTokens("a b c"), 3)
    assert.strictEqual(estimateTokens("x".repeat(400)), 100)
    assert.strictEqual(estimateTokens("héllo"), 1 + 1)
  })
})
