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
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import type { SocketServerError } from "@effect/platform/SocketServer"
import type { SqlClient } from "@effect/sql/SqlClient"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import type { ConfigError } from "effect"
import { Layer, Option } from "effect"
import * as ReadOnRegister from "./ReadOnRegister.js"
import * as Settings from "./Settings.js"

/** The workflow engine on a runner at `address`, its storage in the SQL database provided. */
export const layer = (
  address: RunnerAddress
): Layer.Layer<WorkflowEngine, SocketServerError | ConfigError.ConfigError, SqlClient> =>
  Layer.merge(ClusterWorkflowEngine.layer, ReadOnRegister.layer).pipe(
    Layer.provide(
      NodeClusterSocket.layer({
        storage: "sql",
        shardingConfig: { ...Settings.sharding, runnerAddress: Option.some(address) }
      })
    )
  )
