/**
 * Built-in `cpu` tools that retrieval-style agents need: chunking text, cosine top-k
 * over embeddings, and a token estimate. Each runs on the worker-thread pool; the
 * vectors of a top-k search are copied once into shared memory, which the thread
 * reads in place.
 */
import { Schema } from "effect"
import { ChunkText, CosineTopK, EstimateTokens } from "../../domain/Cpu.js"
import * as Tool from "../../domain/Tool.js"

export const chunkText = Tool.cpu({
  name: "text.chunk",
  description: "Splits text into overlapping chunks of at most `size` characters, cut at word boundaries",
  input: Schema.Struct({
    text: Schema.String,
    size: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 1000 }),
    overlap: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 100 })
  }),
  output: Schema.Array(Schema.String),
  task: (input) => new ChunkText(input)
})

const TopKInput = Schema.Struct({
  vectors: Schema.NonEmptyArray(Schema.Array(Schema.Number)),
  query: Schema.NonEmptyArray(Schema.Number),
  k: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 5 })
}).pipe(
  Schema.filter(({ query, vectors }) => {
    const bad = vectors.findIndex((vector) => vector.length !== query.length)
    return bad === -1 ||
      { path: ["vectors", bad], message: `has ${vectors[bad]!.length} dimensions, the query ${query.length}` }
  })
)

export const topK = Tool.cpu({
  name: "vectors.top_k",
  description: "The k vectors most similar to the query by cosine similarity, best first",
  input: TopKInput,
  output: Schema.Array(Schema.Struct({ index: Schema.Int, score: Schema.Number })),
  task: ({ k, query, vectors }) => {
    const dims = query.length
    const matrix = new SharedArrayBuffer(vectors.length * dims * Float32Array.BYTES_PER_ELEMENT)
    const view = new Float32Array(matrix)
    vectors.forEach((vector, row) => view.set(vector, row * dims))
    return new CosineTopK({ matrix, rows: vectors.length, dims, query, k })
  }
})

export const estimateTokens = Tool.cpu({
  name: "text.estimate_tokens",
  description: "An estimate of the number of LLM tokens in a text, without a tokenizer",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.NonNegativeInt,
  task: ({ text }) => new EstimateTokens({ text })
})

export const all = [chunkText, topK, estimateTokens] as const
