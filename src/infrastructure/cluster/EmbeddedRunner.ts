/**
 * The embedded default: one @effect/cluster `SingleRunner` in this process, its message
 * storage in `cluster.db` under the data directory, so Loom's durable runs survive a
 * crash or a restart with nothing else to run. The data directory is held (`DataDirLock`)
 * for as long as the runner lives: a second process on it is refused, which is also
 * why the runner's own shard locks can stay in memory (no stale lock to wait out after
 * a kill -9).
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import * as SingleRunner from "@effect/cluster/SingleRunner"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { Layer } from "effect"
import * as Path from "node:path"
import * as ReadOnRegister from "./ReadOnRegister.js"
import * as Settings from "./Settings.js"

/** The workflow engine on a single runner storing its messages in `dir/cluster.db`. */
export const layer = (dir: string): Layer.Layer<WorkflowEngine> =>
  Layer.merge(ClusterWorkflowEngine.layer, ReadOnRegister.layer).pipe(
    Layer.provide(SingleRunner.layer({ runnerStorage: "memory", shardingConfig: Settings.sharding })),
    Layer.provide(SqliteClient.layer({ filename: Path.join(dir, "cluster.db") })),
    Layer.orDie
  )
