// The piscina baseline's worker: the same cosine top-k kernel the CpuPool's threads run,
// from the compiled package (the bench runs on dist/).
import { CosineTopK } from "loom"

export default ({ dims, k, matrix, query, rows }) =>
  CosineTopK.cosineTopK(new Float32Array(matrix, 0, rows * dims), rows, dims, query, k)
