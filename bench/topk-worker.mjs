// The piscina baseline's worker: the same cosine top-k kernel the CpuPool's threads run.
import { register } from "tsx/esm/api"

register()
const { cosineTopK } = await import("../src/infrastructure/cpu/kernels/CosineTopK.ts")

export default ({ dims, k, matrix, query, rows }) =>
  cosineTopK(new Float32Array(matrix, 0, rows * dims), rows, dims, query, k)
