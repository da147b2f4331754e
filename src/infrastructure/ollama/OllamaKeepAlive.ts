/**
 * How long Ollama keeps a model loaded after a request (its `keep_alive`). Loading a large
 * model takes seconds, so a chat model used all day wants a long keep-alive and a model
 * used once an hour a short one: one default, and overrides by model.
 *
 * `OLLAMA_KEEP_ALIVE` is a comma-separated list: one bare duration, the default, and
 * `model=duration` overrides, e.g. `5m,llama3.2=30m,nomic-embed-text=1h`. A duration is
 * written as Ollama writes it: a number with a unit (`ms`, `s`, `m`, `h`, combinable as in
 * `1h30m`), a bare number of seconds, `0` to unload at once, or `-1` to keep the model
 * loaded. An override for a name without a tag (`llama3.2`) applies to every tag of it
 * (`llama3.2:3b`) unless that tag has its own.
 */
import { Config, ConfigError, Duration, Either, Option, Record } from "effect"

export interface KeepAlive {
  /** For models without an override. */
  readonly fallback: Duration.Duration
  /** By model name, with or without a `:tag`. */
  readonly models: Record.ReadonlyRecord<string, Duration.Duration>
}

/** Ollama's own default. */
export const defaults: KeepAlive = { fallback: Duration.minutes(5), models: {} }

const units: Record.ReadonlyRecord<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }

/** One duration as Ollama writes it (see the module's comment); `None` if it is not one. */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const trimmed = text.trim()
  if (/^-\d+(\.\d+)?$/.test(trimmed)) return Option.some(Duration.infinity)
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Option.some(Duration.seconds(Number(trimmed)))
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(trimmed)) return Option.none()
  const millis = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)]
    .reduce((total, [, amount, unit]) => total + Number(amount) * (units[unit!] ?? 0), 0)
  return Option.some(Duration.millis(millis))
}

/** `default,model=duration,...`; the error names the entry that is wrong. */
export const parse = (raw: string): Either.Either<KeepAlive, string> => {
  let keepAlive: KeepAlive = { ...defaults, models: {} }
  let fallbackSet = false
  for (const entry of raw.split(",").map((entry) => entry.trim()).filter((entry) => entry.length > 0)) {
    const at = entry.indexOf("=")
    const model = at < 0 ? undefined : entry.slice(0, at).trim()
    const duration = parseDuration(at < 0 ? entry : entry.slice(at + 1))
    if (Option.isNone(duration)) return Either.left(`not a duration (like 5m, 1h, 0 or -1): "${entry}"`)
    if (model === undefined) {
      if (fallbackSet) return Either.left(`more than one default duration: "${entry}"`)
      fallbackSet = true
      keepAlive = { ...keepAlive, fallback: duration.value }
    } else if (model.length === 0) {
      return Either.left(`no model name before "=": "${entry}"`)
    } else {
      keepAlive = { ...keepAlive, models: { ...keepAlive.models, [model]: duration.value } }
    }
  }
  return Either.right(keepAlive)
}

export const config = (name: string): Config.Config<KeepAlive> =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => Either.mapLeft(parse(raw), (message) => ConfigError.InvalidData([name], message))),
    Config.withDescription("keep-alive of loaded models: a default and model=duration overrides, e.g. 5m,llama3.2=30m")
  )

/** For a request of `model`: the request's own, else the model's (its exact name, then its name without the tag), else the default. */
export const forModel = (keepAlive: KeepAlive, model: string, requested?: Duration.Duration): Duration.Duration =>
  requested ??
    Record.get(keepAlive.models, model).pipe(
      Option.orElse(() => Record.get(keepAlive.models, model.split(":")[0]!)),
      Option.getOrElse(() => keepAlive.fallback)
    )

/** As Ollama reads it: a number of seconds, or -1 to keep the model loaded. */
export const toWire = (duration: Duration.Duration): number =>
  Duration.isFinite(duration) ? Duration.toSeconds(duration) : -1

/** The `keep_alive` to send with a request of `model` (and the request's own, if it has one). */
export const wire = (keepAlive: KeepAlive, model: string, requested?: Duration.Duration): number =>
  toWire(forModel(keepAlive, model, requested))
