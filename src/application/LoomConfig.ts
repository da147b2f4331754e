/**
 * The service's own settings, read once from the environment (or the CLI's options laid
 * over it) in one layer; an invalid value stops start-up with its variable named.
 */
import { Config, Context, Layer } from "effect"

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a whole number of 1 or more", validation: (n) => n >= 1 }),
    Config.withDefault(fallback)
  )

export const config = Config.all({
  host: Config.string("LOOM_HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("LOOM_PORT").pipe(
    Config.validate({ message: "must be a port number (0-65535)", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(8080)
  ),
  maxRuns: positive("LOOM_MAX_RUNS", 16),
  maxBodyBytes: positive("LOOM_MAX_BODY_BYTES", 1024 * 1024),
  codingModel: Config.string("LOOM_CODING_MODEL").pipe(Config.withDefault("qwen2.5-coder")),
  agentModel: Config.string("LOOM_AGENT_MODEL").pipe(Config.withDefault("llama3.2"))
})

export type Settings = Config.Config.Success<typeof config>

export class LoomConfig extends Context.Tag("loom/LoomConfig")<LoomConfig, Settings>() {
  static readonly layer = Layer.effect(LoomConfig, config)
}
