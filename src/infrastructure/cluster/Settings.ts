/**
 * Sharding settings Loom's runners share. A run cut off by a shutdown resumes from its
 * last finished node on the next start (or on another runner), so shutdown does not wait
 * for running executions to end (`entityTerminationTimeout`, 15 s by default): they are
 * interrupted at once, marked `interrupted`, and their shards are free for the others.
 *
 * A dead runner's shards move once its shard locks expire: 12 s instead of the default
 * 35 s, so its runs carry on sooner (a runner refreshes its locks every 4 s, a third of
 * that, so a live one keeps them through a pause of several seconds).
 *
 * A run's entity is dropped 5 s after its last message (default 1 min): a finished run
 * gets none, and a waiting one is brought back by the value that resumes it, so under
 * load finished runs no longer pile up in memory for a minute each.
 */
import type { ShardingConfig } from "@effect/cluster/ShardingConfig"
import { Duration } from "effect"

export const sharding: Partial<ShardingConfig["Type"]> = {
  entityTerminationTimeout: Duration.zero,
  shardLockExpiration: Duration.seconds(12),
  shardLockRefreshInterval: Duration.seconds(4),
  entityMaxIdleTime: Duration.seconds(5)
}
