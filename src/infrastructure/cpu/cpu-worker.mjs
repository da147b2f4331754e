// Boots the TypeScript worker entry under tsx inside a worker thread, when Loom runs from
// its sources (tests). Not part of the build: compiled threads start on CpuWorker.js.
import { register } from "tsx/esm/api"

register()
await import("./CpuWorker.ts")
