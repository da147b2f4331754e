/**
 * Where runs are kept and executed, from the environment. Without `LOOM_DATABASE_URL`
 * Loom is one embedded runner on its data directory. With it, the run store and the
 * cluster's storage are that Postgres database, and this process is one runner among
 * several, reached by the others at `LOOM_RUNNER_ADDRESS` (host:port, default
 * 127.0.0.1:34431; each runner on a machine needs its own port).
 */
import { RunnerAddress } from "@effect/cluster/RunnerAddress"
import { Config, ConfigError, Either } from "effect"

export const databaseUrl = Config.option(Config.redacted("LOOM_DATABASE_URL"))

const addressOf = (text: string): Either.Either<RunnerAddress, ConfigError.ConfigError> => {
  const colon = text.lastIndexOf(":")
  const host = text.slice(0, colon)
  const port = Number(text.slice(colon + 1))
  return colon > 0 && Number.isInteger(port) && port > 0 && port < 65536
    ? Either.right(new RunnerAddress({ host, port }))
    : Either.left(
      ConfigError.InvalidData([], `expected host:port (for example 127.0.0.1:34431), got "${text}"`)
    )
}

export const runnerAddress = Config.string("LOOM_RUNNER_ADDRESS").pipe(
  Config.withDefault("127.0.0.1:34431"),
  Config.mapOrFail(addressOf)
)
