/**
 * Sharding settings Loom's runners share. A run cut off by a shutdown resumes from its
 * last finished node on the next start (or on another runner), so shutdown does not wait
 * for running executions to end (`entityTerminationTimeout`, 15 s by default): they are
 * interrupted at once, marked `interrupted`, and their shards are free for the others.
 */
import type { ShardingConfig } from "@effect/cluster/ShardingConfig"
import { Duration } from "effect"

export const sharding: Partial<ShardingConfig["Type"]> = {
  entityTerminationTimeout: Duration.zero
}
