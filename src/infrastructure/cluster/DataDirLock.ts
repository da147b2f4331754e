/**
 * One Loom process per data directory: the embedded runner's storage is a SQLite file
 * there, and two runners on it would each pick up the same runs. The lock is a file,
 * `loom.lock`, made exclusively and holding the owner's pid; a second process finds it
 * and is refused, naming the directory and the holder. A lock whose process is gone (a
 * kill -9, a crash) is taken over, so a restart after a crash needs no clean-up.
 */
import { Data, Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"

/** The directory is held by another live Loom process. */
export class DataDirHeld extends Data.TaggedError("DataDirHeld")<{
  readonly dir: string
  readonly pid: number
}> {
  get reason() {
    return `in use by another Loom process (pid ${this.pid}); stop it, or give this one another ` +
      "LOOM_DATA_DIR (several runners share a Postgres database instead: LOOM_DATABASE_URL)"
  }
  override get message() {
    return `the data directory ${this.dir} is ${this.reason}`
  }
}

/** The lock file could not be made or read. */
export class DataDirLockFailed extends Data.TaggedError("DataDirLockFailed")<{
  readonly dir: string
  readonly reason: string
}> {
  override get message() {
    return `cannot lock the data directory ${this.dir}: ${this.reason}`
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (cause) {
    // EPERM: it exists, under another user
    return typeof cause === "object" && cause !== null && "code" in cause && cause.code === "EPERM"
  }
}

const holderOf = (file: string): number | undefined => {
  try {
    const pid = Number.parseInt(Fs.readFileSync(file, "utf8").trim(), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

type Attempt =
  | { readonly _tag: "Taken" }
  | { readonly _tag: "Held"; readonly pid: number }
  | { readonly _tag: "Stale" }

/** One try at making the lock file: taken, held by a live process, or left by a dead one. */
const attempt = (file: string): Attempt => {
  try {
    Fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" })
    return { _tag: "Taken" }
  } catch (cause) {
    if (!(typeof cause === "object" && cause !== null && "code" in cause && cause.code === "EEXIST")) throw cause
    const pid = holderOf(file)
    return pid !== undefined && pid !== process.pid && alive(pid) ? { _tag: "Held", pid } : { _tag: "Stale" }
  }
}

const take = (dir: string, file: string): Effect.Effect<void, DataDirHeld | DataDirLockFailed> =>
  Effect.try({
    try: () => {
      for (let tries = 0; tries < 3; tries++) {
        const result = attempt(file)
        if (result._tag !== "Stale") return result
        // a dead holder's lock: removed, then raced for again like a fresh one
        Fs.rmSync(file, { force: true })
      }
      return { _tag: "Stale" } as const
    },
    catch: (cause) => new DataDirLockFailed({ dir, reason: cause instanceof Error ? cause.message : String(cause) })
  }).pipe(
    Effect.flatMap((result): Effect.Effect<void, DataDirHeld | DataDirLockFailed> =>
      result._tag === "Taken"
        ? Effect.void
        : result._tag === "Held"
        ? Effect.fail(new DataDirHeld({ dir, pid: result.pid }))
        : Effect.fail(new DataDirLockFailed({ dir, reason: "the lock file keeps reappearing" }))
    )
  )

/** Holds `dir` for this process until the scope closes; the lock file goes with it. */
export const hold = (dir: string) => {
  const file = Path.join(dir, "loom.lock")
  return Effect.acquireRelease(
    take(dir, file),
    () =>
      Effect.sync(() => {
        if (holderOf(file) === process.pid) Fs.rmSync(file, { force: true })
      })
  )
}
