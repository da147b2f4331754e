/** How a bounded pool of workers is doing: what the pools report for health and metrics. */
export interface PoolStats {
  readonly workers: number
  readonly busy: number
  /** Jobs waiting for a worker, counting callers held back by backpressure (`wait`). */
  readonly queued: number
  readonly capacity: number
  readonly rejected: number
  readonly closing: boolean
}
