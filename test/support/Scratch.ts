/**
 * Temporary directories for tests. Each is removed once its test file has run (the
 * `afterAll` in test/support/setup.ts), so a run leaves nothing in the temp folder.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const made: Array<string> = []

export const scratchDir = (prefix = "loom-test-"): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  made.push(dir)
  return dir
}

export const removeScratchDirs = (): void => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
}
