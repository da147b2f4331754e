/**
 * Runs an effect holding a Postgres session advisory lock, so processes starting
 * together on one database take turns. Libraries that create their tables at start
 * (the @effect/sql Migrator's own table, @effect/cluster's storage) do it unguarded, and
 * processes racing on a fresh database would all but one fail.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"

export const withLock = (key: number) =>
<A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient> =>
  Effect.scoped(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const connection = yield* sql.reserve
    // registered first: a lock granted while its wait was being interrupted is released too
    yield* Effect.addFinalizer(() =>
      Effect.ignore(connection.execute("SELECT pg_advisory_unlock($1::bigint)", [key], undefined))
    )
    yield* connection.execute("SELECT pg_advisory_lock($1::bigint)", [key], undefined)
    return yield* effect
  }))
