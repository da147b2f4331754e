/**
 * What a newcomer does with the package (`npm run test:package`, run by `.ci/run`): pack
 * it, install the tarball with `effect` into an empty project without tsx, run the
 * README's first library example with plain `node`, type-check a consumer `.ts` file
 * with `tsc` (strict, NodeNext), and run `npx loom tools` from the tarball's bin.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = new URL("../..", import.meta.url).pathname
const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
  readonly allowScripts: Record<string, boolean>
  readonly dependencies: Record<string, string>
  readonly devDependencies: Record<string, string>
}

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end (killed after `timeout` ms), with its exit code and output. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string, env: Record<string, string> = {}) =>
  Effect.async<Ran>((resume) => {
    const child = execFile(
      command,
      args,
      { cwd, env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/root", ...env }, timeout: 480_000 },
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error ? Number(error.code ?? 1) || 1 : 0, stdout, stderr }))
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const ok = (ran: Ran, what: string) => assert.strictEqual(ran.code, 0, `${what}:\n${ran.stdout}\n${ran.stderr}`)

/** The README's first ```ts block: the library example. */
const readmeExample = () => {
  const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)][0]![1]!
}

const consumerTs = `import { Effect, Layer, Schema } from "effect"
import { InMemoryToolRegistry, Timeouts, Tool, ToolCall, ToolExecutor, ToolResult } from "loom"

const echo = Tool.make({
  name: "echo",
  description: "Says it back",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.String,
  handler: ({ text }) => Effect.succeed(text)
})

export const program: Effect.Effect<ReadonlyArray<ToolResult.ToolResult>, never, ToolExecutor.ToolExecutor> = Effect
  .flatMap(ToolExecutor.ToolExecutor, (executor) => executor.executeParallel([ToolCall.toolCall("1", "echo", { text: "hi" })]))

export const Live: Layer.Layer<ToolExecutor.ToolExecutor> = ToolExecutor.ToolExecutor.layerIo({}).pipe(
  Layer.provide([InMemoryToolRegistry.layer([echo]), Timeouts.Timeouts.Default])
)
`

describe("the packed package, as a consumer uses it", () => {
  it.scoped(
    "installs without tsx, runs with node, type-checks, and its bin lists the tools",
    () =>
      Effect.gen(function*() {
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "loom-consumer-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
        const packed = yield* run("npm", ["pack", "--json", "--pack-destination", dir], root)
        ok(packed, "npm pack")
        const [{ filename, files }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("["))) as [
          { filename: string; files: Array<{ path: string }> }
        ]
        const shipped = files.map((file) => file.path)
        assert.includeMembers(shipped, [
          "dist/index.js",
          "dist/index.d.ts",
          "dist/index.d.ts.map",
          "dist/main.js",
          "dist/infrastructure/cpu/CpuWorker.js",
          "dist/application/workflows/coding/run-tests.mjs",
          // the sources the declaration and source maps point at, as Effect's own packages ship them
          "src/index.ts",
          "README.md",
          "LICENSE"
        ])
        // no tests, benches, build state or the tsx boot file used only when running from sources
        assert.isEmpty(
          shipped.filter((file) =>
            /^(test|bench)\//.test(file) || file.endsWith(".tsbuildinfo") || file.endsWith("cpu-worker.mjs")
          )
        )

        fs.writeFileSync(
          path.join(dir, "package.json"),
          JSON.stringify({
            name: "consumer",
            private: true,
            type: "module",
            dependencies: { loom: `file:./${filename}`, effect: manifest.dependencies["effect"] },
            devDependencies: {
              typescript: manifest.devDependencies["typescript"],
              "@types/node": manifest.devDependencies["@types/node"]
            },
            allowScripts: manifest.allowScripts
          })
        )
        ok(yield* run("npm", ["install", "--no-audit", "--no-fund"], dir), "npm install")
        assert.isFalse(fs.existsSync(path.join(dir, "node_modules", "tsx")), "tsx was installed for a consumer")

        fs.writeFileSync(path.join(dir, "app.mjs"), readmeExample())
        const app = yield* run(process.execPath, ["app.mjs"], dir)
        ok(app, "node app.mjs")
        assert.include(app.stdout, "succeeded")
        assert.include(app.stdout, "InvalidToolInput")

        fs.writeFileSync(path.join(dir, "consumer.ts"), consumerTs)
        fs.writeFileSync(path.join(dir, "example.ts"), readmeExample())
        fs.writeFileSync(
          path.join(dir, "tsconfig.json"),
          JSON.stringify({
            compilerOptions: {
              target: "ES2022",
              lib: ["ES2022", "DOM"],
              module: "NodeNext",
              moduleResolution: "NodeNext",
              strict: true,
              exactOptionalPropertyTypes: true,
              noEmit: true,
              types: ["node"]
            },
            include: ["consumer.ts", "example.ts"]
          })
        )
        ok(yield* run(path.join(dir, "node_modules", ".bin", "tsc"), ["-p", "."], dir), "tsc --noEmit")

        const tools = yield* run("npx", ["loom", "tools"], dir, { LOOM_DATA_DIR: path.join(dir, "data") })
        ok(tools, "npx loom tools")
        assert.match(tools.stdout, /^weather\s+io/m)
        assert.match(tools.stdout, /^code\.run_tests\s+process/m)
      }),
    600_000
  )
})
