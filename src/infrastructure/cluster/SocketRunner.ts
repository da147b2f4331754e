/**
 * Scale-out: this process is one runner among several sharing one Postgres database.
 * The cluster's message and runner storage live there (@effect/cluster's SQL storage,
 * runner ownership by database locks), runners talk over TCP (`NodeClusterSocket`) at
 * their `LOOM_RUNNER_ADDRESS`, and a runner that dies stops answering pings: its
 * shards, and the runs on them, move to the survivors, which resume each from its last
 * finished node.
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import type { RunnerAddress } from "@effect/cluster/RunnerAddress"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import type { SocketServerError } from "@effect/platform/SocketServer"
import type { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import type { ConfigError } from "effect"
import { Effect, Layer, Option } from "effect"
import * as PgAdvisoryLock from "../persistence/PgAdvisoryLock.js"
import * as ReadOnRegister from "./ReadOnRegister.js"
import * as Settings from "./Settings.js"

/** The cluster's advisory lock key for creating its tables ("clus" in ASCII). */
const tablesLock = 0x636c7573

/**
 * @effect/cluster creates its tables when its storage starts, unguarded: runners
 * starting together on a fresh database race and all but one fail. The storage is made
 * once first, holding an advisory lock, so each runner then finds the tables there.
 */
const Tables = Layer.effectDiscard(
  Layer.build(Layer.merge(SqlMessageStorage.layer, SqlRunnerStorage.layer)).pipe(
    Effect.scoped,
    PgAdvisoryLock.withLock(tablesLock),
    Effect.provide(ShardingConfig.layer(Settings.sharding))
  )
)

/** The workflow engine on a runner at `address`, its storage in the SQL database provided. */
export const layer = (
  address: RunnerAddress
): Layer.Layer<WorkflowEngine, SocketServerError | SqlError | ConfigError.ConfigError, SqlClient> =>
  Layer.merge(ClusterWorkflowEngine.layer, ReadOnRegister.layer).pipe(
    Layer.provide(
      NodeClusterSocket.layer({
        storage: "sql",
        shardingConfig: { ...Settings.sharding, runnerAddress: Option.some(address) }
      })
    ),
    Layer.provide(Tables)
  )
