/**
 * Cosine top-k over a row-major matrix of float32 vectors: the `k` rows most similar to
 * the query, best first. The matrix is read in place (it may live in a SharedArrayBuffer).
 */
export interface Match {
  readonly index: number
  readonly score: number
}

export const cosineTopK = (
  matrix: Float32Array,
  rows: number,
  dims: number,
  query: ArrayLike<number>,
  k: number
): ReadonlyArray<Match> => {
  if (query.length !== dims) throw new RangeError(`query has ${query.length} dimensions, the matrix ${dims}`)
  let queryNorm = 0
  for (let d = 0; d < dims; d++) queryNorm += query[d]! * query[d]!
  queryNorm = Math.sqrt(queryNorm)
  // A small sorted buffer of the best k: cheap for the small k retrieval uses.
  const best: Array<Match> = []
  for (let r = 0; r < rows; r++) {
    let dot = 0
    let norm = 0
    const offset = r * dims
    for (let d = 0; d < dims; d++) {
      const v = matrix[offset + d]!
      dot += v * query[d]!
      norm += v * v
    }
    const score = norm === 0 || queryNorm === 0 ? 0 : dot / (Math.sqrt(norm) * queryNorm)
    if (best.length < k || score > best[best.length - 1]!.score) {
      let i = best.length < k ? best.length : best.length - 1
      if (best.length < k) best.push({ index: r, score })
      while (i > 0 && best[i - 1]!.score < score) {
        best[i] = best[i - 1]!
        i--
      }
      best[i] = { index: r, score }
    }
  }
  return best
}
