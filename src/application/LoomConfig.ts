/**
 * The service's own settings, read once from the environment (or the CLI's options laid
 * over it) in one layer; an invalid value stops start-up with its variable named.
 */
import { Config, Context, Data, Duration, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a whole number of 1 or more", validation: (n) => n >= 1 }),
    Config.withDefault(fallback)
  )

/**
 * A duration above zero (`Config.duration` reads `-1 seconds` as zero, so this refuses
 * negative ones too).
 */
export const positiveDuration = (name: string) =>
  Config.duration(name).pipe(
    Config.validate({
      message: "must be a duration above zero, e.g. `30 seconds`",
      validation: (duration) => Duration.isFinite(duration) && Duration.greaterThan(duration, Duration.zero)
    })
  )

/** A DNS name: labels of letters, digits and hyphens; an all-numeric one must be an IPv4 address instead. */
const hostName =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/** An IP address or a host name to listen on; `999.1.1.1` looks like an address and is none. */
export const isListenHost = (host: string): boolean =>
  Net.isIP(host) !== 0 || (hostName.test(host) && !/^[0-9.]+$/.test(host))

export const config = Config.all({
  host: Config.string("LOOM_HOST").pipe(
    Config.validate({ message: "must be an IP address or a host name", validation: isListenHost }),
    Config.withDefault("127.0.0.1")
  ),
  port: Config.integer("LOOM_PORT").pipe(
    Config.validate({ message: "must be a port number (0-65535)", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(8080)
  ),
  maxRuns: positive("LOOM_MAX_RUNS", 16),
  maxBodyBytes: positive("LOOM_MAX_BODY_BYTES", 1024 * 1024),
  /** How long a client may take to send a request's body; a slower one is answered 408. */
  requestTimeout: positiveDuration("LOOM_REQUEST_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  codingModel: Config.string("LOOM_CODING_MODEL").pipe(Config.withDefault("qwen2.5-coder")),
  agentModel: Config.string("LOOM_AGENT_MODEL").pipe(Config.withDefault("llama3.2")),
  /** Tools whose calls by the assistant wait for a person's approval (comma-separated names; default none). */
  approval: Config.array(Config.string(), "LOOM_APPROVAL").pipe(
    Config.map((names) => names.map((name) => name.trim()).filter((name) => name.length > 0)),
    Config.withDefault([] as ReadonlyArray<string>)
  )
})

export type Settings = Config.Config.Success<typeof config>

export class LoomConfig extends Context.Tag("loom/LoomConfig")<LoomConfig, Settings>() {
  static readonly layer = Layer.effect(LoomConfig, config)
}

/** The service cannot start: `setting` (a variable, or the resource it names) and why, in one line. */
export class StartupFailed extends Data.TaggedError("StartupFailed")<{
  readonly setting: string
  readonly reason: string
}> {
  override get message() {
    return `${this.setting}: ${this.reason}`
  }
}

const codeOf = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : undefined

const reasons: Readonly<Record<string, string>> = {
  EADDRINUSE: "the port is in use by another process",
  EADDRNOTAVAIL: "the address is not one of this machine's",
  EACCES: "not allowed to listen there (ports below 1024 need privileges)",
  ENOTFOUND: "the host name does not resolve",
  EAI_AGAIN: "the host name could not be resolved now",
  EEXIST: "it is a file, not a directory",
  ENOTDIR: "a part of the path is a file, not a directory"
}

/** What went wrong, from a Node error: its meaning and code when known, else its message. */
const reasonOf = (cause: unknown): string => {
  const code = codeOf(cause)
  const known = code === undefined ? undefined : reasons[code]
  if (known !== undefined) return `${known} (${code})`
  return cause instanceof Error ? cause.message : String(cause)
}

/** The server could not listen on `LOOM_HOST`:`LOOM_PORT`. */
export const cannotListen = (settings: Pick<Settings, "host" | "port">, cause: unknown) =>
  new StartupFailed({
    setting: `LOOM_HOST=${settings.host} LOOM_PORT=${settings.port}`,
    reason: `cannot listen there: ${reasonOf(cause)}`
  })

/** `LOOM_DATA_DIR` as a directory the service can use, made if missing. */
export const ensureDirectory = (dir: string) =>
  Effect.try({
    try: () => {
      Fs.mkdirSync(dir, { recursive: true })
      Fs.accessSync(dir, Fs.constants.R_OK | Fs.constants.W_OK)
    },
    catch: (cause) => new StartupFailed({ setting: `LOOM_DATA_DIR=${dir}`, reason: reasonOf(cause) })
  })
