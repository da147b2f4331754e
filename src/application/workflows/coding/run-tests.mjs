// Runs generated code against generated tests with node:test, in a scratch directory.
// Reads {"code","tests"} as JSON on stdin; prints {"passed","output"} as JSON on stdout.
// The tests import the code from "./solution.mjs". Started by the `code.run_tests`
// tool in its own process group, so a timeout or an interruption kills the test
// process too.
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

let input = ""
process.stdin.setEncoding("utf8")
for await (const chunk of process.stdin) input += chunk
const { code, tests } = JSON.parse(input)

const dir = mkdtempSync(join(tmpdir(), "loom-run-"))
try {
  writeFileSync(join(dir, "solution.mjs"), code)
  writeFileSync(join(dir, "solution.test.mjs"), tests)
  const run = spawnSync(process.execPath, ["--test", "--test-reporter=spec", "solution.test.mjs"], {
    cwd: dir,
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "" }
  })
  const output = `${run.stdout ?? ""}${run.stderr ?? ""}`
  process.stdout.write(JSON.stringify({ passed: run.status === 0, output: output.slice(-4000) }))
} finally {
  rmSync(dir, { recursive: true, force: true })
}
